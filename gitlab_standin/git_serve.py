"""The SSH forced command of the stand-in's deploy keys (standard library only).

sshd runs it, as the ``git`` user, for every connection made with a deploy key:

    git-serve <repos root> <mode>:<project path> [<mode>:<project path> ...]

where each ``mode`` is ``ro`` or ``rw`` for a project the key is enabled on, or ``archived``
for an archived one (read-only whatever the key may do: GitLab refuses the push before
looking at the key). It runs the ``git-upload-pack`` (or, for ``rw``, ``git-receive-pack``)
that the client asked for in ``SSH_ORIGINAL_COMMAND``, on exactly those projects, and
refuses anything else with a message on stderr and exit status 1. The stand-in rewrites
the authorized keys when a project is archived, so the mode is all git-serve needs to know,
and copies this file next to its sshd configuration so that it runs without importing the
package.
"""

from __future__ import annotations

import os
import shlex
import sys

NOT_FOUND = "GitLab: The project you were looking for could not be found or you don't have permission to view it."
NO_WRITE = "GitLab: This deploy key does not have write access to this project."
ARCHIVED = "ERROR: You can't push code to an archived project."
SERVICES = ("git-upload-pack", "git-receive-pack")


def requested(command: str) -> tuple[str, str] | None:
    """(service, project path) from ``git-upload-pack '/group/project.git'`` or None."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if len(words) == 3 and words[0] == "git":
        words = [f"git-{words[1]}", words[2]]
    if len(words) != 2 or words[0] not in SERVICES:
        return None
    path = words[1].strip("/")
    return words[0], path.removesuffix(".git")


def main(argv: list[str]) -> int:
    root = argv[1]
    grants = {path: mode for mode, path in (grant.split(":", 1) for grant in argv[2:])}
    request = requested(os.environ.get("SSH_ORIGINAL_COMMAND", ""))
    if request is None:
        sys.stderr.write("GitLab: Disallowed command\n")
        return 1
    service, project = request
    if project not in grants:
        sys.stderr.write(NOT_FOUND + "\n")
        return 1
    if service == "git-receive-pack" and grants[project] != "rw":
        sys.stderr.write((ARCHIVED if grants[project] == "archived" else NO_WRITE) + "\n")
        return 1
    os.execvp("git", ["git", service.removeprefix("git-"), os.path.join(root, project + ".git")])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
