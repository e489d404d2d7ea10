"""repo2docker started ahead of its build (:mod:`booklab.pipeline.r2d_process`): it makes its imports (a
quarter of a second) while the runner still clones, then waits for its arguments, one JSON list on stdin,
and runs as ``repo2docker <arguments>`` would. Without arguments within :data:`WAIT` s, or at the end of its
input, it ends without doing anything, with :data:`NOT_BUILT`."""

from __future__ import annotations

import json
import select
import sys

from repo2docker import __main__ as repo2docker_main

from booklab.pipeline import r2d_engine  # noqa: F401  the engine repo2docker loads: imported while it waits

#: seconds the process waits for its arguments (a build follows its clone at once)
WAIT = 300
#: its exit status when it ends without arguments: no build, never taken for a successful one
NOT_BUILT = 3


def main() -> None:
    ready, _, _ = select.select([sys.stdin], [], [], WAIT)
    line = sys.stdin.readline() if ready else ""
    if not line:
        sys.exit(NOT_BUILT)
    sys.argv = ["repo2docker", *json.loads(line)]
    repo2docker_main.main()


if __name__ == "__main__":
    main()
