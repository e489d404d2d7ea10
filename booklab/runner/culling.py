"""When a runner's notebook ends: stopped on request, exited, idle too long, or too old."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import docker

from booklab.context import Context
from booklab.phases import Phase
from booklab.pipeline import hub_launch, launcher
from booklab.pipeline.launcher import Notebook


def reason_to_end(ctx: Context, held: dict[str, str], status: Phase, now: float | None = None) -> str | None:
    """Why the notebook a runner holds, in ``status``, must end now, or None while it may
    live on. Only a ready notebook is judged: one being launched ends through its launch,
    which says why it failed."""
    container = held.get("container")
    if status is Phase.STOPPING:
        return "Stopped on request."
    if status is not Phase.READY or not container:
        return None
    now = time.time() if now is None else now
    try:
        state = ctx.docker.containers.get(container).status
    except docker.errors.NotFound:
        state = "removed"
    if state not in ("running", "created", "restarting"):
        return f"The notebook server ended (container {state})."
    started = float(held.get("started_at") or now)
    if now - started > ctx.config.notebook_max_lifetime:
        return f"The notebook reached its maximum lifetime of {ctx.config.notebook_max_lifetime} s."
    activity = _last_activity(ctx, held)
    if activity is not None:
        # from its start at the earliest: a warm spare's server was idle before its user came
        idle = now - max(activity.astimezone(timezone.utc).timestamp(), started)
        limit = int(held.get("idle_timeout") or ctx.config.notebook_idle_timeout)  # the repository's own
        if idle > limit:
            return f"The notebook was idle for more than {limit} s."
    return None


def _last_activity(ctx: Context, held: dict[str, str]) -> datetime | None:
    """When the notebook last saw activity, as Jupyter reports it (in hub mode, as the hub saw it); None when
    there is none to judge yet."""
    deployment_id = held["deployment"]
    if ctx.config.launch_target == "jupyterhub":
        return hub_launch.last_activity(ctx, deployment_id)
    token = ctx.vault.notebook_token(deployment_id)
    if token is None:
        return None  # not ready yet
    return launcher.last_activity(Notebook(held["container"], "", held["url"], token, ""))
