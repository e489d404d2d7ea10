"""Keeps Booklab's images from filling a runner host's disk.

Booklab's images on a Docker Engine are those named as :func:`booklab.pipeline.builder.image_name`
(and :func:`~booklab.pipeline.builder.rebuild_name`) names them under ``build/image_prefix``;
the base image, the runner's and anyone else's are never touched. One cleaning, by one runner of
each engine at a time (:func:`clean`):

1. the removals an operator asked for (the admin page's Delete), refused for an image in use;
2. images unlaunched for longer than ``images/max_age``;
3. while the images take more than ``images/max_disk``, or the Docker data disk has less than
   :data:`MIN_FREE` of it free, the least recently launched (an image never launched: since
   its build) — the choice is :func:`to_remove`, a pure function;
4. dangling images older than ``build/timeout`` (so no build in progress loses a layer):
   every one with ``images/prune_dangling``, else those Booklab built;

never an image a container uses (running or stopped) or the image of a deployment in
progress (queued, building, launching, ready, ending). Each removal is a line of the runner's
log; then the host's images are published for the operator's page and ``/metrics``. Runners
clean on a schedule (``images/clean_interval``) and before a build when space is short.

With a registry (``images/registry``) and ``images/registry_max_age``, one runner of all, once per
``images/clean_interval``, also deletes from the registry the images unlaunched for longer, on any
host (:func:`prune_registry`); a host that lacks an image pulls it from the registry, so a local
removal costs a pull, not a build.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import docker
import redis

from booklab.config import Config
from booklab.context import Context
from booklab.errors import RegistryError
from booklab.pipeline import builder, registry
from booklab.pipeline.registry import Registry
from booklab.state import schema
from booklab.state.images import ImageInfo
from booklab.units import human_size

log = logging.getLogger(__name__)

#: the share of the Docker data disk a cleaning keeps free, whatever images/max_disk allows
MIN_FREE = 0.10
#: seconds one runner may hold its host's cleaning
LOCK_TTL = 300
#: seconds a launch is remembered at least (longer when images/max_age asks for it)
LAUNCHES_KEPT = 90 * 86400
#: seconds beyond build/timeout before a dangling image may go: no build still uses it
DANGLING_MARGIN = 60
#: the label a build puts on its image: the name it was built under, which it keeps once dangling
BUILT_AS = "booklab.image"


@dataclass(frozen=True)
class Removal:
    image: ImageInfo
    why: str


@dataclass(frozen=True)
class Disk:
    """The Docker Engine's data disk, as the runner sees it."""

    path: str
    size: int
    free: int


def to_remove(
    images: Sequence[ImageInfo], *, now: float, max_age: int, max_bytes: int | None, short_of: int = 0
) -> list[Removal]:
    """Which of ``images`` to remove, and why: those not in use and unused for longer than
    ``max_age`` seconds (0: none), then the least recently used until they take at most
    ``max_bytes`` (None: no limit) and ``short_of`` more bytes are freed for the disk."""
    removals = [
        Removal(image, f"unused for {(now - image.last_used) / 86400:.1f} days, longer than images/max_age")
        for image in images
        if max_age and not image.in_use and now - image.last_used > max_age
    ]
    gone = {removal.image.name for removal in removals}
    kept = [image for image in images if image.name not in gone]
    total = sum(image.size for image in kept)
    short_of -= sum(removal.image.size for removal in removals)
    over = total - max_bytes if max_bytes is not None else 0
    if over > 0:
        why = (
            f"least recently used while Booklab's images took {human_size(total)}, "
            f"over images/max_disk ({human_size(max_bytes or 0)})"
        )
    else:
        why = f"least recently used while the Docker data disk had less than {MIN_FREE:.0%} free"
    need = max(over, short_of)
    for image in sorted((i for i in kept if not i.in_use), key=lambda i: (i.last_used, i.name)):
        if need <= 0:
            break
        removals.append(Removal(image, why))
        need -= image.size
    return removals


def data_disk(client: docker.DockerClient) -> Disk | None:
    """The Docker Engine's data disk (DockerRootDir of ``docker info``), None when the runner cannot see it."""
    root = client.info().get("DockerRootDir") or ""
    try:
        stat = os.statvfs(root) if root and os.path.isdir(root) else None
    except OSError:
        stat = None
    if stat is None:
        return None
    return Disk(root, stat.f_blocks * stat.f_frsize, stat.f_bavail * stat.f_frsize)


