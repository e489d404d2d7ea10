"""Warm spares: a notebook container an idle runner started ahead of any launch, of an image the operator
keeps warm (``warm/projects``), that the next launch of that image takes instead of starting one.

Each runner holds at most one spare, in ``spare:<runner>``, which moves ``starting`` (its container starts)
-> ``offered`` (it answers; the runner is in ``spares:<image>``) -> ``claimed`` (a launch took it: the
runner serves that launch next), and goes when its runner drops it or takes its next run. Each move is one
script, so that a spare is claimed by one launch at most, and never once its runner dropped it to serve
another: the web tier claims (:meth:`Spares.claim`), the runner takes its next run (:meth:`Spares.take`).
``sparecount`` counts the spares of each image that are starting or offered, so that idle runners start
those still missing (:mod:`booklab.runner.spares`). The spare's Jupyter token is kept sealed in its
record (the vault's seal), and goes with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import redis

from booklab.state import schema

STARTING, OFFERED, CLAIMED = "starting", "offered", "claimed"

_FIELDS = ("id", "image", "target", "state", "container", "url", "memory", "cpus", "run", "since", "token", "image_id")

#: the time of the Redis server, in seconds: every runner and web process compares a spare's age on one clock
_NOW = """
local clock = redis.call('TIME')
local now = clock[1] .. '.' .. string.format('%06d', tonumber(clock[2]))
"""

# KEYS[1] the runner's spare, KEYS[2] sparecount; ARGV id, image, target, how many of the image are wanted.
# 0: it holds one already, or as many are starting or offered
_BEGIN = (
    _NOW
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0') >= tonumber(ARGV[4]) then return 0 end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'image', ARGV[2], 'target', ARGV[3], 'state', 'starting',
  'since', now)
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
return 1
"""
)

# KEYS[1] the runner's spare; ARGV id, container, url, memory, cpus, sealed token, the id of the image it runs.
# 0: not that spare starting
_STARTED = """
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'state') ~= 'starting' then
  return 0
end
redis.call('HSET', KEYS[1], 'container', ARGV[2], 'url', ARGV[3], 'memory', ARGV[4], 'cpus', ARGV[5],
  'token', ARGV[6], 'image_id', ARGV[7])
return 1
"""

# KEYS[1] the runner's spare, KEYS[2] the offers of its image; ARGV id, runner. 0: not that spare starting
_OFFER = (
    _NOW
    + """
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'state') ~= 'starting'
    or not redis.call('HGET', KEYS[1], 'container') then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'offered', 'since', now)
redis.call('SADD', KEYS[2], ARGV[2])
return 1
"""
)

# KEYS[1] the offers of the image, KEYS[2] sparecount; ARGV image, run, the prefix of spare records, the prefix
# of heartbeats. The runner whose spare the run claimed and the spare's address; nil: none offered. An offer
# whose runner's heartbeat expired stays for the runner's return (or its reaper's drop); one no longer offered
# goes
_CLAIM = (
    _NOW
    + """
local passed, found = {}, false
while true do
  local runner = redis.call('SPOP', KEYS[1])
  if not runner then break end
  local spare = ARGV[3] .. runner
  if redis.call('HGET', spare, 'state') == 'offered' and redis.call('HGET', spare, 'image') == ARGV[1] then
    if redis.call('EXISTS', ARGV[4] .. runner) == 1 then
      redis.call('HSET', spare, 'state', 'claimed', 'run', ARGV[2], 'since', now)
      if redis.call('HINCRBY', KEYS[2], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[2], ARGV[1]) end
      found = {runner, redis.call('HGET', spare, 'url')}
      break
    end
    table.insert(passed, runner)
  end
end
if #passed > 0 then redis.call('SADD', KEYS[1], unpack(passed)) end
return found
"""
)

# KEYS[1] the runner's spare, KEYS[2] sparecount; ARGV the run it takes ('' to drop an unclaimed spare
# only), the runner, the prefix of offers, '1' to drop a claimed one too. Empty: it holds none;
# {'other'}: claimed by another run, left as it is; else its fields, and it is gone
_TAKE = """
local f = redis.call('HMGET', KEYS[1], 'id', 'image', 'target', 'state', 'container', 'url', 'memory', 'cpus',
  'run', 'since', 'token', 'image_id')
if not f[4] then return {} end
if f[4] == 'claimed' and f[9] ~= ARGV[1] and ARGV[4] ~= '1' then return {'other'} end
if f[4] ~= 'claimed' then
  redis.call('SREM', ARGV[3] .. f[2], ARGV[2])
  if redis.call('HINCRBY', KEYS[2], f[2], -1) <= 0 then redis.call('HDEL', KEYS[2], f[2]) end
end
redis.call('DEL', KEYS[1])
return f
"""


