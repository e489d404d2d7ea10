"""repo2docker started ahead of its build (:mod:`booklab.pipeline.r2d_process`): it makes its imports (a
quarter of a second) while the runner still clones, then waits for its arguments, one JSON list on stdin,
and runs as ``repo2docker <arguments>`` would. Without arguments within :data:`WAIT` s, or at the end of its
input, it ends without doing anything, with :data:`NOT_BUILT`."""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import sys

from repo2docker import __main__ as repo2docker_main

from booklab.pipeline import r2d_engine  # noqa: F401  the engine repo2docker loads: imported while it waits

#: seconds the process waits for its arguments (a build follows its clone at once)
WAIT = 300
_PR_SET_PDEATHSIG = 1  # prctl(2)
#: its exit status when it ends without arguments: no build, never taken for a successful one
NOT_BUILT = 3


def main() -> None:
    _die_with(int(sys.argv[1]))
    ready, _, _ = select.select([sys.stdin], [], [], WAIT)
    line = sys.stdin.readline() if ready else ""
    if not line:
        sys.exit(NOT_BUILT)
    sys.argv = ["repo2docker", *json.loads(line)]
    repo2docker_main.main()


def _die_with(parent: int) -> None:
    """Be killed when the runner's process that started this one dies, even by SIGKILL, so that a lost runner
    leaves no build going on; and end now if it died while this one made its imports."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        sys.exit(NOT_BUILT)


if __name__ == "__main__":
    main()
