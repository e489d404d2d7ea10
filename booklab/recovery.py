"""Clean-up after a lost runner: one declared in ``runners`` whose heartbeat expired
(killed, or its host gone). What it held ends, ``failed`` while it was being prepared or
``stopped`` when it served a notebook, its container is removed where this host can reach
it, and the runner is forgotten. Every live runner looks at each check; one cleans up
(a failed clean-up is tried again when the lock expires)."""

from __future__ import annotations

import logging

from booklab import schema, steps
from booklab.context import Context
from booklab.phases import Phase

log = logging.getLogger(__name__)

REAP_LOCK_TTL = 120


def lost_runners(ctx: Context) -> list[str]:
    """Runners still declared whose heartbeat expired."""
    declared = set(ctx.redis.smembers(schema.RUNNERS))
    return sorted(declared - set(ctx.runners.alive()))


def reap(ctx: Context, runner: str) -> bool:
    """End what ``runner`` held and forget it; False when another runner does it."""
    if not ctx.redis.set(schema.reaping(runner), "1", nx=True, ex=REAP_LOCK_TTL):
        return False
    deployment_id = ctx.runners.held(runner).get("deployment")
    if deployment_id:
        if ctx.deployments.status(deployment_id) is Phase.READY:
            phase, message = Phase.STOPPED, f"The runner {runner} serving this notebook was lost; launch it again."
        else:
            phase, message = Phase.FAILED, f"The runner {runner} was lost while preparing this notebook: retry."
        log.warning("runner %s lost; ending %s", runner, deployment_id)
        steps.release(ctx, deployment_id, runner, phase, message)
    ctx.runners.retire(runner)
    return True
