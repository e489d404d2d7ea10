"""Who builds a commit's image: one launch at a time, across runners and hosts.

A launch that finds the image neither on its Docker Engine nor in the registry claims its
build (``buildclaim:<image>``: its run, runner and host); another launch of the same commit
meanwhile finds the claim held and waits for that build instead of building the image again
(:mod:`booklab.pipeline.one_build`). The claim goes when its launch releases it (only that
launch can), when a waiting launch takes it over from a runner whose heartbeat expired, or,
as a safety net, when it expires (:func:`claim_ttl`).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from booklab.state import schema

#: seconds a claim lives beyond build/timeout: the clone before the build (its task's time limit, 900 s)
#: and the push to the registry after it
CLAIM_MARGIN = 1200

_FIELDS = ("run", "runner", "host")

# KEYS[1] the claim; ARGV the holder (run, runner, host) and the TTL. Held by another run: who holds it.
_TAKE = """
local held = redis.call('HGET', KEYS[1], 'run')
if held and held ~= ARGV[1] then return redis.call('HMGET', KEYS[1], 'run', 'runner', 'host') end
redis.call('HSET', KEYS[1], 'run', ARGV[1], 'runner', ARGV[2], 'host', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {}
"""

# KEYS[1] the claim, KEYS[2] the lost holder's heartbeat; ARGV[1..2] the lost holder's run and runner,
# ARGV[3..5] the new holder, ARGV[6] the TTL
_TAKE_OVER = """
if redis.call('HGET', KEYS[1], 'run') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'runner') ~= ARGV[2]
    or redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'run', ARGV[3], 'runner', ARGV[4], 'host', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[6])
return 1
"""

# KEYS[1] the claim; ARGV[1] the run that releases it, ARGV[2] '1' when its push ended (else a push under way
# keeps the claim)
_RELEASE = """
if redis.call('HGET', KEYS[1], 'run') ~= ARGV[1] then return 0 end
if ARGV[2] ~= '1' and redis.call('HGET', KEYS[1], 'pushing') == '1' then return 0 end
return redis.call('DEL', KEYS[1])
"""

# KEYS[1] the claim; ARGV[1] the run that pushes the image
_PUSHING = """
if redis.call('HGET', KEYS[1], 'run') ~= ARGV[1] then return 0 end
return redis.call('HSET', KEYS[1], 'pushing', '1') + 1
"""


def claim_ttl(build_timeout: int) -> int:
    """Seconds a build's claim lives at most, and a launch waits for another's build at most."""
    return build_timeout + CLAIM_MARGIN


@dataclass(frozen=True)
class Holder:
    """A launch that builds an image: its run (``<deployment>#<n>``), the runner that prepares it and that
    runner's host (its Docker Engine's, as placement names it)."""

    run: str
    runner: str
    host: str


class BuildClaims:
    """The build claims in one Redis (``ctx.build_claims``)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._take = client.register_script(_TAKE)
        self._take_over = client.register_script(_TAKE_OVER)
        self._release = client.register_script(_RELEASE)
        self._pushing = client.register_script(_PUSHING)

    def take(self, image: str, holder: Holder, ttl: int) -> Holder | None:
        """Claim the build of ``image`` for ``holder`` for ``ttl`` seconds (again, for its run: the TTL starts
        over); None when it holds the claim now, else the launch that does."""
        found = self._take(keys=[schema.build_claim(image)], args=[holder.run, holder.runner, holder.host, ttl])
        return Holder(*found) if found else None

    def holder(self, image: str) -> Holder | None:
        """The launch that holds the build of ``image``; None when none does."""
        found = self.redis.hmget(schema.build_claim(image), _FIELDS)
        return Holder(*found) if found[0] else None

    def take_over(self, image: str, lost: Holder, holder: Holder, ttl: int) -> bool:
        """Claim the build of ``image`` for ``holder``, if ``lost`` still holds it and its runner's heartbeat
        expired; whether ``holder`` holds it now."""
        return bool(
            self._take_over(
                keys=[schema.build_claim(image), schema.heartbeat(lost.runner)],
                args=[lost.run, lost.runner, holder.run, holder.runner, holder.host, ttl],
            )
        )

    def pushing(self, image: str, run: str) -> bool:
        """Note that the run ``run`` pushes ``image`` now, if it holds its build's claim: the claim stays until the
        push ends (a launch of another host waiting for the image pulls it then), even if the run ends first;
        whether it holds it."""
        return bool(self._pushing(keys=[schema.build_claim(image)], args=[run]))

    def release(self, image: str, run: str, pushed: bool = False) -> bool:
        """Let the build of ``image`` go, if the run ``run`` holds it and pushes nothing (``pushed``: its push
        ended); whether it did."""
        return bool(self._release(keys=[schema.build_claim(image)], args=[run, "1" if pushed else "0"]))
