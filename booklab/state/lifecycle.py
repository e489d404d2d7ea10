"""A deployment's life: its runs, the phases each run goes through, and the one table of
which phase may follow which, and who moves it.

Every launch of a deployment is a *run* with a number of its own (:class:`Run`); the
deployment's record and status are those of its current run, and each run has its own
event log. Every write of a status goes through this module, as one Lua script that checks
the run and the phase it finds against :data:`MOVES` and writes the status, the record's
fields and the run's event together, or nothing at all. A writer that finds the record in
another run or phase than it expected does not write, and says so in its log
(:class:`Moved`).

A run ends in two moves. Whoever ends it (its steps on a failure, its runner's supervisor
on a Stop, a cull or an exit, recovery for a lost runner, the runner's shutdown) first
*claims the end* (:meth:`Lifecycle.claim_end`: the run is ``stopping`` and the claim
names who holds it; one claimant wins, the others leave it alone), removes what the run
left behind, and then *finishes* it (:meth:`Lifecycle.finish`: ``stopped`` or ``failed``).
A request that arrives while a run is stopping starts a new run queued behind that end:
it waits in ``nextrun:<deployment>`` and becomes the current run, queued, in the same
script that writes the old run's final event.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from enum import Enum
from typing import Any

import redis

from booklab.errors import LimitReached, Moved, SlugTaken
from booklab.phases import Phase
from booklab.state import schema
from booklab.state.deployment import Deployment
from booklab.state.event import encode
from booklab.state.events import LOG_CUT, EventLog
from booklab.state.vault import GITLAB_TOKEN, PENDING, SAVE_TOKEN, SECRETS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Run:
    """One launch of a deployment."""

    deployment: str
    number: int

    @property
    def id(self) -> str:
        """``<deployment>#<n>``: what the run's tasks carry and its log's keys are named by."""
        return schema.run_stream(self.deployment, self.number)

    @classmethod
    def parse(cls, run_id: str) -> Run:
        """The run ``<deployment>#<n>``; a bare deployment id (a task sent before runs were
        numbered) is its run 0."""
        deployment, _, number = run_id.rpartition("#")
        return cls(deployment, int(number)) if deployment and number.isascii() and number.isdigit() else cls(run_id, 0)

    @classmethod
    def held(cls, hold: dict[str, str]) -> Run | None:
        """The run a runner's hold (``runner:<name>``) names; None when it holds none (a hold
        from before runs were numbered names run 0)."""
        return cls(hold["deployment"], int(hold.get("run") or 0)) if hold.get("deployment") else None

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True)
class Move:
    before: Phase | None
    """None: the deployment has no run yet"""
    after: Phase
    by: str
    said: bool = False
    """a move of a run's own progress, made by an event (:meth:`Lifecycle.say`); every other
    move has a script of its own, which checks more than the phase (a claim, the queue)"""


_PREPARING = (Phase.FETCHING, Phase.BUILDING, Phase.BUILT, Phase.LAUNCHING)
_STEPS = "the run's steps, on its runner"
_END = (
    "a Stop (web tier, CLI) asks for it; whoever ends the run claims it: its steps on a failure, "
    "its runner's supervisor (Stop, cull, exit), recovery, the runner's shutdown"
)

