"""A notebook's work, read from its container: which files under the notebook's directory
changed since the container started (Docker's own record of the container's layer), and a
copy of those changes into a git checkout of the commit the notebook was built from.

What Jupyter and Python leave behind (``.ipynb_checkpoints``, ``__pycache__``, new hidden
files such as ``.local`` or ``.ipython``) is not the user's work and is never copied; a
hidden file the repository tracks is. The container runs the repository's code, so nothing
from it is trusted: no ``.git`` path is ever copied (it could configure commands for git
to run), nothing is written or removed through a symlink, and a file larger than
:data:`MAX_FILE_BYTES` is left out (and named).
"""

from __future__ import annotations

import io
import posixpath
import shutil
import tarfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

import docker
from docker.models.containers import Container

#: directory names whose content is never the user's work
NEVER_SAVED = frozenset({".ipynb_checkpoints", "__pycache__", ".Trash-1000"})
DEFAULT_ROOT = "/home/jovyan"
#: GitLab.com's largest file; a larger one is left out of a save
MAX_FILE_BYTES = 100 * 1024**2
_ADDED, _DELETED = 1, 2  # docker diff's kinds (0: modified)
_MODE_DIR = 1 << 31  # Go's os.ModeDir, as Docker reports a path's mode


@dataclass(frozen=True)
class Changes:
    """Paths relative to the notebook's directory ``root`` in the container."""

    root: str
    written: tuple[str, ...]
    """added or modified files and symlinks (and directories, skipped when copied)"""
    deleted: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.written or self.deleted)


def notebook_root(container: Container) -> str:
    """The directory Jupyter serves: the image's working directory, else its home."""
    config = container.attrs.get("Config") or {}
    if config.get("WorkingDir"):
        return config["WorkingDir"].rstrip("/") or "/"
    home = next((e.split("=", 1)[1] for e in config.get("Env") or [] if e.startswith("HOME=")), "")
    return home.rstrip("/") or DEFAULT_ROOT


def changes(container: Container) -> Changes:
    """What changed under the notebook's directory since the container started."""
    root = notebook_root(container)
    written, deleted = [], []
    for entry in container.diff() or []:
        relative = _relative(entry["Path"], root)
        if relative is None or not _may_be_work(relative, entry["Kind"]):
            continue
        (deleted if entry["Kind"] == _DELETED else written).append(relative)
    return Changes(root, tuple(sorted(written)), tuple(sorted(deleted)))


def copy_into(container: Container, found: Changes, checkout: Path, tracked: set[str]) -> list[str]:
    """Apply ``found`` to the work tree ``checkout``: write what was written, remove what
    was deleted; a hidden path counts only when ``tracked`` by the checked-out commit.
    Returns what was left out, each with the reason."""
    left_out: list[str] = []
    for relative in found.deleted:
        if not _through_symlink(checkout, relative) and (not _hidden(relative) or _is_tracked(relative, tracked)):
            _remove(checkout / relative)
    for relative in found.written:
        if not _hidden(relative) or _is_tracked(relative, tracked):
            left_out += _copy_file(container, posixpath.join(found.root, relative), checkout, relative)
    return left_out


def _relative(path: str, root: str) -> str | None:
    """``path`` relative to ``root``, or None when outside it (or ``root`` itself)."""
    prefix = root.rstrip("/") + "/"
    if not path.startswith(prefix):
        return None
    relative = posixpath.normpath(path[len(prefix) :])
    if relative in (".", "") or relative.startswith("../") or relative == ".." or relative.startswith("/"):
        return None
    return relative


def _may_be_work(relative: str, kind: int) -> bool:
    parts = relative.split("/")
    if any(part in NEVER_SAVED or part.casefold() == ".git" for part in parts):
        return False
    # a hidden path added since the start is Jupyter's or Python's, never the repository's
    return not (kind == _ADDED and _hidden(relative))


def _through_symlink(checkout: Path, relative: str) -> bool:
    """Whether a parent of ``checkout/relative`` is a symlink (which may lead outside)."""
    here = checkout
    for part in relative.split("/")[:-1]:
        here = here / part
        if here.is_symlink():
            return True
    return False


def _is_tracked(relative: str, tracked: set[str]) -> bool:
    return relative in tracked or any(path.startswith(relative + "/") for path in tracked)


def _hidden(relative: str) -> bool:
    return any(part.startswith(".") for part in relative.split("/"))


@dataclass(frozen=True)
class Entry:
    """One path of a container, as read by :func:`entry`."""

    member: tarfile.TarInfo | None
    """its tar header; None when it is gone, a directory, or too large"""
    content: IO[bytes] | None
    """a regular file's content (read it inside the ``with``)"""
    left_out: str = ""
    """why it is not read, when it is too large"""


@contextmanager
def entry(container: Container, path: str) -> Iterator[Entry | None]:
    """The file or symlink at ``path`` in the container; None when it was removed since the
    diff was read. A directory has no member (its files are listed one by one, and git keeps
    no empty directory); a file larger than :data:`MAX_FILE_BYTES` has none either, and says so."""
    try:
        chunks, stat = container.get_archive(path)
    except docker.errors.NotFound:
        yield None
        return
    if stat["mode"] & _MODE_DIR or stat["size"] > MAX_FILE_BYTES:
        chunks.close()
        too_large = stat["size"] > MAX_FILE_BYTES and not stat["mode"] & _MODE_DIR
        yield Entry(None, None, f"larger than {MAX_FILE_BYTES // 1024**2} MB" if too_large else "")
        return
    with tarfile.open(fileobj=io.BufferedReader(_ChunkReader(chunks)), mode="r|") as archive:
        member = next(iter(archive), None)
        yield Entry(member, archive.extractfile(member) if member is not None and member.isfile() else None)


def _copy_file(container: Container, path: str, checkout: Path, relative: str) -> list[str]:
    """Copy one file or symlink from the container; what was left out (at most itself)."""
    with entry(container, path) as found:
        if found is None:  # removed since the diff was read: removed it is
            if not _through_symlink(checkout, relative):
                _remove(checkout / relative)
            return []
        if found.left_out:
            return [f"{relative} ({found.left_out})"]
        if found.member is None:
            return []
        target = _writable(checkout, relative)
        _remove(target)
        if found.member.issym():
            target.symlink_to(found.member.linkname)
        elif found.content is not None:
            with target.open("wb") as out:
                shutil.copyfileobj(found.content, out)
            target.chmod(0o755 if found.member.mode & 0o111 else 0o644)
    return []


def _writable(checkout: Path, relative: str) -> Path:
    """``checkout/relative`` with every parent a real directory inside ``checkout`` (a
    symlink or a file in the way is removed, as the container has a directory there)."""
    here = checkout
    for part in relative.split("/")[:-1]:
        here = here / part
        if here.is_symlink() or (here.exists() and not here.is_dir()):
            here.unlink()
        here.mkdir(exist_ok=True)
    return here / relative.rsplit("/", 1)[-1]


def _remove(target: Path) -> None:
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)


class _ChunkReader(io.RawIOBase):
    """A readable file over the chunks Docker streams."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            self._pending = next(self._chunks, b"")
            if not self._pending:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size