@dataclass(frozen=True)
class Spare:
    """One runner's spare: its id, image and the warm target (``<project>@<branch>``) it is kept for, its
    state, and once started its container, address, limits and sealed token; once claimed, the run."""

    id: str
    image: str
    target: str
    state: str
    container: str = ""
    url: str = ""
    memory: str = ""
    cpus: str = ""
    run: str = ""
    since: float = 0.0  # on the Redis server's clock (:meth:`Spares.now`)
    token: str = field(default="", repr=False)
    image_id: str = ""  # the image it runs: a rebuild gives its name another

    @classmethod
    def of(cls, fields: list) -> Spare:
        values = dict(zip(_FIELDS, (value or "" for value in fields)))
        return cls(**{**values, "since": float(values["since"] or 0)})


@dataclass(frozen=True)
class Claimed:
    """The spare a launch claimed: the runner holding it and the address its notebook answers at."""

    runner: str
    url: str


class Taken(Enum):
    """What a runner's spare became when the runner took a run."""

    NONE = "none"  # it held none
    MINE = "mine"  # the run claimed it: the runner serves it with that container
    OTHER = "other"  # another run claimed it: the runner serves that one first
    DROPPED = "dropped"  # unclaimed: dropped, no launch can claim it now


class Spares:
    """The runners' spares in one Redis (``ctx.spares``)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._begin = client.register_script(_BEGIN)
        self._started = client.register_script(_STARTED)
        self._offer = client.register_script(_OFFER)
        self._claim = client.register_script(_CLAIM)
        self._take = client.register_script(_TAKE)

    def now(self) -> float:
        """The Redis server's time, which a spare's ``since`` is on."""
        seconds, micros = self.redis.time()
        return seconds + micros / 1e6

    def of(self, runner: str) -> Spare | None:
        """The spare ``runner`` holds; None when it holds none."""
        fields = self.redis.hmget(schema.spare(runner), _FIELDS)
        return Spare.of(fields) if fields[3] else None

    def counts(self) -> dict[str, int]:
        """Image -> how many spares of it are starting or offered."""
        return {image: int(n) for image, n in self.redis.hgetall(schema.SPARE_COUNT).items() if int(n) > 0}

    def begin(self, runner: str, spare_id: str, image: str, target: str, wanted: int) -> bool:
        """``runner`` starts a spare of ``image`` for ``target``, which wants ``wanted`` of them; False when it
        holds one already, or ``wanted`` are starting or offered."""
        keys = [schema.spare(runner), schema.SPARE_COUNT]
        return bool(self._begin(keys=keys, args=[spare_id, image, target, wanted]))

    def started(
        self, runner: str, spare_id: str, container: str, url: str, memory: str, cpus: str, token: str, image_id: str
    ) -> bool:
        """The spare's container started from the image ``image_id`` (``token``: its Jupyter token, sealed); False
        when ``runner`` no longer holds that spare starting."""
        args = [spare_id, container, url, memory, cpus, token, image_id]
        return bool(self._started(keys=[schema.spare(runner)], args=args))

    def offer(self, runner: str, spare_id: str, image: str) -> bool:
        """The spare's notebook answers: launches of ``image`` may claim it from now on; False when ``runner``
        no longer holds that spare starting."""
        keys = [schema.spare(runner), schema.spare_offers(image)]
        return bool(self._offer(keys=keys, args=[spare_id, runner]))

    def claim(self, image: str, run_id: str) -> Claimed | None:
        """Claim an offered spare of ``image`` for the run ``run_id``: the runner holding it, which serves that
        run next, and where the spare answers; None when no live runner offers one."""
        keys = [schema.spare_offers(image), schema.SPARE_COUNT]
        found = self._claim(keys=keys, args=[image, run_id, schema.spare(""), schema.heartbeat("")])
        return Claimed(*found) if found else None

    def take(self, runner: str, run_id: str) -> tuple[Taken, Spare | None]:
        """``runner`` takes the run ``run_id``: its spare is the run's (claimed by it), still another run's
        (claimed by that: left as it is), or dropped (unclaimed: gone before any launch can claim it)."""
        found = self._take(keys=[schema.spare(runner), schema.SPARE_COUNT], args=self._args(runner, run_id, False))
        if not found:
            return Taken.NONE, None
        if found == ["other"]:
            return Taken.OTHER, None
        spare = Spare.of(found)
        return (Taken.MINE if spare.state == CLAIMED else Taken.DROPPED), spare

    def drop(self, runner: str, claimed_too: bool = False) -> Spare | None:
        """Forget ``runner``'s spare, unless a launch claimed it (``claimed_too``: even then: the runner is gone);
        the spare it was, None when none went."""
        found = self._take(keys=[schema.spare(runner), schema.SPARE_COUNT], args=self._args(runner, "", claimed_too))
        return Spare.of(found) if found and found != ["other"] else None

    @staticmethod
    def _args(runner: str, run_id: str, claimed_too: bool) -> list[str]:
        return [run_id, runner, schema.spare_offers(""), "1" if claimed_too else "0"]