#: every move of a deployment's status there is; nothing else is ever written
MOVES: tuple[Move, ...] = (
    Move(None, Phase.TODO, "a request (web tier, API, CLI): a new run, queued"),
    Move(Phase.STOPPED, Phase.TODO, "a request: a new run, queued"),
    Move(Phase.FAILED, Phase.TODO, "a request: a new run, queued"),
    Move(Phase.TODO, Phase.TODO, "the queue, telling each run its position", said=True),
    Move(Phase.TODO, Phase.FETCHING, "the runner that claims the run"),
    Move(Phase.TODO, Phase.STOPPED, "a Stop while queued (no runner holds it)"),
    Move(Phase.FETCHING, Phase.FETCHING, _STEPS, said=True),
    Move(Phase.FETCHING, Phase.BUILDING, _STEPS, said=True),
    Move(Phase.FETCHING, Phase.BUILT, _STEPS, said=True),
    Move(Phase.BUILDING, Phase.BUILDING, _STEPS, said=True),
    Move(Phase.BUILDING, Phase.LAUNCHING, _STEPS, said=True),
    Move(Phase.BUILT, Phase.BUILT, _STEPS, said=True),
    Move(Phase.BUILT, Phase.LAUNCHING, _STEPS, said=True),
    Move(Phase.LAUNCHING, Phase.LAUNCHING, _STEPS, said=True),
    Move(Phase.LAUNCHING, Phase.READY, _STEPS, said=True),
    *(
        Move(
            before,
            Phase.TODO,
            "the run's steps, on a runner whose Docker Engine did not answer: the run goes back to the "
            "queue, in its place, for a runner whose engine answers",
        )
        for before in _PREPARING
    ),
    *(Move(before, Phase.STOPPING, _END) for before in (Phase.TODO, *_PREPARING, Phase.READY)),
    Move(
        Phase.STOPPING,
        Phase.STOPPING,
        "whoever claimed the end, telling its progress; a claim given "
        "back (a Save now still runs: the end waits for it)",
        said=True,
    ),
    Move(
        Phase.STOPPING,
        Phase.STOPPED,
        "whoever claimed the end, once the run's container, route, checkout and secrets are gone",
    ),
    Move(Phase.STOPPING, Phase.FAILED, "whoever claimed the end of a run that failed, after the same"),
    Move(
        Phase.STOPPING,
        Phase.READY,
        "save back: the save that was to end the run failed, so the notebook is kept with its work",
    ),
)

ALLOWED: dict[Phase | None, frozenset[Phase]] = {
    before: frozenset(m.after for m in MOVES if m.before is before) for before in dict.fromkeys(m.before for m in MOVES)
}
#: the moves an event of a run's own progress may make
SAID: dict[Phase | None, frozenset[Phase]] = {
    before: frozenset(m.after for m in MOVES if m.before is before and m.said) for before in ALLOWED
}


def allowed(before: Phase | None, after: Phase) -> bool:
    return after in ALLOWED.get(before, frozenset())


class Outcome(str, Enum):
    """What a request did."""

    STARTED = "started"
    """a new run, queued"""
    JOINED = "joined"
    """joined the run queued, being prepared or serving (or the one queued behind an end)"""
    BEHIND = "behind"
    """a new run, queued behind the end of the current one"""


@dataclass(frozen=True)
class Quotas:
    """How many runs may count at once (queued, being prepared, serving, or queued behind
    an end), checked as a new run is requested; 0: no limit."""

    per_user: int = 0
    per_project: int = 0
    queue: int = 0
    """runs waiting for a runner"""

    def refusal(self, dep: Deployment, which: str, count: int) -> str:
        """The sentence that tells the user which limit ``count`` runs reached."""
        notebooks = f"{count} notebook{'s' if count != 1 else ''}"
        if which == "user":
            return f"You have {notebooks} running or queued, the limit is {self.per_user}: stop one first."
        if which == "project":
            return (
                f"{dep.project} has {notebooks} running or queued, the limit is {self.per_project} per project: "
                "try again when one of them ends."
            )
        return (
            f"{notebooks} {'are' if count != 1 else 'is'} waiting for a runner already, the limit is {self.queue}: "
            "try again in a few minutes."
        )


NO_QUOTAS = Quotas()


@dataclass(frozen=True)
class Claim:
    """Who ends a run: pass ``token`` to :meth:`Lifecycle.finish` (or :meth:`Lifecycle.keep`)."""

    token: str
    before: Phase
    """the run's phase when its end was claimed"""


def _lua_table(name: str, moves: dict[Phase | None, frozenset[Phase]]) -> str:
    rows = ", ".join(
        f'["{b.value if b else ""}"] = {{{", ".join(f"{a.value} = true" for a in sorted(afters))}}}'
        for b, afters in moves.items()
    )
    return f"local {name} = {{{rows}}}\n"


