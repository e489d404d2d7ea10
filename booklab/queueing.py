"""The queue of deployments waiting for a runner, as its users see it: each queued
deployment's log tells its position, and tells it again whenever the queue moves."""

from __future__ import annotations

from booklab.context import Context
from booklab.phases import Phase


def announce_position(ctx: Context, deployment_id: str, position: int) -> None:
    ctx.events.emit(deployment_id, Phase.WAITING,
                    f"Waiting for a free runner: position {position} in the queue.", position=position)


def leave_queue(ctx: Context, deployment_id: str) -> None:
    """Take the deployment out of the queue; those behind it learn their new position."""
    if not ctx.deployments.dequeue(deployment_id):
        return
    for position, waiting in enumerate(ctx.deployments.queued(), start=1):
        announce_position(ctx, waiting, position)
