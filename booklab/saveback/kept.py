"""The changes of a notebook whose save was given up (GitLab refused it for good, or did not
answer for ``save/give_up_after``), kept for their owner to download.

Before such a notebook ends, its runner reads what changed under the notebook's directory
(as a save would) into a gzipped tar, at most ``save/keep_max_size`` of it, and keeps it in
Redis for ``save/keep_failed``, so that any web host serves it: the notebook's page, the API
and ``booklab save --download``. Each run keeps its own; a relaunch loses none of them.

The container ran the repository's code, so nothing read from it is trusted: the archive
holds regular files only, under one directory, with plain modes; a symbolic link, a file
that is too large, and what would pass the size limit are named in ``BOOKLAB.txt`` and left
out, and so are the files the notebook deleted.
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
import time
from dataclasses import dataclass

from docker.models.containers import Container

from booklab.context import Context
from booklab.saveback import workspace
from booklab.state import schema
from booklab.state.deployment import Deployment
from booklab.state.lifecycle import Run

MEDIA_TYPE = "application/gzip"
#: paths listed at most in BOOKLAB.txt under each heading
LISTED = 1000


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

    def filename(self, deployment_id: str) -> str:
        return f"{_top_directory(deployment_id, self.run)}.tar.gz"

    def as_json(self) -> dict[str, object]:
        return {"run": self.run, "at": self.at, "size": self.size, "files": self.files, "reason": self.reason}


def keep(ctx: Context, run: Run, container: Container, reason: str) -> Kept:
    """Read the changes of ``run``'s notebook from ``container`` and keep them; Docker's
    errors pass through (the caller says the changes could not be kept)."""
    archive, files = read(container, run, reason, ctx.config.bytes_of("save_keep_max_size"))
    return store(ctx, run, archive, files, reason)


def read(container: Container, run: Run, reason: str, limit: int) -> tuple[bytes, int]:
    """The changes of ``run``'s notebook in ``container`` as a gzipped tar of at most about
    ``limit`` bytes, and how many files it holds."""
    found = workspace.changes(container)
    top = _top_directory(run.deployment, run.number)
    data, files, left_out = io.BytesIO(), 0, []
    with tarfile.open(fileobj=data, mode="w:gz") as archive:
        for relative in found.written:
            with workspace.entry(container, f"{found.root}/{relative}") as entry:
                if entry is None or (entry.member is None and not entry.left_out):
                    continue  # gone since, or a directory
                if entry.content is None or entry.member is None:
                    left_out.append(f"{relative} ({entry.left_out or 'not a regular file'})")
                    continue
                if data.tell() + entry.member.size > limit:
                    left_out.append(f"{relative} (beyond save/keep_max_size)")
                    continue
                member = tarfile.TarInfo(f"{top}/{relative}")
                member.size, member.mtime = entry.member.size, entry.member.mtime
                member.mode = 0o755 if entry.member.mode & 0o111 else 0o644
                archive.addfile(member, entry.content)
                files += 1
        readme = _readme(Deployment.from_id(run.deployment), reason, found.deleted, tuple(left_out))
        _add_text(archive, f"{top}/BOOKLAB.txt", readme)
    return data.getvalue(), files


def store(ctx: Context, run: Run, archive: bytes, files: int, reason: str) -> Kept:
    """Keep ``archive``, the changes of ``run``, for ``save/keep_failed`` seconds."""
    kept = Kept(run.number, time.time(), len(archive), files, reason)
    ttl = ctx.config.save_keep_failed
    pipe = ctx.redis.pipeline()
    pipe.set(schema.kept_files(run.id), base64.b64encode(archive).decode(), ex=ttl)
    pipe.hset(schema.kept(run.deployment), str(run.number), json.dumps(kept.as_json()))
    pipe.expire(schema.kept(run.deployment), ttl)
    pipe.execute()
    return kept


def listing(ctx: Context, deployment_id: str) -> list[Kept]:
    """The changes kept of the deployment's runs, newest first."""
    found = []
    for number, raw in ctx.redis.hgetall(schema.kept(deployment_id)).items():
        if ctx.redis.exists(schema.kept_files(schema.run_stream(deployment_id, number))):
            fields = json.loads(raw)
            found.append(Kept(int(number), fields["at"], fields["size"], fields["files"], fields["reason"]))
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


def _top_directory(deployment_id: str, run: int) -> str:
    """``<project>-<branch>-run<n>-changes``, in characters safe in any file name."""
    dep = Deployment.from_id(deployment_id)
    name = f"{dep.project.rsplit('/', 1)[-1]}-{dep.ref}-run{run}-changes"
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in name)


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
