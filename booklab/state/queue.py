"""The queue of deployments waiting for a runner, as its users see it: each queued
deployment's log tells its position, and tells it again whenever the queue moves.

Positions are announced from one consistent view of the queue (a transaction watching
it), so announcements racing each other never leave a deployment told a stale position.
"""

from __future__ import annotations

import redis

from booklab.state import schema
from booklab.state.lifecycle import Lifecycle
from booklab.state.records import Deployments


class Queue:
    """The queue in one Redis (``ctx.queue``)."""

    def __init__(self, client: redis.Redis, lifecycle: Lifecycle, deployments: Deployments) -> None:
        self.redis, self.lifecycle, self.deployments = client, lifecycle, deployments

    def announce_positions(self, only: str | None = None) -> None:
        """Tell each queued deployment (or just ``only``) its position in the queue."""
        while True:
            with self.redis.pipeline() as pipe:
                try:
                    pipe.watch(schema.QUEUE)
                    queued = pipe.zrange(schema.QUEUE, 0, -1)
                    pipe.multi()
                    for position, deployment_id in enumerate(queued, start=1):
                        if only in (None, deployment_id):
                            self.lifecycle.tell_waiting(
                                pipe,
                                deployment_id,
                                f"Waiting for a free runner: position {position} in the queue.",
                                position,
                            )
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue

    def ahead_of(self, deployment_id: str) -> int:
        """How many deployments wait ahead of ``deployment_id`` (all of the queue when it is not queued)."""
        rank = self.redis.zrank(schema.QUEUE, deployment_id)
        return self.redis.zcard(schema.QUEUE) if rank is None else rank

    def leave(self, deployment_id: str) -> None:
        """Take the deployment out of the queue; those behind it learn their new position."""
        if self.deployments.dequeue(deployment_id):
            self.announce_positions()