def _lua_constants() -> str:
    return (
        _lua_table("ALLOWED", ALLOWED)
        + _lua_table("SAID", SAID)
        + f"local GITLAB_TOKEN, SAVE_TOKEN, PENDING = '{GITLAB_TOKEN}', '{SAVE_TOKEN}', '{PENDING}'\n"
        + f"local SECRETS = {{{', '.join(repr(name) for name in SECRETS)}}}\n"
        + f"local FULL_LOG, LOG_CUT = {json.dumps(schema.full_log(''))}, {json.dumps(LOG_CUT)}"
    )


# KEYS[1] status, KEYS[2] the deployment's record; ARGV[1] deployment id, ARGV[2..4] the prefixes
# of a run's log, log counter and channel, ARGV[5] events kept, ARGV[6] seconds records live,
# ARGV[7] seconds a run's full log is kept, ARGV[8] its most bytes
_PRELUDE = (
    _lua_constants()
    + """
local d, STATUS, RECORD = ARGV[1], KEYS[1], KEYS[2]
local MAX, TTL = tonumber(ARGV[5]), tonumber(ARGV[6])
local FULL_TTL, FULL_MAX = tonumber(ARGV[7]), tonumber(ARGV[8])
local function emit(run, data)
  local stream = d .. '#' .. run
  local logkey, seq, full = ARGV[2] .. stream, ARGV[3] .. stream, FULL_LOG .. stream
  local id = redis.call('INCR', seq)
  redis.call('RPUSH', logkey, data)
  redis.call('LTRIM', logkey, -MAX, -1)
  redis.call('EXPIRE', logkey, TTL)
  redis.call('EXPIRE', seq, TTL)
  -- the full log, uncut by MAX: its messages as text, up to FULL_MAX bytes
  local message = cjson.decode(data).message
  if type(message) == 'string' and message ~= '' then
    local size = redis.call('STRLEN', full)
    if size < FULL_MAX then
      redis.call('APPEND', full, string.sub(message, 1, FULL_MAX - size))
      if size + #message > FULL_MAX then redis.call('APPEND', full, LOG_CUT) end
    end
    redis.call('EXPIRE', full, FULL_TTL)
  end
  redis.call('PUBLISH', ARGV[4] .. stream, id .. ' ' .. data)
  return id
end
-- a record from before runs were numbered is run 0
local function current()
  return redis.call('HGET', STATUS, d) or '', redis.call('HGET', RECORD, 'run') or '0'
end
local function may(before, after, table)
  local row = (table or ALLOWED)[before]
  return row ~= nil and row[after] == true
end
-- a new run's number, its log (kept 7 days after the end of a run of that number) cleared
local function new_run(counter)
  local n = redis.call('INCR', counter)
  redis.call('EXPIRE', counter, TTL)
  redis.call('DEL', ARGV[2] .. d .. '#' .. n, ARGV[3] .. d .. '#' .. n, FULL_LOG .. d .. '#' .. n)
  return n
end
local function set_secret(prefix, name, sealed, ttl)
  if sealed ~= '' then redis.call('SET', prefix .. name, sealed, 'EX', ttl) end
end
local function over(status) return status == '' or status == 'failed' or status == 'stopped' end
"""
)

# ARGV[9] run ('*': the current one), ARGV[10] the new status, ARGV[11] the event
_SAY = """
local status, run = current()
if (ARGV[9] == '*' and status ~= 'todo') or (ARGV[9] ~= '*' and run ~= ARGV[9])
    or not may(status, ARGV[10], SAID) then
  return {0, status, run}
end
redis.call('HSET', STATUS, d, ARGV[10])
return {1, emit(run, ARGV[11])}
"""

# KEYS[3] the runner's hold, KEYS[4] the queue; ARGV[9] run, ARGV[10] now, ARGV[11] the event
_CLAIM = """
local status, run = current()
if status ~= 'todo' or run ~= ARGV[9] then return {0, status, run} end
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], 'deployment', d, 'run', run, 'since', ARGV[10])
redis.call('HSET', STATUS, d, 'fetching')
redis.call('ZREM', KEYS[4], d)
return {1, emit(run, ARGV[11])}
"""

