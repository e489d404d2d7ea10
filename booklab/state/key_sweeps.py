"""The deploy keys due to be swept off GitLab, by due time (:mod:`booklab.pipeline.key_sweeper` decides what
to sweep and does it).

A runner takes one sweep at a time, under a lease: taking it moves its due time a lease ahead instead of
removing it, so that a runner that dies before GitLab answered leaves it to be taken again when the lease runs
out. Only a sweep that is over (the key removed, or no longer removable) leaves its set.
"""

from __future__ import annotations

import redis

# KEYS[1] the set; ARGV[1] now, ARGV[2] the lease's end. The member due first by now, due again at the lease's end.
_TAKE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)[1]
if not due then return false end
redis.call('ZADD', KEYS[1], ARGV[2], due)
return due
"""


class KeySweeps:
    """The sweep sets in one Redis (``ctx.key_sweeps``); each set holds ``"<project id> <title>"`` members."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._take_due = client.register_script(_TAKE_DUE)

    def due(self, sweeps: str, member: str, at: float) -> None:
        """Sweep ``member`` at ``at`` (put off, if it was due earlier)."""
        self.redis.zadd(sweeps, {member: at})

    def take_due(self, sweeps: str, now: float, lease: float) -> str | None:
        """The member of ``sweeps`` due first by ``now``, for this caller alone until ``lease`` seconds from
        ``now`` (then it is due again, unless :meth:`done` was called); None when none is due."""
        return self._take_due(keys=[sweeps], args=[now, now + lease])

    def put_off(self, sweeps: str, member: str, at: float) -> None:
        """A sweep taken that failed: due again at ``at``, unless it is over meanwhile (another caller took it
        after the lease ran out, and finished it)."""
        self.redis.zadd(sweeps, {member: at}, xx=True)

    def done(self, sweeps: str, member: str) -> bool:
        """``member`` no longer needs sweeping; whether it was still to sweep."""
        return bool(self.redis.zrem(sweeps, member))
