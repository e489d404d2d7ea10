"""The programmatic entry to Booklab: request, follow, save and stop deployments.

The web tier and the CLI call these; so do tests. Requesting checks the user's GitLab
token, keeps it encrypted for the runner, and queues the deployment's chain, or joins the
deployment when it is already queued, running or ready. When the user chose to save their
changes back to GitLab, their token is kept (encrypted) while the notebook lives, and each
of their requests refreshes it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterator

from booklab import save_back, steps
from booklab.context import Context
from booklab.deployment import Deployment
from booklab.errors import BooklabError
from booklab.phases import Phase
from booklab.queueing import announce_positions, leave_queue

log = logging.getLogger(__name__)


class UnknownDeployment(BooklabError):
    """No deployment with that id exists."""


class NotRunning(BooklabError):
    """The deployment has no running notebook to act on."""


@dataclass(frozen=True)
class Request:
    deployment: Deployment
    #: False when the request joined a deployment already queued, running or ready
    started: bool

    @property
    def id(self) -> str:
        return self.deployment.id


def request_deployment(ctx: Context, project: str, ref: str, gitlab_token: str,
                       save_back: bool = False) -> Request:
    """Deploy ``ref`` of ``project`` for the owner of ``gitlab_token``; with ``save_back``,
    its changes are pushed to a new branch when it ends (a joined deployment too)."""
    from booklab.tasks import deployment_chain

    user = ctx.gitlab(gitlab_token).username()
    dep = Deployment(project, ref, user)
    if not ctx.deployments.start_or_join(dep, ctx.slug(dep.id), save_back="1" if save_back else ""):
        if save_back:
            set_save_back(ctx, dep.id, True, gitlab_token)
        return Request(dep, started=False)
    if save_back:
        _keep_token(ctx, dep.id, gitlab_token)
    ctx.events.clear(dep.id)
    ctx.vault.put(dep.id, steps.GITLAB_TOKEN, gitlab_token.encode(), ttl=ctx.config.token_ttl)
    announce_positions(ctx, only=dep.id)
    deployment_chain(dep.id).apply_async()
    log.info("queued %s", dep.id)
    return Request(dep, started=True)


def follow(ctx: Context, deployment_id: str, after: int = 0, timeout: float | None = None,
           ) -> Iterator[tuple[int, dict[str, Any]]]:
    """The deployment's events after id ``after`` as (id, event), live, until a final
    phase or ``timeout``. The ``ready`` event carries the notebook's token; give this
    only to the deployment's owner."""
    for event in ctx.events.follow(deployment_id, after, timeout):
        data = dict(event.data)
        if event.phase is Phase.READY:
            data["token"] = steps.notebook_token(ctx, deployment_id)
        yield event.id, data


def status(ctx: Context, deployment_id: str) -> Phase:
    current = ctx.deployments.status(deployment_id)
    if current is None:
        raise UnknownDeployment(f"There is no deployment {deployment_id!r}: check the id with `booklab status`.")
    return current


def set_save_back(ctx: Context, deployment_id: str, enabled: bool, gitlab_token: str) -> None:
    """Choose whether the deployment's changes are saved back to GitLab when it ends."""
    if not status(ctx, deployment_id).is_active:
        raise NotRunning("This notebook has ended: there is nothing left to save.")
    ctx.deployments.update(deployment_id, save_back="1" if enabled else "")
    if enabled:
        _keep_token(ctx, deployment_id, gitlab_token)
    else:
        ctx.vault.delete(deployment_id, steps.SAVE_TOKEN)


def save_now(ctx: Context, deployment_id: str, gitlab_token: str) -> bool:
    """Have the runner push the notebook's changes now, while it keeps running; False when
    a save is under way already."""
    if status(ctx, deployment_id) is not Phase.READY:
        raise NotRunning("Only a running notebook can be saved: launch it first.")
    _keep_token(ctx, deployment_id, gitlab_token)
    save_back.forget_failure(ctx, deployment_id)
    return save_back.request(ctx, deployment_id)


def _keep_token(ctx: Context, deployment_id: str, gitlab_token: str) -> None:
    """Keep the user's token for the saves of the deployment's whole life (its wait included)."""
    ctx.vault.put(deployment_id, steps.SAVE_TOKEN, gitlab_token.encode(),
                  ttl=ctx.config.token_ttl + ctx.config.notebook_max_lifetime)


def stop(ctx: Context, deployment_id: str, discard: bool = False, gitlab_token: str | None = None) -> Phase:
    """Stop a deployment: at once when still queued, else its runner stops the notebook
    within ``runner/poll_interval`` seconds, after saving its changes when the user chose
    that (unless ``discard``). Returns the status it had."""
    current = status(ctx, deployment_id)
    if discard:
        ctx.deployments.update(deployment_id, save_back="")
    elif ctx.deployments.record(deployment_id).get("save_back") and current is Phase.READY:
        if gitlab_token:
            _keep_token(ctx, deployment_id, gitlab_token)
        save_back.announce(ctx, deployment_id)  # the runner saves it before it ends it
    save_back.forget_failure(ctx, deployment_id)
    if current.is_active:
        ctx.deployments.request_stop(deployment_id)
    if current is Phase.TODO:
        leave_queue(ctx, deployment_id)
        ctx.vault.delete(deployment_id, *steps.SECRETS)
        ctx.deployments.ending(deployment_id, ctx.slug(deployment_id))
        ctx.events.emit(deployment_id, Phase.STOPPED, "Stopped before a runner took it.")
    return current