# KEYS[3] the runner's hold, KEYS[4] the queue; ARGV[9] run, ARGV[10] the event, ARGV[11] now
_HAND_BACK = """
local status, run = current()
if run ~= ARGV[9] or status == 'todo' or over(status) or not may(status, 'todo')
    or redis.call('HGET', KEYS[3], 'deployment') ~= d or redis.call('HGET', KEYS[3], 'run') ~= run then
  return {0, status, run}
end
redis.call('DEL', KEYS[3])
redis.call('HSET', STATUS, d, 'todo')
redis.call('HDEL', RECORD, 'runner', 'container', 'cached')
redis.call('HINCRBY', RECORD, 'handed_back', 1)
redis.call('ZADD', KEYS[4], redis.call('HGET', RECORD, 'requested_at') or ARGV[11], d)
return {1, emit(run, ARGV[10])}
"""

# KEYS[3] slug, KEYS[4] run counter, KEYS[5] next run, KEYS[6] queue, KEYS[7] ended, KEYS[8] save lock;
# ARGV[9] record fields (JSON), ARGV[10] now, ARGV[11] secrets' prefix, ARGV[12] sealed GitLab token,
# ARGV[13] its TTL, ARGV[14] sealed save token or '', ARGV[15] its TTL, ARGV[16] the event of a run
# queued behind an end, ARGV[17..19] the limits per user, per project and of the queue (0: none),
# ARGV[20] the prefix of next-run keys
_REQUEST = """
local status, run = current()
-- a deployment id is <project>:<branch>:<user>; a project path and a user name hold no ':'
-- the project and the user of a deployment id; the project in lower case (GitLab's paths are unique regardless of case)
local function owners(id)
  local project, user = string.match(id, '^([^:]*):.*:([^:]*)$')
  return string.lower(project), user
end
-- a run counts against the limits while it is queued, prepared or serving, or queued behind an end
local function counts(id, phase)
  if phase == 'stopping' then return redis.call('EXISTS', ARGV[20] .. id) == 1 end
  return not over(phase)
end
local function refusal()
  local per_user, per_project, queue_max = tonumber(ARGV[17]), tonumber(ARGV[18]), tonumber(ARGV[19])
  if per_user > 0 or per_project > 0 then
    local project, user = owners(d)
    local mine, theirs = 0, 0
    local all = redis.call('HGETALL', STATUS)
    for i = 1, #all, 2 do
      if all[i] ~= d and counts(all[i], all[i + 1]) then
        local p, u = owners(all[i])
        if u == user then mine = mine + 1 end
        if p == project then theirs = theirs + 1 end
      end
    end
    if per_user > 0 and mine >= per_user then return {'limit', 'user', mine} end
    if per_project > 0 and theirs >= per_project then return {'limit', 'project', theirs} end
  end
  local waiting = redis.call('ZCARD', KEYS[6])
  if queue_max > 0 and waiting >= queue_max then return {'limit', 'queue', waiting} end
  return nil
end
local fields = cjson.decode(ARGV[9])
local prefix = ARGV[11]
local function keep_save(hash, name_prefix)
  if ARGV[14] ~= '' then
    redis.call('HSET', hash, 'save_back', '1')
    set_secret(prefix, name_prefix .. SAVE_TOKEN, ARGV[14], ARGV[15])
  end
end
if status == 'stopping' then
  local behind = redis.call('HGET', KEYS[5], 'run')
  if behind then
    set_secret(prefix, PENDING .. GITLAB_TOKEN, ARGV[12], ARGV[13])  -- the newest, for a wait that may be long
    keep_save(KEYS[5], PENDING)
    return {'joined', behind}
  end
  local refused = refusal()
  if refused then return refused end
  local new = new_run(KEYS[4])
  for k, v in pairs(fields) do redis.call('HSET', KEYS[5], k, v) end
  redis.call('HSET', KEYS[5], 'run', new)
  redis.call('EXPIRE', KEYS[5], TTL)
  set_secret(prefix, PENDING .. GITLAB_TOKEN, ARGV[12], ARGV[13])
  keep_save(KEYS[5], PENDING)
  emit(new, ARGV[16])
  return {'behind', new}
end
if not over(status) then
  keep_save(RECORD, '')
  return {'joined', run}
end
local holder = redis.call('GET', KEYS[3])
if holder and holder ~= d and not over(redis.call('HGET', STATUS, holder) or '') then
  return {'slug', ''}
end
local refused = refusal()
if refused then return refused end
local new = new_run(KEYS[4])
redis.call('DEL', RECORD, KEYS[8])
for k, v in pairs(fields) do redis.call('HSET', RECORD, k, v) end
redis.call('HSET', RECORD, 'run', new)
redis.call('EXPIRE', RECORD, TTL)
redis.call('SET', KEYS[3], d, 'EX', TTL)
redis.call('HSET', STATUS, d, 'todo')
redis.call('ZREM', KEYS[7], d)
redis.call('ZADD', KEYS[6], ARGV[10], d)
set_secret(prefix, GITLAB_TOKEN, ARGV[12], ARGV[13])
keep_save(RECORD, '')
return {'started', new}
"""

