"""The demo's child processes: each started in a session of its own (a Ctrl-C in the
terminal reaches only the demo, which stops them in order), told to end when the demo
dies, with its output in ``<log dir>/<name>.log``; waited for until it answers; stopped
with SIGTERM, then SIGKILL for its whole session."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from booklab.demo.terminal import printable_lines
from booklab.errors import DemoError

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
POLL_INTERVAL = 0.1
LOG_TAIL = 2000


def free_ports(count: int) -> list[int]:
    """``count`` different TCP ports free on the loopback interface right now."""
    with ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def end_with_parent() -> None:
    """In the child, before exec: receive SIGTERM when the demo dies, however it dies.
    (A ``preexec_fn`` is safe here: the demo runs no threads.)"""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(frozen=True)
class Child:
    name: str
    process: subprocess.Popen
    log: Path

    def tail(self) -> str:
        """The end of its log, for error messages (escaped: a runner's log holds what repositories print)."""
        return printable_lines(self.log.read_text(errors="replace")[-LOG_TAIL:])


class Processes:
    """The processes the demo started (in order), with their logs under ``log_dir``."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []

    def start(
        self,
        name: str,
        command: list[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> Child:
        log_file = self.log_dir / f"{name}.log"
        with log_file.open("ab") as out:
            process = subprocess.Popen(
                command,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=end_with_parent,
                pass_fds=pass_fds,
            )
        child = Child(name, process, log_file)
        self.children.append(child)
        log.debug("started %s (pid %d)", name, process.pid)
        return child

    def wait_until(self, child: Child, answers: Callable[[], bool], timeout: float, what: str) -> None:
        """Return once ``answers()``; raise :class:`DemoError` when ``child`` exits first or
        ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while not answers():
            if child.process.poll() is not None:
                raise DemoError(
                    f"{child.name} exited with status {child.process.returncode} before "
                    f"{what}; the end of {child.log}:\n{child.tail()}"
                )
            if time.monotonic() > deadline:
                raise DemoError(f"{what} took more than {timeout:g} s; the end of {child.log}:\n{child.tail()}")
            time.sleep(POLL_INTERVAL)

    def exited(self) -> Child | None:
        """The first child that is no longer running, if any."""
        return next((c for c in self.children if c.process.poll() is not None), None)

    def stop(self, children: Iterable[Child], timeout: float = 30) -> None:
        """SIGTERM to each of ``children`` at once, then SIGKILL to whatever is left in
        their sessions: after ``timeout`` s the child itself, at once what it left behind."""
        children = list(children)
        for child in children:
            if child.process.poll() is None:
                child.process.terminate()
        deadline = time.monotonic() + timeout
        for child in children:
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %g s: killing it", child.name, timeout)
            try:
                os.killpg(child.process.pid, signal.SIGKILL)
            except ProcessLookupError:  # nothing left in its session: the usual case
                pass
            child.process.wait()
            log.info("stopped %s", child.name)
