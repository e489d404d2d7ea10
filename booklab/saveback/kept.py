"""The changes of a notebook whose save was given up (GitLab refused it for good, or did not
answer for ``save/give_up_after``), kept for their owner to download.

Before such a notebook ends, its runner reads what changed under the notebook's directory
(as a save would) into a gzipped tar, at most ``save/keep_max_size`` of it, and keeps it in
Redis for ``save/keep_failed``, so that any web host serves it: the notebook's page, the API
and ``booklab save --download``. Each run keeps its own; a relaunch loses none of them.

The container ran the repository's code, so nothing read from it is trusted: the archive
holds regular files only, under one directory, with plain modes and names without control
characters; a symbolic link, a file that is too large, what would pass the size limit (its
files' own bytes, not the compressed ones), the files past :data:`MAX_FILES` and what is not
read within :data:`DEADLINE` seconds are left out and named (escaped) in ``BOOKLAB.txt``, and
so are the files the notebook deleted. A user keeps the changes of their last
:data:`PER_USER` given-up saves: an older one goes when a newer one is kept.
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
import time
from dataclasses import asdict, dataclass

import docker
import requests
from docker.models.containers import Container

from booklab.context import Context
from booklab.pipeline.transient import docker_unavailable
from booklab.saveback import workspace
from booklab.state import schema
from booklab.state.deployment import Deployment
from booklab.state.lifecycle import Run

MEDIA_TYPE = "application/gzip"
#: paths listed at most in BOOKLAB.txt under each heading
LISTED = 1000
#: files kept at most of one notebook
MAX_FILES = 10_000
#: seconds the files of one notebook are read at most
DEADLINE = 300
#: given-up saves whose changes a user keeps at once
PER_USER = 5


@dataclass(frozen=True)
class Kept:
    """The changes kept of one run of a deployment."""

    run: int
    at: float
    """when they were kept (seconds since the epoch)"""
    size: int
    """bytes of the download"""
    files: int
    reason: str
    """why the save was given up"""
    left_out: int = 0
    """changed files not in the archive (named in its BOOKLAB.txt)"""

    def filename(self, deployment_id: str) -> str:
        return Deployment.from_id(deployment_id).file_name(self.run, "changes.tar.gz")

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def keep(ctx: Context, run: Run, container: Container, reason: str) -> Kept:
    """Read the changes of ``run``'s notebook from ``container`` and keep them; Docker's and
    Redis's errors pass through (the caller keeps the notebook)."""
    archive, files, left_out = read(container, run, reason, ctx.config.bytes_of("save_keep_max_size"))
    return store(ctx, run, archive, files, reason, left_out)


def read(container: Container, run: Run, reason: str, limit: int) -> tuple[bytes, int, int]:
    """The changes of ``run``'s notebook in ``container`` as a gzipped tar holding at most
    ``limit`` bytes of files; how many files it holds, and how many were left out."""
    found = workspace.changes(container)
    dep = Deployment.from_id(run.deployment)
    top = dep.file_name(run.number, "changes")
    deadline = time.monotonic() + DEADLINE
    data, files, size, left_out = io.BytesIO(), 0, 0, []
    with tarfile.open(fileobj=data, mode="w:gz") as archive:
        for relative in found.written:
            why = _not_read(relative, files, time.monotonic() > deadline)
            if why:
                left_out.append(f"{_shown(relative)} ({why})")
                continue
            try:
                with workspace.entry(container, f"{found.root}/{relative}") as entry:
                    if entry is None or (entry.member is None and not entry.left_out):
                        continue  # gone since, or a directory
                    if entry.content is None or entry.member is None:
                        left_out.append(f"{_shown(relative)} ({entry.left_out or 'not a regular file'})")
                        continue
                    if size + entry.member.size > limit:
                        left_out.append(f"{_shown(relative)} (beyond save/keep_max_size)")
                        continue
                    member = tarfile.TarInfo(f"{top}/{relative}")
                    member.size, member.mtime = entry.member.size, entry.member.mtime
                    member.mode = 0o755 if entry.member.mode & 0o111 else 0o644
                    archive.addfile(member, entry.content)
            except (docker.errors.APIError, tarfile.TarError, requests.RequestException) as e:
                if docker_unavailable(e):
                    raise  # the Docker Engine failed: keep the notebook, try later
                left_out.append(f"{_shown(relative)} (unreadable: {type(e).__name__})")
                continue
            files, size = files + 1, size + entry.member.size
        readme = _readme(dep, reason, found.deleted, tuple(left_out))
        _add_text(archive, f"{top}/BOOKLAB.txt", readme)
    return data.getvalue(), files, len(left_out)


