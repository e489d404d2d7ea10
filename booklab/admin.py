"""The operator's view of Booklab and the operator's actions, for ``/admin``, the admin API
(``/api/admin/...``) and ``booklab admin``.

Who is an operator: the GitLab users named in ``admin/users``, and (with
``admin/gitlab_admins``) the GitLab server's administrators, as GitLab says at each check.

What an operator sees (:func:`overview`): every runner (its host, whether it is alive, its
last heartbeat, the notebook it serves, for whom, since when), the queue in order, the
deployments (every active one and the latest that ended) with their phase, the images each
runner host keeps (:mod:`booklab.state.images`), and the quotas in use. What an operator does:
stop any notebook (its owner's choice to save it back holds) and ask a host's image cleaner
to remove an image (:mod:`booklab.pipeline.image_cleaner`); each action goes
to the operators' log (:mod:`booklab.state.audit`) and to the web tier's log, and a stop is
said in the deployment's own log.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from booklab import service
from booklab.context import Context
from booklab.errors import InvalidDeployment, UnknownDeployment, UnknownImage
from booklab.phases import Phase
from booklab.pipeline.gitlab_client import GitLabClient
from booklab.state import schema
from booklab.state.deployment import Deployment

log = logging.getLogger(__name__)

#: deployments that ended shown besides the active ones, newest first
ENDED_SHOWN = 50


def is_operator(ctx: Context, username: str, gitlab: GitLabClient | None = None) -> bool:
    """Whether ``username`` is one of Booklab's operators: named in ``admin/users``, or, with
    ``admin/gitlab_admins``, an administrator of the GitLab server (asked through ``gitlab``,
    the user's own client, when given)."""
    if username in ctx.config.paths_of("admin_users"):
        return True
    return bool(ctx.config.admin_gitlab_admins and gitlab is not None and gitlab.whoami().is_admin)


@dataclass(frozen=True)
class RunnerRow:
    name: str
    host: str
    #: ``serving`` a notebook (or preparing one), ``free``, or ``lost`` (its heartbeat expired)
    state: str
    last_beat: float | None
    deployment: str = ""
    user: str = ""
    phase: str = ""
    #: when it took the deployment
    since: float | None = None
    #: the warm spare it holds while free: ``<project>@<branch> (offered)``; empty: none
    spare: str = ""


@dataclass(frozen=True)
class QueueRow:
    position: int
    deployment: str
    user: str
    project: str
    ref: str
    #: when it was queued
    since: float


@dataclass(frozen=True)
class DeploymentRow:
    id: str
    project: str
    ref: str
    user: str
    phase: str
    run: int | None
    runner: str
    requested_at: float | None
    ready_at: float | None
    #: its machine profile (``profiles/list``), once its runner chose one; else the one its user picked
    profile: str = ""

    @property
    def stoppable(self) -> bool:
        return Phase(self.phase).is_joinable


@dataclass(frozen=True)
class QuotaRow:
    #: ``user``, ``project`` or ``queue``
    kind: str
    name: str
    in_use: int
    #: 0: no limit
    limit: int


def runners(ctx: Context) -> list[RunnerRow]:
    """Every runner declared, alive or lost, by name."""
    names = ctx.runners.declared()
    beats, hosts = ctx.runners.last_beats(names), ctx.runners.hosts()
    statuses = ctx.deployments.all_statuses()
    rows = []
    for name in names:
        held = ctx.runners.held(name)
        deployment = held.get("deployment", "")
        if beats[name] is None:
            state = "lost"
        else:
            state = "serving" if deployment else "free"
        phase = statuses.get(deployment)
        rows.append(
            RunnerRow(
                name,
                hosts.get(name, ""),
                state,
                beats[name],
                deployment,
                _user_of(deployment),
                phase.value if phase else "",
                _float(held.get("since")),
                _spare_of(ctx, name),
            )
        )
    return rows


def _spare_of(ctx: Context, runner: str) -> str:
    spare = ctx.spares.of(runner)
    return f"{spare.target} ({spare.state})" if spare else ""


def queue(ctx: Context) -> list[QueueRow]:
    """The deployments waiting for a runner, the next one first."""
    rows = []
    for position, (deployment_id, since) in enumerate(ctx.redis.zrange(schema.QUEUE, 0, -1, withscores=True), 1):
        dep = _deployment(deployment_id)
        if dep is not None:
            rows.append(QueueRow(position, deployment_id, dep.user, dep.project, dep.ref, since))
    return rows


def deployments(ctx: Context) -> list[DeploymentRow]:
    """Every active deployment, then the :data:`ENDED_SHOWN` that ended last, newest first."""
    statuses = ctx.deployments.all_statuses()
    active = sorted(d for d, phase in statuses.items() if phase.is_active)
    ended = [d for d in ctx.redis.zrevrange(schema.ENDED, 0, ENDED_SHOWN - 1) if d in statuses]
    chosen = [d for d in active + ended if _deployment(d) is not None]
    rows = []
    for deployment_id, record in zip(chosen, ctx.deployments.records(chosen)):
        dep = Deployment.from_id(deployment_id)
        rows.append(
            DeploymentRow(
                deployment_id,
                dep.project,
                dep.ref,
                dep.user,
                statuses[deployment_id].value,
                int(record["run"]) if record.get("run") else None,
                record.get("runner", ""),
                _float(record.get("requested_at")),
                _float(record.get("ready_at")),
                record.get("profile") or record.get("profile_asked", ""),
            )
        )
    return rows


def quotas(ctx: Context) -> list[QuotaRow]:
    """The limits (``limits/*``) and what counts against them now, as a new launch is checked:
    the busiest users and projects first, then the queue."""
    config = ctx.config
    counted = [dep for dep in map(_deployment, _counted(ctx)) if dep is not None]
    rows = [
        QuotaRow("user", user, n, config.limits_notebooks_per_user)
        for user, n in Counter(dep.user for dep in counted).most_common()
    ]
    rows += [
        QuotaRow("project", project, n, config.limits_notebooks_per_project)
        for project, n in Counter(dep.project for dep in counted).most_common()
    ]
    rows.append(QuotaRow("queue", "waiting for a runner", ctx.redis.zcard(schema.QUEUE), config.limits_queue_length))
    return rows


def _counted(ctx: Context) -> list[str]:
    """The deployments whose run counts against the limits: queued, being prepared or serving,
    or stopping with a run queued behind the end (as the request script counts them)."""
    statuses = ctx.deployments.all_statuses()
    stopping = [d for d, phase in statuses.items() if phase is Phase.STOPPING]
    with ctx.redis.pipeline(transaction=False) as pipe:
        for deployment_id in stopping:
            pipe.exists(schema.next_run(deployment_id))
        queued_behind = {d for d, exists in zip(stopping, pipe.execute()) if exists}
    return sorted(d for d, phase in statuses.items() if phase.is_joinable or d in queued_behind)


@dataclass(frozen=True)
class ImageRow:
    host: str
    name: str
    size: int
    created: float
    last_launched: float | None
    in_use: bool
    #: an operator asked to remove it; that host's cleaner does it next (unless it is in use)
    removal_asked: bool


def images(ctx: Context) -> list[ImageRow]:
    """The images each runner host keeps, as its cleaner last saw them, by host and name."""
    rows = []
    for host, found in ctx.images.inventory().items():
        asked = ctx.images.pending_removals(host)
        rows += [ImageRow(host, i.name, i.size, i.created, i.last_launched, i.in_use, i.name in asked) for i in found]
    return rows


def overview(ctx: Context) -> dict[str, Any]:
    """All an operator's page shows, as JSON."""
    return {
        "runners": [asdict(row) for row in runners(ctx)],
        "queue": [asdict(row) for row in queue(ctx)],
        "deployments": [asdict(row) for row in deployments(ctx)],
        "images": [asdict(row) for row in images(ctx)],
        "quotas": [asdict(row) for row in quotas(ctx)],
        "actions": [action.as_json() for action in ctx.audit.recent()],
    }


def stop(ctx: Context, deployment_id: str, operator: str) -> Phase:
    """Stop any user's deployment as ``operator`` (its owner's save back still happens);
    UnknownDeployment when there is none. Returns the phase it had."""
    if _deployment(deployment_id) is None:
        raise UnknownDeployment(f"There is no deployment {deployment_id!r}.")
    was = service.stop(ctx, deployment_id, by=f"the operator {operator}")
    ctx.audit.record(operator, "stop", deployment_id)
    log.info("the operator %s stopped %s (was %s)", operator, deployment_id, was.value)
    return was


def remove_image(ctx: Context, host: str, image: str, operator: str) -> None:
    """Ask ``host``'s cleaner, as ``operator``, to remove ``image`` at its next cleaning (it
    keeps one in use); UnknownImage unless that host's inventory lists it."""
    if image not in {i.name for i in ctx.images.inventory().get(host, [])}:
        raise UnknownImage(f"The host {host!r} has no image {image!r} of Booklab's (any more).")
    ctx.images.request_removal(host, image)
    ctx.audit.record(operator, "remove image", f"{image} on {host}")
    log.info("the operator %s asked %s to remove the image %s", operator, host, image)


def _deployment(deployment_id: str) -> Deployment | None:
    try:
        return Deployment.from_id(deployment_id)
    except InvalidDeployment:
        return None


def _user_of(deployment_id: str) -> str:
    dep = _deployment(deployment_id) if deployment_id else None
    return dep.user if dep else ""


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