def check_disk(config: Config, client: docker.DockerClient) -> None:
    """At the runner's start: ConfigError when images/max_disk is a share of a disk it cannot see."""
    disk = data_disk(client)
    limit = config.images_limit(None if disk is None else disk.size)
    if limit is None:
        log.info("Booklab's images have no size limit (images/max_disk)")
    elif disk is None:
        log.info("Booklab's images are kept under %s (images/max_disk)", human_size(limit))
    else:
        log.info(
            "Booklab's images are kept under %s (images/max_disk) and %.0f%% of the Docker data disk at %s free",
            human_size(limit),
            MIN_FREE * 100,
            disk.path,
        )


def clean(ctx: Context, when_short: bool = False) -> list[Removal]:
    """Clean the images of this runner's Docker Engine (``when_short``: only if space is short);
    the removals done. Nothing when another runner of the engine is cleaning."""
    if not when_short:
        try:
            prune_registry(ctx)
        except RegistryError as e:  # next time: the host's own images do not wait for it
            log.warning("old images were not deleted from the registry: %s", e)
    host = ctx.docker_host
    lock = ctx.redis.lock(schema.image_cleaning(host), timeout=LOCK_TTL)
    if not lock.acquire(blocking=False):
        return []
    try:
        return _clean(ctx, host, when_short)
    finally:
        with contextlib.suppress(redis.exceptions.LockError):  # held too long: another runner may clean now
            lock.release()


def make_room(ctx: Context) -> list[Removal]:
    """Before a build: clean when space is short; a failed cleaning is logged, the build goes on."""
    try:
        return clean(ctx, when_short=True)
    except Exception:  # the build may still fit: its own errors tell if not
        log.exception("cleaning images before a build failed")
        return []


def _clean(ctx: Context, host: str, when_short: bool) -> list[Removal]:
    now = time.time()
    disk = data_disk(ctx.docker)
    limit = ctx.config.images_limit(None if disk is None else disk.size)
    images = _images(ctx)
    short_of = max(0, int(disk.size * MIN_FREE) - disk.free) if disk else 0
    if when_short and not short_of and (limit is None or sum(i.size for i in images) <= limit):
        return []
    removals = _requested(ctx, host, images)
    asked = {removal.image.name for removal in removals}
    removals += to_remove(
        [image for image in images if image.name not in asked],
        now=now,
        max_age=ctx.config.images_max_age,
        max_bytes=limit,
        short_of=short_of - sum(removal.image.size for removal in removals),
    )
    done = [removal for removal in removals if _remove(ctx, removal)]
    ctx.images.count_removed(host, len(done))
    _prune_dangling(ctx, now)
    ctx.images.forget_launches_before(
        now - max(LAUNCHES_KEPT, ctx.config.images_max_age, ctx.config.images_registry_max_age)
    )
    removed = {removal.image.name for removal in done}
    ctx.images.removed_from(host, sorted(removed))
    ctx.images.publish(host, [image for image in images if image.name not in removed])
    return done


def prune_registry(ctx: Context) -> list[str]:
    """Delete from the registry Booklab's images unlaunched for longer than ``images/registry_max_age`` (an
    image whose launch Booklab does not know counts from now), never that of a deployment in progress;
    the images deleted. Nothing without a registry or that setting, or when a runner did it less than
    ``images/clean_interval`` ago."""
    shared, max_age = Registry.of(ctx.config), ctx.config.images_registry_max_age
    if shared is None or not max_age:
        return []
    if not ctx.redis.set(schema.REGISTRY_PRUNING, ctx.docker_host, nx=True, ex=ctx.config.images_clean_interval):
        return []
    now = time.time()
    names = [
        f"{repository}:{tag}"
        for repository, tags in registry.tags(shared).items()
        for tag in tags
        if builder.commit_image(ctx.config.image_prefix, f"{repository}:{tag}") == f"{repository}:{tag}"
    ]
    launches = ctx.images.last_launches(names)
    for name in names:
        if launches[name] is None:
            ctx.images.launched(name, now)
    active = _active_images(ctx)
    deleted = []
    for name in names:
        last = launches[name]
        if last is None or now - last <= max_age or name in active:
            continue
        if registry.delete(shared, name):
            log.info(
                "deleted image %s from the registry: unlaunched for %.1f days, longer than images/registry_max_age",
                name,
                (now - last) / 86400,
            )
            deleted.append(name)
    return deleted