def store(ctx: Context, run: Run, archive: bytes, files: int, reason: str, left_out: int = 0) -> Kept:
    """Keep ``archive``, the changes of ``run``, for ``save/keep_failed`` seconds (dropping
    those of its user's oldest kept save beyond :data:`PER_USER`)."""
    kept = Kept(run.number, time.time(), len(archive), files, reason, left_out)
    ttl, user = ctx.config.save_keep_failed, Deployment.from_id(run.deployment).user
    pipe = ctx.redis.pipeline()
    pipe.set(schema.kept_files(run.id), base64.b64encode(archive).decode(), ex=ttl)
    pipe.hset(schema.kept(run.deployment), str(run.number), json.dumps(kept.as_json()))
    pipe.expire(schema.kept(run.deployment), ttl)
    pipe.zadd(schema.kept_by(user), {run.id: kept.at})
    pipe.expire(schema.kept_by(user), ttl)
    pipe.execute()
    for older in ctx.redis.zrange(schema.kept_by(user), 0, -PER_USER - 1):
        _drop(ctx, user, Run.parse(older))
    return kept


def _drop(ctx: Context, user: str, run: Run) -> None:
    pipe = ctx.redis.pipeline()
    pipe.delete(schema.kept_files(run.id))
    pipe.hdel(schema.kept(run.deployment), str(run.number))
    pipe.zrem(schema.kept_by(user), run.id)
    pipe.execute()


def _not_read(relative: str, files: int, late: bool) -> str:
    """Why a changed file is not read at all, or ''."""
    if any(ord(c) < 32 or ord(c) == 127 for c in relative):
        return "its name holds control characters"
    if files >= MAX_FILES:
        return f"more than {MAX_FILES} files changed"
    return f"not read within {DEADLINE} s" if late else ""


def _shown(relative: str) -> str:
    """A path as BOOKLAB.txt names it: control characters escaped, on one line."""
    return relative.encode("unicode_escape").decode("ascii") if not relative.isprintable() else relative


def listing(ctx: Context, deployment_id: str, kept: dict[str, str] | None = None) -> list[Kept]:
    """The changes kept of the deployment's runs, newest first; ``kept``: its ``kept:`` hash when the caller
    read it already."""
    found = []
    kept = ctx.redis.hgetall(schema.kept(deployment_id)) if kept is None else kept
    for number, raw in kept.items():
        if ctx.redis.exists(schema.kept_files(schema.run_stream(deployment_id, number))):
            found.append(Kept(**{**json.loads(raw), "run": int(number)}))
    return sorted(found, key=lambda kept: kept.run, reverse=True)


def download(ctx: Context, deployment_id: str, run: int | None = None) -> tuple[Kept, bytes] | None:
    """The changes kept of the deployment's ``run`` (its latest when None) and their archive;
    None when none are kept (any more)."""
    for kept in listing(ctx, deployment_id):
        if run is None or kept.run == run:
            data = ctx.redis.get(schema.kept_files(schema.run_stream(deployment_id, kept.run)))
            return (kept, base64.b64decode(data)) if data else None
    return None


def lifetime(ctx: Context) -> str:
    """How long changes are kept, for a sentence: ``7 days``, ``1 day``, ``12 hours``, ``90 minutes``."""
    seconds = ctx.config.save_keep_failed
    for name, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {name}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def _readme(dep: Deployment, reason: str, deleted: tuple[str, ...], left_out: tuple[str, ...]) -> str:
    lines = [
        f"Changes made in Booklab to {dep.project} at {dep.ref}, which could not be saved to GitLab:",
        reason,
        "",
        "Copy these files over a checkout of that branch to get your work back.",
    ]
    for title, paths in (("Deleted in the notebook:", deleted), ("Left out of this archive:", left_out)):
        if paths:
            lines += ["", title, *(f"  {path}" for path in paths[:LISTED])]
            lines += [f"  and {len(paths) - LISTED} more"] if len(paths) > LISTED else []
    return "\n".join(lines) + "\n"


def _add_text(archive: tarfile.TarFile, name: str, text: str) -> None:
    body = text.encode()
    member = tarfile.TarInfo(name)
    member.size, member.mtime, member.mode = len(body), int(time.time()), 0o644
    archive.addfile(member, io.BytesIO(body))
