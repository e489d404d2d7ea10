"""The programmatic entry to Booklab: request, follow, save and stop deployments.

The web tier and the CLI call these; so do tests. Requesting checks the user's GitLab
token, keeps it encrypted for the runner, and queues a new run of the deployment, or joins
its run already queued, running or ready; a request while the run is stopping queues a new
run behind that end. When the user chose to save their
changes back to GitLab, their token is kept (encrypted) while the notebook lives, and each
of their requests refreshes it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterator

from booklab import allowed
from booklab.context import Context
from booklab.dispatch.send import queue_run
from booklab.errors import NotRunning, UnknownDeployment
from booklab.phases import Phase
from booklab.saveback import protocol
from booklab.state.deployment import Deployment
from booklab.state.lifecycle import Outcome, Quotas, Run
from booklab.state.vault import SAVE_TOKEN

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    deployment: Deployment
    #: False when the request joined a run already queued, running or ready
    started: bool
    #: the run it started or joined
    run: Run

    @property
    def id(self) -> str:
        return self.deployment.id


def request_deployment(
    ctx: Context,
    project: str,
    ref: str,
    gitlab_token: str,
    save_back: bool = False,
    grant_id: str = "",
    rebuild: bool = False,
    profile: str = "",
    build_only: bool = False,
) -> Request:
    """Deploy ``ref`` of ``project`` for the owner of ``gitlab_token``: a new run, queued
    (behind the end of the current run when that one is stopping), or the run already
    queued or running; with ``save_back``, its changes are pushed to a new branch when it
    ends (a joined run too); with ``rebuild``, a new run builds the commit's image again, every
    layer, and replaces it (a run joined is left as it is); ``profile``: the machine profile the
    user picked (empty: none; the repository's ``.booklab.yml`` may then ask for one, else
    ``profiles/default``), for a new run; ``build_only``: the run builds the commit's image for the branch's
    warm spares, and ends (:mod:`booklab.runner.warming`). ``grant_id``: the user's GitLab login the token comes from
    (:mod:`booklab.state.grants`), whose newest token the runners then act with. Raises
    LimitReached, saying which, when a new run would pass the operator's ``limits/*``,
    NotAllowed when the operator's ``access/*`` keeps the user or the project out or the profile
    is for other groups, and UnknownProfile when there is no such profile."""
    allowed.check_project(ctx.config, project)
    with ctx.gitlab(gitlab_token) as gl:
        user = gl.username()
        allowed.check_user(ctx.config, gl)  # again: a membership may have ended since the login
        usable = allowed.usable_profiles(ctx.config, gl)
    if profile:
        allowed.check_profile(ctx.config, profile, usable)
    dep = Deployment(project, ref, user)
    token = gitlab_token.encode()
    outcome, run = ctx.lifecycle.request(
        dep,
        ctx.slug(dep.id),
        {
            "save_back": "1" if save_back else "",
            "grant": grant_id,
            "rebuild": "1" if rebuild else "",
            "build_only": "1" if build_only else "",
            # the runner honours the repository's profile: only when its user may use it
            "profile_asked": profile,
            "profiles_allowed": ",".join(p.name for p in usable),
        },
        ctx.vault.seal(token),
        ctx.config.token_ttl,
        ctx.vault.seal(token) if save_back else b"",
        ctx.config.token_ttl + ctx.config.notebook_max_lifetime,
        _quotas(ctx),
    )
    if grant_id:
        _keep_login(ctx, dep.id, grant_id)
    if outcome is Outcome.STARTED:
        queue_run(ctx, run)
    log.info("%s %s", outcome.value, run)
    return Request(dep, started=outcome is not Outcome.JOINED, run=run)


def _quotas(ctx: Context) -> Quotas:
    """The operator's limits (``limits/*``) a new run is checked against."""
    c = ctx.config
    return Quotas(c.limits_notebooks_per_user, c.limits_notebooks_per_project, c.limits_queue_length)