def _images(ctx: Context) -> list[ImageInfo]:
    """Booklab's images on the engine, each name apart."""
    prefix = ctx.config.image_prefix
    found = []
    for entry in ctx.docker.api.images(name=f"{prefix}/*"):
        for name in entry.get("RepoTags") or []:
            commit_image = builder.commit_image(prefix, name)
            if commit_image is not None:
                found.append((name, commit_image, entry))
    used = {container.get("ImageID") for container in ctx.docker.api.containers(all=True)}
    active = _active_images(ctx)
    launches = ctx.images.last_launches([name for name, _, _ in found])
    return [
        ImageInfo(
            name=name,
            id=entry["Id"],
            size=int(entry.get("Size") or 0),
            created=float(entry.get("Created") or 0),
            last_launched=launches[name],
            in_use=entry["Id"] in used or commit_image in active,
        )
        for name, commit_image, entry in found
    ]


def _active_images(ctx: Context) -> set[str]:
    """The images of deployments queued, being prepared, served or ending."""
    active = [deployment for deployment, phase in ctx.deployments.all_statuses().items() if phase.is_active]
    return {record["image"] for record in ctx.deployments.records(active) if record.get("image")}


def _requested(ctx: Context, host: str, images: list[ImageInfo]) -> list[Removal]:
    """The removals an operator asked for on ``host``; one of an image in use is refused."""
    by_name = {image.name: image for image in images}
    removals = []
    for name in ctx.images.take_removals(host):
        image = by_name.get(name)
        if image is None:
            log.info("not removing image %r, as an operator asked: it is none of Booklab's images on %s", name, host)
        elif image.in_use:
            log.info("not removing image %s, as an operator asked: it is in use", name)
        else:
            removals.append(Removal(image, "an operator asked"))
    return removals


def _remove(ctx: Context, removal: Removal) -> bool:
    """Remove the image's name (the image too when it was its last), unless it came in use; whether it went.
    The deployments are read again for each: one may have named it since (its cache check then finds it)."""
    name = removal.image.name
    if builder.commit_image(ctx.config.image_prefix, name) in _active_images(ctx):
        log.info("not removing image %s (%s): a deployment uses it now", name, removal.why)
        return False
    try:
        ctx.docker.images.remove(name)
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.APIError as e:
        if e.status_code != 409:
            raise
        log.info("not removing image %s (%s): %s", name, removal.why, e.explanation)
        return False
    log.info("removed image %s (%s): %s", name, human_size(removal.image.size), removal.why)
    return True


def _prune_dangling(ctx: Context, now: float) -> None:
    """Remove dangling images older than any build in progress (Booklab's only, unless images/prune_dangling)."""
    safe_age = ctx.config.build_timeout + DANGLING_MARGIN
    if ctx.config.images_prune_dangling:
        result = ctx.docker.api.prune_images(filters={"dangling": True, "until": f"{safe_age}s"})
        deleted = [d for d in result.get("ImagesDeleted") or [] if d.get("Deleted")]
        if deleted:
            log.info(
                "removed %d dangling image layers (%s)",
                len(deleted),
                human_size(int(result.get("SpaceReclaimed") or 0)),
            )
        return
    for entry in ctx.docker.api.images(filters={"dangling": True, "label": BUILT_AS}):
        built_as = (entry.get("Labels") or {}).get(BUILT_AS, "")
        if not builder.commit_image(ctx.config.image_prefix, built_as) or entry.get("Created", now) > now - safe_age:
            continue
        try:
            ctx.docker.api.remove_image(entry["Id"])
        except docker.errors.APIError:  # a container uses it, or it just went
            continue
        log.info(
            "removed dangling image %s (%s), built as %s",
            entry["Id"],
            human_size(int(entry.get("Size") or 0)),
            built_as,
        )