# the end of a run that leaves nothing behind: frees its slug, notes when it ended
_ENDED = """
local function ended(ended_key, slug_prefix, now)
  redis.call('ZADD', ended_key, now, d)
  local slug = redis.call('HGET', RECORD, 'slug')
  if slug and redis.call('GET', slug_prefix .. slug) == d then redis.call('DEL', slug_prefix .. slug) end
end
local function drop_next(next_key, prefix, data)
  local behind = redis.call('HGET', next_key, 'run')
  if behind then
    emit(behind, data)
    redis.call('DEL', next_key, prefix .. PENDING .. GITLAB_TOKEN, prefix .. PENDING .. SAVE_TOKEN)
  end
end
"""

# KEYS[3] queue, KEYS[4] ended, KEYS[5] slugs' prefix, KEYS[6] next run; ARGV[9] now, ARGV[10] the event of a
# run stopped while queued, ARGV[11] the event of one being stopped, ARGV[12] secrets' prefix
_STOP = (
    _ENDED
    + """
local status, run = current()
if status == 'todo' then
  redis.call('ZREM', KEYS[3], d)
  for _, name in ipairs(SECRETS) do redis.call('DEL', ARGV[12] .. name) end
  redis.call('HSET', STATUS, d, 'stopped')
  ended(KEYS[4], KEYS[5], ARGV[9])
  emit(run, ARGV[10])
  return {status, run}
end
if status == 'stopping' then drop_next(KEYS[6], ARGV[12], ARGV[10]) end
if may(status, 'stopping') and status ~= 'stopping' then
  redis.call('HSET', STATUS, d, 'stopping')
  emit(run, ARGV[11])
end
return {status, run}
"""
)

# ARGV[9] run, ARGV[10] the claim, ARGV[11] the prefix of the claims that may be taken over ('': none)
_CLAIM_END = """
local status, run = current()
if run ~= ARGV[9] or over(status) then return {0, status, run} end
local holder = redis.call('HGET', RECORD, 'ending') or ''
if holder ~= '' and (ARGV[11] == '' or holder:sub(1, #ARGV[11]) ~= ARGV[11]) then return {0, status, run} end
redis.call('HSET', RECORD, 'ending', ARGV[10])
redis.call('HSET', STATUS, d, 'stopping')
return {1, status, run}
"""

# KEYS[3] next run, KEYS[4] queue, KEYS[5] ended, KEYS[6] slugs' prefix, KEYS[7] save lock; ARGV[9] run,
# ARGV[10] the claim, ARGV[11] the final status, ARGV[12] its event, ARGV[13] now, ARGV[14] secrets' prefix
_FINISH = (
    _ENDED
    + """
local status, run = current()
if run ~= ARGV[9] or status ~= 'stopping' or (redis.call('HGET', RECORD, 'ending') or '') ~= ARGV[10] then
  return {0, status, run}
end
redis.call('HSET', STATUS, d, ARGV[11])
emit(run, ARGV[12])
local behind = redis.call('HGETALL', KEYS[3])
if #behind == 0 then
  ended(KEYS[5], KEYS[6], ARGV[13])
  return {1, status, run, 0}
end
redis.call('DEL', RECORD, KEYS[3], KEYS[7])
redis.call('HSET', RECORD, unpack(behind))
redis.call('EXPIRE', RECORD, TTL)
local prefix = ARGV[14]
for _, name in ipairs({GITLAB_TOKEN, SAVE_TOKEN}) do
  if redis.call('EXISTS', prefix .. PENDING .. name) == 1 then
    redis.call('RENAME', prefix .. PENDING .. name, prefix .. name)
  end
end
local slug = redis.call('HGET', RECORD, 'slug')
if slug then redis.call('SET', KEYS[6] .. slug, d, 'EX', TTL) end
redis.call('HSET', STATUS, d, 'todo')
redis.call('ZADD', KEYS[4], ARGV[13], d)
return {1, status, run, tonumber(redis.call('HGET', RECORD, 'run'))}
"""
)