def follow(
    ctx: Context,
    run: Run,
    after: int = 0,
    timeout: float | None = None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The run's events after id ``after`` as (id, event), live, until a final phase or
    ``timeout``. The ``ready`` event of the current run carries the notebook's token; give
    this only to the deployment's owner."""
    for event in ctx.events.follow(run.id, after, timeout):
        data = dict(event.data)
        if event.phase is Phase.READY and ctx.lifecycle.current(run.deployment)[1] == run:
            data["token"] = ctx.vault.notebook_token(run.deployment)
        yield event.id, data


def status(ctx: Context, deployment_id: str) -> Phase:
    current = ctx.deployments.status(deployment_id)
    if current is None:
        raise UnknownDeployment(f"There is no deployment {deployment_id!r}: check the id with `booklab status`.")
    return current


def set_save_back(ctx: Context, deployment_id: str, enabled: bool, gitlab_token: str, grant_id: str = "") -> None:
    """Choose whether the deployment's changes are saved back to GitLab when it ends."""
    if not status(ctx, deployment_id).is_joinable:
        raise NotRunning("This notebook has ended: there is nothing left to save.")
    ctx.deployments.update(deployment_id, save_back="1" if enabled else "")
    if enabled:
        _keep_token(ctx, deployment_id, gitlab_token, grant_id)
    else:
        ctx.vault.delete(deployment_id, SAVE_TOKEN)


def save_now(ctx: Context, deployment_id: str, gitlab_token: str, grant_id: str = "") -> bool:
    """Have the runner push the notebook's changes now, while it keeps running; False when
    a save is under way already."""
    if status(ctx, deployment_id) is not Phase.READY:
        raise NotRunning("Only a running notebook can be saved: launch it first.")
    _keep_token(ctx, deployment_id, gitlab_token, grant_id)
    protocol.forget_failure(ctx, deployment_id)
    return protocol.request(ctx, deployment_id)


def _keep_token(ctx: Context, deployment_id: str, gitlab_token: str, grant_id: str) -> None:
    """Keep the user's token (and login) for the saves of the deployment's whole life (its wait included)."""
    ctx.vault.put(
        deployment_id, SAVE_TOKEN, gitlab_token.encode(), ttl=ctx.config.token_ttl + ctx.config.notebook_max_lifetime
    )
    if grant_id:
        _keep_login(ctx, deployment_id, grant_id)


def _keep_login(ctx: Context, deployment_id: str, grant_id: str) -> None:
    """The deployment acts with the user's newest login, which lives as long as it may."""
    ctx.deployments.update(deployment_id, grant=grant_id)
    ctx.grants.keep_for(grant_id, ctx.config.token_ttl + ctx.config.notebook_max_lifetime)


def stop(
    ctx: Context,
    deployment_id: str,
    discard: bool = False,
    gitlab_token: str | None = None,
    grant_id: str = "",
    by: str = "",
) -> Phase:
    """Stop a deployment: at once when still queued, else its run becomes ``stopping`` and
    its runner ends it within ``runner/poll_interval`` seconds, after saving its changes when
    the user chose that (unless ``discard``). A run queued behind an end is dropped too.
    ``by``: who stops it, when not its owner (an operator), said in its log.
    Returns the status it had."""
    current = status(ctx, deployment_id)
    if discard:
        ctx.deployments.update(deployment_id, save_back="")
    elif ctx.deployments.record(deployment_id).get("save_back") and current is Phase.READY:
        if gitlab_token:
            _keep_token(ctx, deployment_id, gitlab_token, grant_id)
        protocol.announce(ctx, deployment_id)  # the runner saves it before it ends it
    protocol.forget_failure(ctx, deployment_id)
    was, _ = ctx.lifecycle.stop(deployment_id, by)
    if was is Phase.TODO:  # over at once, its secrets gone with it
        ctx.deployments.forget_long_ended()
        ctx.queue.announce_positions()
    return was or current
