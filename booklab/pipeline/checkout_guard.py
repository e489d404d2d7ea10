"""What of a checkout a build may read: the checkout, and nothing outside it.

repo2docker (and Booklab's own reading of ``.booklab.yml``) opens the repository's files
with a plain ``open()``, which follows symbolic links. A committed ``apt.txt`` pointing at
``../../../etc/passwd`` or ``/proc/self/environ`` would have the runner read its own host's
files into the build's log. :func:`check` is the one place that decides: every symbolic link
of the checkout must lead to a place inside the checkout, once every link on its way (a chain
of links, a linked directory, ``..``) is followed; ``/proc``, ``/dev``, ``/sys`` and the
rest of the runner's disk are outside. Links that stay inside keep working, and so do
dangling links inside (opening one fails, and reads nothing). A link that cannot be
resolved (a loop) and a path of :data:`MAX_PATH` bytes or more are refused too: deep
enough, the kernel still follows a link that Python can no longer resolve.

The whole tree is walked, ``.git`` included: repo2docker sends ``.git`` to the build too,
and git itself never puts a link there, so a link there is refused like any other.

There is no race between the check and the build: the checkout is the runner's own fresh
clone in its own directory, which no one else writes between :func:`check` (called right
after the clone) and the build.
"""

from __future__ import annotations

import os
from pathlib import Path

from booklab.errors import UnsafeCheckout

#: links named in the refusal; the others are counted
NAMED = 3
#: bytes of an absolute path from which an entry is refused: past the system's limit (4096)
#: the kernel still follows a link that Python can no longer resolve, so no path gets near it
MAX_PATH = 1024


def check(checkout: str | os.PathLike) -> None:
    """Refuse ``checkout`` when one of its symbolic links leads outside it.

    Raises :class:`UnsafeCheckout` naming the links (relative to the checkout) and what to do.
    """
    leaving = links_leaving(checkout)
    if not leaving:
        return
    named = ", ".join(leaving[:NAMED])
    more = f" and {len(leaving) - NAMED} more" if len(leaving) > NAMED else ""
    raise UnsafeCheckout(
        f"The repository holds symbolic links that lead outside it, which a build may not read: "
        f"{named}{more}. Commit the files themselves instead of a link to them, or make each "
        f"link point to a file inside the repository."
    )


def links_leaving(checkout: str | os.PathLike) -> list[str]:
    """The symbolic links of ``checkout`` (relative paths, sorted) whose target, every link on
    the way followed, is not inside ``checkout``, or cannot be told. Linked directories are
    not entered. Raises :class:`UnsafeCheckout` for a path too long to judge."""
    root = os.path.realpath(checkout)
    leaving = []

    def unreadable(error: OSError) -> None:  # os.walk would skip a directory it cannot list
        raise UnsafeCheckout(
            f"A folder of the repository cannot be read ({error.strerror}): "
            f"{_relative(error.filename or root, root)}. Make its path shorter."
        ) from None

    for directory, dirnames, filenames in os.walk(root, followlinks=False, onerror=unreadable):
        for name in dirnames + filenames:
            path = os.path.join(directory, name)
            if len(os.fsencode(path)) >= MAX_PATH:
                raise UnsafeCheckout(
                    f"The repository holds a path too long to check: {_relative(path, root)[:80]}... "
                    "Make its folders' names shorter."
                )
            if os.path.islink(path) and not _leads_inside(path, root):
                leaving.append(_relative(path, root))
    return sorted(leaving)


def _leads_inside(link: str, root: str) -> bool:
    """Whether ``link``, resolved as the kernel would, ends inside ``root``. A link that
    cannot be resolved (a loop, a name too long) counts as leading out: the system could
    still follow it where Python cannot; a dangling one is judged by where it points."""
    try:
        return _inside(os.path.realpath(link, strict=True), root)
    except FileNotFoundError:
        return _inside(os.path.realpath(link), root)
    except OSError:
        return False


def _relative(path: str, root: str) -> str:
    return Path(path).relative_to(root).as_posix() if _inside(path, root) else path


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)
