"""Deployment and runner state in Redis, on top of the key names in :mod:`booklab.state.schema`.

``Deployments`` reads each deployment's record, status and place in the queue (their
moves are :mod:`booklab.state.lifecycle`'s); a live deployment holds its notebook's host name (its
slug), which no other deployment takes over. ``Runners`` keeps which runners are alive and
what each one holds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from booklab.errors import InvalidDeployment
from booklab.phases import Phase
from booklab.state import schema
from booklab.state.deployment import Deployment

#: how many statuses of long-ended deployments each end forgets at most
PRUNE_BATCH = 100

#: forgets the statuses of deployments that ended before ARGV[1] and are still ended
FORGET_ENDED = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local status = redis.call('HGET', KEYS[2], id)
  if status == ARGV[3] or status == ARGV[4] then redis.call('HDEL', KEYS[2], id) end
  redis.call('ZREM', KEYS[1], id)
end
return #ids
"""


@dataclass(frozen=True)
class Overview:
    """A deployment's record, the number of the run queued behind the end of its current one, its place in the
    queue (1: next) and the changes kept of its given-up saves (run number -> JSON), as :meth:`Deployments.overviews`
    reads them."""

    record: dict[str, str]
    next_run: int | None
    position: int | None
    kept: dict[str, str]


class Deployments:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._forget_ended = client.register_script(FORGET_ENDED)

    def record(self, deployment_id: str) -> dict[str, str]:
        return self.redis.hgetall(schema.deployment(deployment_id))

    def records(self, deployment_ids: list[str]) -> list[dict[str, str]]:
        """The records of several deployments, in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            for deployment_id in deployment_ids:
                pipe.hgetall(schema.deployment(deployment_id))
            return pipe.execute()

    def overviews(self, deployment_ids: list[str]) -> list[Overview]:
        """What the API shows of several deployments besides their status, in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            for deployment_id in deployment_ids:
                pipe.hgetall(schema.deployment(deployment_id))
                pipe.hget(schema.next_run(deployment_id), "run")
                pipe.zrank(schema.QUEUE, deployment_id)
                pipe.hgetall(schema.kept(deployment_id))
            found = pipe.execute()
        return [
            Overview(record, None if run is None else int(run), None if rank is None else rank + 1, kept)
            for record, run, rank, kept in zip(*[iter(found)] * 4)
        ]

    def update(self, deployment_id: str, **fields: str) -> None:
        self.redis.hset(schema.deployment(deployment_id), mapping=fields)

    def status(self, deployment_id: str) -> Phase | None:
        value = self.redis.hget(schema.STATUS, deployment_id)
        return None if value is None else Phase(value)

    def all_statuses(self) -> dict[str, Phase]:
        return {d: Phase(s) for d, s in self.redis.hgetall(schema.STATUS).items()}

    def of_user(self, username: str) -> list[tuple[Deployment, Phase]]:
        """The user's deployments with their status, sorted by id."""
        mine = []
        for deployment_id, status in sorted(self.all_statuses().items()):
            try:
                dep = Deployment.from_id(deployment_id)
            except InvalidDeployment:
                continue
            if dep.user == username:
                mine.append((dep, status))
        return mine

    def by_slug(self, slug: str) -> Deployment | None:
        """The live deployment whose notebook is served at ``<slug>.<fqdn>``, or None; in
        two O(1) lookups, whatever the number of deployments."""
        found = self.redis.get(schema.slug(slug))
        if found is None or not _is_active(self.redis.hget(schema.STATUS, found)):
            return None
        try:
            return Deployment.from_id(found)
        except InvalidDeployment:
            return None

    def forget_long_ended(self, now: float | None = None) -> None:
        """Forget the statuses of a few deployments that ended more than
        :data:`~booklab.state.schema.RECORD_TTL` ago (their owner's list shows them until then, like their logs)."""
        now = time.time() if now is None else now
        self._forget_ended(
            keys=[schema.ENDED, schema.STATUS],
            args=[now - schema.RECORD_TTL, PRUNE_BATCH, Phase.FAILED.value, Phase.STOPPED.value],
        )

    def queue_position(self, deployment_id: str) -> int | None:
        """1 for the next deployment a runner will take; None when not queued."""
        rank = self.redis.zrank(schema.QUEUE, deployment_id)
        return None if rank is None else rank + 1

    def dequeue(self, deployment_id: str) -> bool:
        """Take it out of the queue; False when it was not queued."""
        return bool(self.redis.zrem(schema.QUEUE, deployment_id))


def _is_active(status: str | None) -> bool:
    return status is not None and Phase(status).is_active


class Runners:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def beat(self, name: str, host: str = "") -> None:
        """Declare the runner and refresh its heartbeat; ``host``: its Docker Engine's host, when known."""
        with self.redis.pipeline() as pipe:
            pipe.sadd(schema.RUNNERS, name)
            pipe.set(schema.heartbeat(name), f"{time.time():.3f}", ex=schema.HEARTBEAT_TTL)
            if host:
                pipe.hset(schema.RUNNER_HOSTS, name, host)
            pipe.execute()

    def declared(self) -> list[str]:
        """Every runner declared, alive or lost, by name."""
        return sorted(self.redis.smembers(schema.RUNNERS))

    def last_beats(self, names: list[str]) -> dict[str, float | None]:
        """When each runner last beat (unix time); None once its heartbeat expired."""
        beats = self.redis.mget([schema.heartbeat(n) for n in names]) if names else []
        return {n: None if beat is None else float(beat) for n, beat in zip(names, beats)}

    def hosts(self) -> dict[str, str]:
        """The host of each runner that said which."""
        return self.redis.hgetall(schema.RUNNER_HOSTS)

    def alive(self) -> list[str]:
        names = sorted(self.redis.smembers(schema.RUNNERS))
        beats = self.redis.mget([schema.heartbeat(n) for n in names]) if names else []
        return [n for n, beat in zip(names, beats) if beat is not None]

    def idle_hosts(self) -> set[str]:
        """The hosts with a runner alive that serves nothing, as far as Redis knows (a runner may take a
        deployment the next instant)."""
        names = self.alive()
        if not names:
            return set()
        with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.exists(schema.runner(name))
            pipe.hmget(schema.RUNNER_HOSTS, names)
            *holding, hosts = pipe.execute()
        return {host for busy, host in zip(holding, hosts) if not busy and host}

    def retire(self, name: str) -> None:
        with self.redis.pipeline() as pipe:
            pipe.srem(schema.RUNNERS, name)
            pipe.delete(schema.heartbeat(name), schema.runner(name))
            pipe.hdel(schema.RUNNER_HOSTS, name)
            pipe.execute()

    def attach(self, name: str, **fields: str) -> None:
        self.redis.hset(schema.runner(name), mapping=fields)

    def held(self, name: str) -> dict[str, str]:
        """What the runner serves: ``deployment``, ``since`` and, once started,
        ``container``, ``url``, ``started_at``; empty when it is free."""
        return self.redis.hgetall(schema.runner(name))

    def release(self, name: str, deployment_id: str, run: int | None = None) -> None:
        """Free the runner, if it still holds ``deployment_id`` (its run ``run``, when given)."""
        key = schema.runner(name)
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(key)
                deployment, held_run = pipe.hmget(key, "deployment", "run")
                if deployment != deployment_id or (run is not None and int(held_run or 0) != run):
                    return
                pipe.multi()
                pipe.delete(key)
                pipe.execute()
            except redis.WatchError:
                pass
