"""Booklab's images in Redis, for the cleaner of each runner host and the operator's page.

When a notebook of each image last launched (all hosts alike: an image is named by its
project and commit wherever it was built); what images each Docker Engine holds, as its
cleaner last saw them (a host that stops publishing drops out); the removals an operator
asked for, which only a runner of that host can do (the web tier has no Docker Engine); and
how many images each host's cleaner removed, for ``/metrics``; how many launches each branch had in
each hour of the last day, by distinct users (``warm/recent``).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass

import redis

from booklab.state import schema

#: seconds a host's inventory is shown without news from its cleaner, unless told otherwise
INVENTORY_TTL = 3 * 600
#: hours of launches :meth:`Images.most_launched` counts (warm/recent)
LAUNCH_COUNT_HOURS = 24

#: forget the latest image of each branch (field, image, ...) that is still that image and whose launches are forgotten
_FORGET_LATEST = """
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] and not redis.call('ZSCORE', KEYS[2], ARGV[i + 1]) then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
"""


#: KEYS[1] the hour's launch counts, KEYS[2] the hour's launchers; ARGV the branch, the user, the TTL: a user counts
#: once an hour for a branch, so that no one alone makes a branch the most launched (warm/recent)
_COUNT_LAUNCHER = """
if redis.call('SADD', KEYS[2], ARGV[1] .. ' ' .. ARGV[2]) == 1 then
  redis.call('ZINCRBY', KEYS[1], 1, ARGV[1])
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
"""


@dataclass(frozen=True)
class ImageInfo:
    """One of Booklab's images on a Docker Engine."""

    name: str
    """``repository:tag``"""
    id: str
    size: int
    """bytes, as ``docker images`` shows them (layers shared with other images included)"""
    created: float
    """unix time"""
    last_launched: float | None
    """unix time a notebook of it last launched (or it was built); None: never since Booklab keeps count"""
    in_use: bool
    """a container (running or stopped) or a deployment in progress uses it: never removed"""

    @property
    def last_used(self) -> float:
        """When it was last launched, else when it was built."""
        return self.created if self.last_launched is None else self.last_launched


def _branch_key(project: str, ref: str) -> str:
    """How the branch ``ref`` of ``project`` is named here: the project in lower case, as GitLab finds it in any
    case (``warm/projects`` may spell it otherwise than GitLab); a branch's name is its own."""
    return f"{project.lower()}:{ref}"