# KEYS[3] next run; ARGV[9] run, ARGV[10] the claim, ARGV[11] the status it goes back to, ARGV[12] the event
# of a run queued behind (dropped when the notebook is kept), ARGV[13] secrets' prefix
_GIVE_BACK = (
    _ENDED
    + """
local status, run = current()
if run ~= ARGV[9] or status ~= 'stopping' or (redis.call('HGET', RECORD, 'ending') or '') ~= ARGV[10]
    or not may(status, ARGV[11]) then
  return {0, status, run}
end
redis.call('HSET', STATUS, d, ARGV[11])
redis.call('HDEL', RECORD, 'ending')
if ARGV[11] == 'ready' then drop_next(KEYS[3], ARGV[13], ARGV[12]) end
return {1, status, run}
"""
)

_SCRIPTS = {
    "say": _SAY,
    "claim": _CLAIM,
    "hand_back": _HAND_BACK,
    "request": _REQUEST,
    "stop": _STOP,
    "claim_end": _CLAIM_END,
    "finish": _FINISH,
    "give_back": _GIVE_BACK,
}


def _found(answer: list[Any]) -> tuple[Phase | None, int | None]:
    return (Phase(answer[1]) if answer[1] else None), (int(answer[2]) if answer[1] else None)


class Lifecycle:
    """The checked moves of every deployment's runs (see the module's docstring)."""

    def __init__(self, client: redis.Redis, events: EventLog) -> None:
        self.redis, self.events = client, events
        self._scripts = {name: client.register_script(_PRELUDE + body) for name, body in _SCRIPTS.items()}

    def _call(self, script: str, deployment_id: str, keys: list[str], args: list[Any], client: Any = None) -> Any:
        return self._scripts[script](
            keys=[schema.STATUS, schema.deployment(deployment_id), *keys],
            args=[
                deployment_id,
                schema.log(""),
                schema.logseq(""),
                schema.events(""),
                self.events.max_events,
                schema.RECORD_TTL,
                self.events.retention,
                self.events.full_max,
                *args,
            ],
            client=client or self.redis,
        )

    def _refused(self, run: Run, wanted: str, answer: list[Any]) -> Moved:
        phase, current = _found(answer)
        moved = Moved(run.deployment, run.number, wanted, phase, current)
        log.warning("%s", moved)
        return moved

    # -- reading ------------------------------------------------------------------------

    def current(self, deployment_id: str) -> tuple[Phase | None, Run | None, str]:
        """(status, current run, who claimed its end or '')."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(schema.STATUS, deployment_id)
            pipe.hmget(schema.deployment(deployment_id), "run", "ending")
            status, (run, ending) = pipe.execute()
        if not status:
            return None, None, ""
        return Phase(status), Run(deployment_id, int(run or 0)), ending or ""  # run 0: a record from before runs

    def expect(self, run: Run, phase: Phase) -> None:
        """Raise :class:`Moved` unless ``run`` is the current run and in ``phase`` (a check
        before a write that is not a move, such as recording a container)."""
        status, current, _ = self.current(run.deployment)
        if current != run or status is not phase:
            raise Moved(run.deployment, run.number, f"{phase.value} work", status, current.number if current else None)

    def holds(self, run: Run, claim: str) -> bool:
        """Whether ``claim`` still holds the end of ``run``."""
        number, ending = self.redis.hmget(schema.deployment(run.deployment), "run", "ending")
        return int(number or 0) == run.number and ending == claim

    def newest(self, deployment_id: str) -> Run | None:
        """The run a new follower of the deployment follows: the one queued behind the end of the
        current run, else the current run."""
        return self.pending(deployment_id) or self.current(deployment_id)[1]

    def pending(self, deployment_id: str) -> Run | None:
        """The run queued behind the end of the current one, if any."""
        number = self.redis.hget(schema.next_run(deployment_id), "run")
        return None if number is None else Run(deployment_id, int(number))

    # -- a run's start ------------------------------------------------------------------

    def request(
        self,
        dep: Deployment,
        slug: str,
        fields: dict[str, str],
        gitlab_token: bytes,
        token_ttl: int,
        save_token: bytes = b"",
        save_ttl: int = 0,
        quotas: Quotas = NO_QUOTAS,
    ) -> tuple[Outcome, Run]:
        """Start a run of ``dep``, to be served at ``<slug>.<fqdn>``, unless one is queued,
        being prepared or serving (join it), or queue one behind the end of a run that is
        stopping. The tokens come sealed (:meth:`~booklab.state.vault.Vault.seal`): they are kept
        for the run that starts, and the save token also for one joined. Raises
        :class:`SlugTaken` when another live deployment holds ``slug``, and
        :class:`LimitReached` when a new run would pass ``quotas`` (a run joined never does)."""
        # to the microsecond: the queue is in this order, so requests one after the other must not tie (in a tie,
        # Redis orders by name: a later request could pass an earlier one)
        now = f"{time.time():.6f}"
        record = {"project": dep.project, "ref": dep.ref, "user": dep.user, "slug": slug, "requested_at": now, **fields}
        waiting = encode(Phase.WAITING, "Waiting for the notebook's previous run to end.")
        answer = self._call(
            "request",
            dep.id,
            [
                schema.slug(slug),
                schema.runseq(dep.id),
                schema.next_run(dep.id),
                schema.QUEUE,
                schema.ENDED,
                schema.saving(dep.id),
            ],
            [
                json.dumps(record),
                now,
                schema.secret(dep.id, ""),
                gitlab_token,
                token_ttl,
                save_token,
                save_ttl or token_ttl,
                waiting,
                quotas.per_user,
                quotas.per_project,
                quotas.queue,
                schema.next_run(""),
            ],
        )
        if answer[0] == "limit":
            raise LimitReached(quotas.refusal(dep, answer[1], int(answer[2])))
        if answer[0] == "slug":
            raise SlugTaken(
                f"The notebook address {slug} is held by another notebook, so this one cannot "
                "be served there. This never happens by chance: tell your Booklab operator."
            )
        return Outcome(answer[0]), Run(dep.id, int(answer[1]))

    def claim(self, run: Run, runner: str) -> bool:
        """``runner`` takes the queued run (and holds it); False when it is no longer queued."""
        answer = self._call(
            "claim",
            run.deployment,
            [schema.runner(runner), schema.QUEUE],
            [run.number, f"{time.time():.3f}", encode(Phase.FETCHING, "A runner took the deployment.")],
        )
        if not answer[0]:
            self._refused(run, "the claim of a runner", answer)
            return False
        return True

    def hand_back(self, run: Run, runner: str, message: str) -> bool:
        """``runner``, whose Docker Engine did not answer, gives back the run it holds: queued again in its
        place (the time of its request), for another runner; its log says ``message``. False when the
        runner no longer holds the run, or it is no longer being prepared (stopped meanwhile, say)."""
        answer = self._call(
            "hand_back",
            run.deployment,
            [schema.runner(runner), schema.QUEUE],
            [run.number, encode(Phase.WAITING, message), f"{time.time():.3f}"],
        )
        if not answer[0]:
            self._refused(run, f"handing back by {runner}", answer)
            return False
        return True

    # -- a run's progress ---------------------------------------------------------------

    def say(self, run: Run, phase: Phase, message: str = "", **extra: Any) -> int:
        """Append an event of ``phase`` to the run's log and make its status ``phase``'s;
        raises :class:`Moved` when the run is over or moved where ``phase`` may not follow."""
        answer = self._call(
            "say", run.deployment, [], [run.number, phase.status.value, encode(phase, message, **extra)]
        )
        if not answer[0]:
            raise self._refused(run, f"a {phase.value} event", answer)
        return int(answer[1])

    def tell_waiting(self, client: Any, deployment_id: str, message: str, position: int) -> None:
        """Through ``client`` (a transaction), tell the current run of a queued deployment its
        position; nothing when it is no longer queued."""
        self._call(
            "say",
            deployment_id,
            [],
            ["*", Phase.TODO.value, encode(Phase.WAITING, message, position=position)],
            client=client,
        )

    # -- a run's end --------------------------------------------------------------------

    def stop(self, deployment_id: str, by: str = "") -> tuple[Phase | None, Run | None]:
        """Ask for the end of the deployment's current run: a queued one is stopped at once,
        one being prepared or serving becomes ``stopping`` (its runner ends it). A run
        queued behind an end is dropped. ``by``: who asked, when not its owner (said in its
        log). Returns the status it had and the run."""
        asked = f" ({by} asked)" if by else ""
        answer = self._call(
            "stop",
            deployment_id,
            [schema.QUEUE, schema.ENDED, schema.slug(""), schema.next_run(deployment_id)],
            [
                f"{time.time():.3f}",
                encode(Phase.STOPPED, f"Stopped before a runner took it{asked}."),
                encode(Phase.STOPPING, f"Stopping the notebook{asked}..."),
                schema.secret(deployment_id, ""),
            ],
        )
        phase, number = (Phase(answer[0]) if answer[0] else None), answer[1]
        return phase, (Run(deployment_id, int(number)) if number else None)

    def claim_end(self, run: Run, claimant: str, take_over_from: str = "") -> Claim | None:
        """Claim the end of ``run`` for ``claimant`` (a runner's name); None when the run is
        over, another run, or another claimant's, unless that claimant is the runner named
        ``take_over_from``, known to be gone (lost, restarted, or its process that ended it died)."""
        token = f"{claimant} {uuid.uuid4().hex[:12]}"
        answer = self._call(
            "claim_end", run.deployment, [], [run.number, token, f"{take_over_from} " if take_over_from else ""]
        )
        if not answer[0]:
            self._refused(run, f"the end's claim by {claimant}", answer)
            return None
        return Claim(token, Phase(answer[1]))

    def finish(self, run: Run, claim: str, phase: Phase, message: str) -> Run | None:
        """End the claimed run in ``phase`` (failed or stopped); the run queued behind its end,
        now queued itself, or None."""
        answer = self._call(
            "finish",
            run.deployment,
            [
                schema.next_run(run.deployment),
                schema.QUEUE,
                schema.ENDED,
                schema.slug(""),
                schema.saving(run.deployment),
            ],
            [
                run.number,
                claim,
                phase.value,
                encode(phase, message),
                f"{time.time():.3f}",
                schema.secret(run.deployment, ""),
            ],
        )
        if not answer[0]:
            self._refused(run, f"the {phase.value} event", answer)
            return None
        return Run(run.deployment, int(answer[3])) if answer[3] else None

    def give_back(self, run: Run, claim: Claim) -> bool:
        """Give the claimed end back, as if it had not been claimed (a Save now took the
        notebook in between: the end waits for it)."""
        return self._give_back(run, claim.token, claim.before if claim.before is Phase.READY else Phase.STOPPING)

    def keep(self, run: Run, claim: str) -> bool:
        """The claimed end is called off (the save that was to come first failed): the run is
        ``ready`` again, and a run queued behind that end is dropped."""
        return self._give_back(run, claim, Phase.READY)

    def _give_back(self, run: Run, claim: str, status: Phase) -> bool:
        answer = self._call(
            "give_back",
            run.deployment,
            [schema.next_run(run.deployment)],
            [
                run.number,
                claim,
                status.value,
                encode(
                    Phase.STOPPED,
                    "Your notebook's changes could not be saved, so it keeps running with your "
                    "work: open it from your notebooks.",
                ),
                schema.secret(run.deployment, ""),
            ],
        )
        if not answer[0]:
            self._refused(run, f"giving the end back ({status.value})", answer)
            return False
        return True
