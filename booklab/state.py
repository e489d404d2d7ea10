"""Deployment and runner state in Redis, on top of the key names in :mod:`booklab.schema`.

``Deployments`` keeps each deployment's record, status and place in the queue, and
decides atomically whether a request starts a deployment or joins one; a live
deployment holds its notebook's host name (its slug), which no other deployment takes over. ``Runners`` keeps
which runners are alive and what each one holds.
"""

from __future__ import annotations

import time

import redis

from booklab import schema
from booklab.deployment import Deployment, InvalidDeployment
from booklab.errors import BooklabError
from booklab.phases import Phase


class SlugTaken(BooklabError):
    """Another live deployment holds the host name a new deployment would be served at."""


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


class Deployments:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._forget_ended = client.register_script(FORGET_ENDED)

    def start_or_join(self, dep: Deployment, slug: str, **fields: str) -> bool:
        """Queue ``dep``, to be served at ``<slug>.<fqdn>``, unless it is already queued,
        running or ready; True when queued now. Raises :class:`SlugTaken` when another live
        deployment holds ``slug``."""
        key, slug_key = schema.deployment(dep.id), schema.slug(slug)
        while True:
            with self.redis.pipeline() as pipe:
                try:
                    pipe.watch(schema.STATUS, slug_key)
                    current = pipe.hget(schema.STATUS, dep.id)
                    if _is_active(current):
                        pipe.reset()
                        return False
                    holder = pipe.get(slug_key)
                    if holder not in (None, dep.id) and _is_active(pipe.hget(schema.STATUS, holder)):
                        pipe.reset()
                        raise SlugTaken(
                            f"The notebook address {slug} is held by another notebook, so this one cannot "
                            "be served there. This never happens by chance: tell your Booklab operator.")
                    pipe.multi()
                    pipe.delete(key, schema.stop(dep.id), schema.saving(dep.id))
                    pipe.hset(key, mapping={"project": dep.project, "ref": dep.ref, "user": dep.user,
                                            "requested_at": f"{time.time():.3f}", **fields})
                    pipe.expire(key, schema.RECORD_TTL)
                    pipe.set(slug_key, dep.id, ex=schema.RECORD_TTL)
                    pipe.hset(schema.STATUS, dep.id, Phase.TODO.value)
                    pipe.zrem(schema.ENDED, dep.id)
                    pipe.zadd(schema.QUEUE, {dep.id: time.time()})
                    pipe.execute()
                    return True
                except redis.WatchError:
                    continue

    def record(self, deployment_id: str) -> dict[str, str]:
        return self.redis.hgetall(schema.deployment(deployment_id))

    def records(self, deployment_ids: list[str]) -> list[dict[str, str]]:
        """The records of several deployments, in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            for deployment_id in deployment_ids:
                pipe.hgetall(schema.deployment(deployment_id))
            return pipe.execute()

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

    def ending(self, deployment_id: str, slug: str, now: float | None = None) -> None:
        """Just before the deployment's final event: give ``slug`` up, and note when it ended so
        that its status is forgotten :data:`~booklab.schema.RECORD_TTL` later (its owner's list
        shows it until then, like its log). Forgets the statuses of a few that ended before."""
        now = time.time() if now is None else now
        self.redis.zadd(schema.ENDED, {deployment_id: now})
        self._forget_ended(keys=[schema.ENDED, schema.STATUS],
                           args=[now - schema.RECORD_TTL, PRUNE_BATCH, Phase.FAILED.value, Phase.STOPPED.value])
        self._forget_slug(slug, deployment_id)

    def _forget_slug(self, slug: str, deployment_id: str) -> None:
        key = schema.slug(slug)
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(key)
                if pipe.get(key) != deployment_id:
                    return
                pipe.multi()
                pipe.delete(key)
                pipe.execute()
            except redis.WatchError:
                pass  # another deployment took it since

    def queue_position(self, deployment_id: str) -> int | None:
        """1 for the next deployment a runner will take; None when not queued."""
        rank = self.redis.zrank(schema.QUEUE, deployment_id)
        return None if rank is None else rank + 1

    def dequeue(self, deployment_id: str) -> bool:
        """Take it out of the queue; False when it was not queued."""
        return bool(self.redis.zrem(schema.QUEUE, deployment_id))

    def queued(self) -> list[str]:
        """The deployments waiting for a runner, next one first."""
        return self.redis.zrange(schema.QUEUE, 0, -1)

    def request_stop(self, deployment_id: str) -> None:
        self.redis.set(schema.stop(deployment_id), "1", ex=schema.RECORD_TTL)

    def cancel_stop(self, deployment_id: str) -> None:
        self.redis.delete(schema.stop(deployment_id))

    def stop_requested(self, deployment_id: str) -> bool:
        return bool(self.redis.exists(schema.stop(deployment_id)))



def _is_active(status: str | None) -> bool:
    return status is not None and Phase(status).is_active


class Runners:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def beat(self, name: str) -> None:
        """Declare the runner and refresh its heartbeat."""
        with self.redis.pipeline() as pipe:
            pipe.sadd(schema.RUNNERS, name)
            pipe.set(schema.heartbeat(name), f"{time.time():.3f}", ex=schema.HEARTBEAT_TTL)
            pipe.execute()

    def alive(self) -> list[str]:
        names = sorted(self.redis.smembers(schema.RUNNERS))
        beats = self.redis.mget([schema.heartbeat(n) for n in names]) if names else []
        return [n for n, beat in zip(names, beats) if beat is not None]

    def retire(self, name: str) -> None:
        with self.redis.pipeline() as pipe:
            pipe.srem(schema.RUNNERS, name)
            pipe.delete(schema.heartbeat(name), schema.runner(name))
            pipe.execute()

    def hold(self, name: str, deployment_id: str) -> None:
        self.redis.hset(schema.runner(name), mapping={"deployment": deployment_id,
                                                      "since": f"{time.time():.3f}"})

    def attach(self, name: str, **fields: str) -> None:
        self.redis.hset(schema.runner(name), mapping=fields)

    def held(self, name: str) -> dict[str, str]:
        """What the runner serves: ``deployment``, ``since`` and, once started,
        ``container``, ``url``, ``started_at``; empty when it is free."""
        return self.redis.hgetall(schema.runner(name))

    def release(self, name: str, deployment_id: str) -> None:
        """Free the runner, if it still holds ``deployment_id``."""
        key = schema.runner(name)
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(key)
                if pipe.hget(key, "deployment") != deployment_id:
                    return
                pipe.multi()
                pipe.delete(key)
                pipe.execute()
            except redis.WatchError:
                pass
