"""The operators' log: each action an operator took through ``/admin``, the admin API or
``booklab admin`` (who, what, on what, when), newest first, the last :data:`KEPT` of them."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import redis

from booklab.state import schema

#: actions kept; older ones are dropped
KEPT = 1000


@dataclass(frozen=True)
class Action:
    at: float
    operator: str
    #: what was done, such as ``stop`` or ``remove image``
    action: str
    #: what it was done to: a deployment id, or an image and its host
    target: str

    def as_json(self) -> dict[str, object]:
        return asdict(self)


class AuditLog:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def record(self, operator: str, action: str, target: str) -> Action:
        done = Action(round(time.time(), 3), operator, action, target)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(schema.AUDIT_LOG, json.dumps(done.as_json()))
            pipe.ltrim(schema.AUDIT_LOG, 0, KEPT - 1)
            pipe.execute()
        return done

    def recent(self, count: int = 50) -> list[Action]:
        """The ``count`` newest actions, newest first."""
        return [Action(**json.loads(raw)) for raw in self.redis.lrange(schema.AUDIT_LOG, 0, count - 1)]
