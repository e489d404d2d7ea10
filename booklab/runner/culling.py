"""When a runner's notebook ends: stopped on request, exited, idle too long, or too old."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import docker

from booklab.context import Context
from booklab.phases import Phase
from booklab.pipeline import hub_launch, launcher
from booklab.pipeline.launcher import Notebook
from booklab.state.lifecycle import Run


class ActivityWatch:
    """The latest activity known of the notebook a runner holds, its start at the earliest: Jupyter is asked for
    its activity only once the notebook may have been idle for longer than its limit since then (activity only
    moves on), not at each of its runner's checks."""

    def __init__(self) -> None:
        self.run = ""
        self.latest = 0.0

    def known(self, run: str, started: float) -> float:
        """The latest activity known of ``run``, a notebook started at ``started``."""
        return max(self.latest, started) if run == self.run else started

    def saw(self, run: str, latest: float) -> None:
        self.run, self.latest = run, latest


def reason_to_end(
    ctx: Context, held: dict[str, str], status: Phase, activity: ActivityWatch, now: float | None = None
) -> str | None:
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
    limit = int(held.get("idle_timeout") or ctx.config.notebook_idle_timeout)  # the repository's own
    run = Run.held(held).id
    if now - activity.known(run, started) <= limit:
        return None  # not idle for that long, whatever Jupyter would say
    reported = _last_activity(ctx, held)
    if reported is None:
        return None
    # from its start at the earliest: a warm spare's server was idle before its user came
    latest = max(reported.astimezone(timezone.utc).timestamp(), started)
    activity.saw(run, latest)
    if now - latest > limit:
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
