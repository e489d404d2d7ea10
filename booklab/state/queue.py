"""The queue of deployments waiting for a runner, as its users see it: each queued
deployment's log tells its position, and tells it again whenever the queue moves.

Positions are announced from one consistent view of the queue (a transaction watching
it), so announcements racing each other never leave a deployment told a stale position.
"""

from __future__ import annotations

import redis

from booklab.state import schema
from booklab.context import Context


def announce_positions(ctx: Context, only: str | None = None) -> None:
    """Tell each queued deployment (or just ``only``) its position in the queue."""
    while True:
        with ctx.redis.pipeline() as pipe:
            try:
                pipe.watch(schema.QUEUE)
                queued = pipe.zrange(schema.QUEUE, 0, -1)
                pipe.multi()
                for position, deployment_id in enumerate(queued, start=1):
                    if only in (None, deployment_id):
                        ctx.lifecycle.tell_waiting(pipe, deployment_id,
                                                   f"Waiting for a free runner: position {position} in the queue.",
                                                   position)
                pipe.execute()
                return
            except redis.WatchError:
                continue


def leave_queue(ctx: Context, deployment_id: str) -> None:
    """Take the deployment out of the queue; those behind it learn their new position."""
    if ctx.deployments.dequeue(deployment_id):
        announce_positions(ctx)