class Images:
    def __init__(self, client: redis.Redis, inventory_ttl: float = INVENTORY_TTL) -> None:
        self.redis = client
        self.inventory_ttl = inventory_ttl
        self._forget_latest = client.register_script(_FORGET_LATEST)
        self._count = client.register_script(_COUNT_LAUNCHER)

    def launched(self, image: str, when: float | None = None) -> None:
        """A notebook of ``image`` launched at ``when`` (now), or it was just built."""
        self.redis.zadd(schema.IMAGE_LAUNCHES, {image: time.time() if when is None else when})

    def last_launched(self, image: str) -> float | None:
        return self.redis.zscore(schema.IMAGE_LAUNCHES, image)

    def last_launches(self, images: list[str]) -> dict[str, float | None]:
        """:meth:`last_launched` of each of ``images``, in one round trip."""
        if not images:
            return {}
        return dict(zip(images, self.redis.zmscore(schema.IMAGE_LAUNCHES, images)))

    def forget_launches_before(self, when: float) -> None:
        """Forget launches older than ``when`` (an image launched before counts from its build), and the branches
        whose latest image was launched last before then (:meth:`latest`)."""
        self.redis.zremrangebyscore(schema.IMAGE_LAUNCHES, "-inf", f"({when}")
        latest = list(self.redis.hscan_iter(schema.IMAGE_LATEST, count=1000))
        if not latest:
            return
        launches = self.redis.zmscore(schema.IMAGE_LAUNCHES, [image for _, image in latest])
        forgotten = [
            item for (branch, image), launch in zip(latest, launches) if launch is None for item in (branch, image)
        ]
        if forgotten:  # unless launched again meanwhile
            self._forget_latest(keys=[schema.IMAGE_LATEST, schema.IMAGE_LAUNCHES], args=forgotten)

    def launched_on(
        self, host: str, image: str, project: str, ref: str, by: str = "", now: float | None = None
    ) -> None:
        """A notebook of ``image``, the newest of the branch ``ref`` of ``project``, launched ``now`` on ``host``
        for the user ``by`` (or it was built there for the branch's warm spares: empty), whose Docker Engine holds
        it from now on (for placement: :mod:`booklab.dispatch.placement`); a user's first launch of the branch in
        the hour counts one more for it (:meth:`most_launched`)."""
        now = time.time() if now is None else now
        hour = int(now // 3600)
        with self.redis.pipeline() as pipe:
            pipe.zadd(schema.IMAGE_LAUNCHES, {image: now})
            pipe.sadd(schema.image_hosts(image), host)
            pipe.expire(schema.image_hosts(image), schema.RECORD_TTL)
            pipe.hset(schema.IMAGE_LATEST, _branch_key(project, ref), image)
            pipe.execute()
        if by:
            keys = [schema.launch_counts(hour), schema.launchers(hour)]
            self._count(keys=keys, args=[_branch_key(project, ref), by, (LAUNCH_COUNT_HOURS + 1) * 3600])

    def most_launched(self, n: int, now: float | None = None) -> list[str]:
        """The latest images of the ``n`` branches launched most in the last :data:`LAUNCH_COUNT_HOURS` hours (by
        users, each counted once an hour), most launched first (a tie: by branch)."""
        hour = int((time.time() if now is None else now) // 3600)
        keys = [schema.launch_counts(hour - i) for i in range(LAUNCH_COUNT_HOURS)]
        counted = sorted(self.redis.zunion(keys, withscores=True), key=lambda pair: (-pair[1], pair[0]))[:n]
        if not counted:
            return []
        images = self.redis.hmget(schema.IMAGE_LATEST, [branch for branch, _ in counted])
        return [image for image in images if image]

    def latest(self, project: str, ref: str) -> str | None:
        """The image a notebook of the branch ``ref`` of ``project`` launched last, on any host."""
        return self.redis.hget(schema.IMAGE_LATEST, _branch_key(project, ref))

    def hosts_of(self, image: str) -> set[str]:
        """The hosts whose Docker Engine holds ``image``, as far as Booklab knows."""
        return self.redis.smembers(schema.image_hosts(image))

    def removed_from(self, host: str, images: list[str]) -> None:
        """``images`` are no longer on the Docker Engine ``host``."""
        with self.redis.pipeline() as pipe:
            for image in images:
                pipe.srem(schema.image_hosts(image), host)
            pipe.execute()

    def publish(self, host: str, images: list[ImageInfo]) -> None:
        """``images`` are what Booklab has on the Docker Engine ``host`` now."""
        entry = {"until": time.time() + self.inventory_ttl, "images": [dataclasses.asdict(i) for i in images]}
        self.redis.hset(schema.IMAGE_INVENTORY, host, json.dumps(entry))

    def inventory(self) -> dict[str, list[ImageInfo]]:
        """Each host's images, as its cleaner last published them, for hosts heard of lately; by name."""
        now, found, gone = time.time(), {}, []
        for host, raw in sorted(self.redis.hgetall(schema.IMAGE_INVENTORY).items()):
            entry = json.loads(raw)
            if entry["until"] < now:
                gone.append(host)
                continue
            found[host] = sorted((ImageInfo(**image) for image in entry["images"]), key=lambda i: i.name)
        if gone:
            self.redis.hdel(schema.IMAGE_INVENTORY, *gone)
        return found

    def request_removal(self, host: str, image: str) -> None:
        """An operator asks to remove ``image`` from the Docker Engine ``host`` (its cleaner refuses one in use)."""
        self.redis.sadd(schema.image_removals(host), image)

    def pending_removals(self, host: str) -> set[str]:
        return self.redis.smembers(schema.image_removals(host))

    def take_removals(self, host: str) -> list[str]:
        """The removals asked for ``host``, taken at once: no other runner gets them."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.smembers(schema.image_removals(host))
            pipe.delete(schema.image_removals(host))
            taken, _ = pipe.execute()
        return sorted(taken)

    def count_removed(self, host: str, count: int) -> None:
        """The cleaner of ``host`` removed ``count`` more images."""
        if count:
            self.redis.hincrby(schema.IMAGES_REMOVED, host, count)

    def removed(self) -> dict[str, int]:
        """How many images each host's cleaner ever removed."""
        return {host: int(n) for host, n in self.redis.hgetall(schema.IMAGES_REMOVED).items()}

    def bytes_by_host(self) -> dict[str, int]:
        """The bytes of Booklab's images on each host heard of lately, each image counted once."""
        return {
            host: sum({image.id: image.size for image in images}.values()) for host, images in self.inventory().items()
        }
