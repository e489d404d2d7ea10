"""``make test``: the whole suite as two pytest sessions at once, then the tests that must run alone.

Most tests wait (on Docker, Jupyter, timers) more than they compute, so some long modules, marked ``beside``
(Hypothesis's interleavings, the storms, save back, ...), run in a session of their own beside the others. The two
share the Docker Engine (the last to end stops it: :class:`tests.fixtures.services.DockerDaemon`) and nothing else:
each has its own Redis, Traefik, web tier, GitLab stand-in, runners and notebook network, and names its images under
a prefix of its own (``BOOKLAB_TEST_IMAGE_PREFIX``). So a test counts its own session's containers
(:func:`tests.fixtures.pipeline.notebook_containers`: both may run the same deployment, of the same project, branch
and user) and lists containers in one call (another session's may be gone before they are inspected); the tests that
make Docker hosts of their own in network namespaces (fixed names) stay in one session. The tests marked ``alone``
(they stop the Docker Engine) run after both, by themselves. The second session's output is printed when it ends,
and last a summary: each session's exit status and the tests it failed, so the end of a long log says what broke.

Arguments go to every session (``python -m tests.lanes -x``). The exit status is the first failed session's
(pytest's 5 when one ran no test), else 0.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from tests.fixtures.pipeline import IMAGE_PREFIX

#: the sessions, by the tests they run: the first two at once, then the last
BESIDE = "beside and not alone"
MAIN = "not beside and not alone"
ALONE = "alone"


#: the lines of pytest's short summary (``-ra``) that name a test that broke
BROKE = ("FAILED ", "ERROR ")


def pytest(marks: str, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", "-m", marks, *args]


class Session:
    """One pytest session of the suite, its output kept in a file (not a pipe: a process a test started and left
    behind would hold a pipe open after pytest ends)."""

    def __init__(self, marks: str, args: list[str], env: dict[str, str] | None = None) -> None:
        self.marks = marks
        self._output = tempfile.NamedTemporaryFile("w+")
        self._process = subprocess.Popen(pytest(marks, args), stdout=self._output, stderr=subprocess.STDOUT, env=env)

    def echo(self) -> int:
        """Pass the output through as it comes, until the session ends; its exit status."""
        with open(self._output.name) as output:
            while self._process.poll() is None:
                sys.stdout.write(output.read())
                sys.stdout.flush()
                time.sleep(0.2)
            sys.stdout.write(output.read())
            sys.stdout.flush()
        return self._process.returncode

    def wait(self) -> int:
        return self._process.wait()

    def output(self) -> str:
        with open(self._output.name) as output:
            return output.read()

    def broke(self) -> list[str]:
        """The lines of its summary that name a test that broke."""
        return [line for line in self.output().splitlines() if line.startswith(BROKE)]

    def end(self) -> None:
        if self._process.poll() is None:  # interrupted
            self._process.terminate()
            self._process.wait()
        self._output.close()


def summary(sessions: list[tuple[str, int, list[str]]]) -> str:
    """Each session's marks, exit status and the tests it broke, for the end of the log."""
    lines = ["", "---- summary"]
    for marks, status, broke in sessions:
        lines.append(f"-m {marks!r}: {'passed' if status == 0 else f'exit status {status}'}")
        lines.extend(f"  {line}" for line in broke)
    return "\n".join(lines)


def main(args: list[str]) -> int:
    beside = Session(BESIDE, args, env={**os.environ, "BOOKLAB_TEST_IMAGE_PREFIX": f"{IMAGE_PREFIX}-beside"})
    first = Session(MAIN, args)
    try:
        statuses = {MAIN: first.echo(), BESIDE: beside.wait()}
        print(f"\n---- the tests marked beside, run beside the others (pytest -m {BESIDE!r}):")
        sys.stdout.write(beside.output())
        last = Session(ALONE, args)
        try:
            statuses[ALONE] = last.echo()
            print(summary([(s.marks, statuses[s.marks], s.broke()) for s in (first, beside, last)]))
        finally:
            last.end()
    finally:
        first.end()
        beside.end()
    return next((status for status in statuses.values() if status), 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
