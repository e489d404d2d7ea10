"""The repo2docker process of a build, which may be started before the build is known: started ahead
(:func:`start_ahead`), its imports are made while the runner adds the deploy key and clones, and the build
hands it its arguments (:mod:`booklab.pipeline.r2d_waiting`).

A runner's process serves one deployment at a time (1 runner > 1 notebook), so it keeps at most one process
ahead, for one run; a build that finds none for its run (a runner's pool process replaced between the
steps, a process that waited too long) starts one then. Each process runs from an empty working directory
of its own, with a trimmed environment (neither a ``repo2docker_config.py`` nor the runner's secrets within
its reach), in a session of its own (killed as a group), and dies with the runner's process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from typing import IO

_KEPT_ENV = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH"}


class Repo2docker:
    """One repo2docker process, waiting for its arguments until :meth:`begin`."""

    def __init__(self) -> None:
        self._cwd = tempfile.TemporaryDirectory(prefix="booklab-build-")
        self.process = subprocess.Popen(
            # it dies with this process (r2d_waiting): no preexec_fn, which a fork beside other threads may hang in
            [sys.executable, "-m", "booklab.pipeline.r2d_waiting", str(os.getpid())],
            cwd=self._cwd.name,
            env=_child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )

    def waiting(self) -> bool:
        """Whether it still waits for its arguments."""
        return self.process.poll() is None and not self.process.stdin.closed

    def begin(self, args: list[str]) -> IO[str]:
        """Run repo2docker with ``args``; its output (stdout and stderr) follows. A process that stopped waiting
        meanwhile ends without a build, with :data:`~booklab.pipeline.r2d_waiting.NOT_BUILT`: a failed build."""
        try:
            self.process.stdin.write(json.dumps(args) + "\n")
            self.process.stdin.close()
        except BrokenPipeError:  # it has ended: its status says so
            pass
        return self.process.stdout

    def kill(self) -> None:
        """Kill the process and whatever it started."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        """Kill the process if it still runs, and remove its working directory."""
        if self.process.poll() is None:
            self.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            pipe.close()
        self._cwd.cleanup()


#: the process started ahead in this runner's process, by run
_ahead: dict[str, Repo2docker] = {}


def start_ahead(run: str) -> Repo2docker:
    """Start the repo2docker process of ``run``'s build now (any other started ahead goes)."""
    drop_ahead()
    _ahead[run] = Repo2docker()
    return _ahead[run]


def take_ahead(run: str) -> Repo2docker:
    """The process started ahead for ``run`` if it still waits, else a new one (any other goes)."""
    process = _ahead.pop(run, None)
    drop_ahead()
    if process is not None and process.waiting():
        return process
    if process is not None:
        process.close()
    return Repo2docker()


def drop_ahead() -> None:
    """End the process started ahead, if any (its run needs no build after all)."""
    while _ahead:
        _ahead.popitem()[1].close()


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _KEPT_ENV or k.startswith("DOCKER_")}
    return env | {"PYTHONUNBUFFERED": "1"}
