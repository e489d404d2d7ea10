"""``make test``: the whole suite as two pytest sessions at once, then the tests that must run alone.

Most tests wait (on Docker, Jupyter, timers) more than they compute, so some long modules, marked ``beside``
(Hypothesis's interleavings, the storms, save back, ...), run in a session of their own beside the others. The two
share the Docker Engine (the last to end stops it: :class:`tests.fixtures.services.DockerDaemon`) and nothing else:
each has its own Redis, Traefik, web tier, GitLab stand-in, runners and notebook network, and names its images under
a prefix of its own (``BOOKLAB_TEST_IMAGE_PREFIX``). So a test counts its own session's containers
(:func:`tests.fixtures.pipeline.notebook_containers`: both may run the same deployment, of the same project, branch
and user) and lists containers in one call (another session's may be gone before they are inspected); the tests that
make Docker hosts of their own in network namespaces (fixed names) stay in one session. The tests marked ``alone``
(they stop the Docker Engine) run after both, by themselves. The second session's output is printed when it ends.

Arguments go to every session (``python -m tests.lanes -x``). The exit status is the first failed session's
(pytest's 5 when one ran no test), else 0.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from tests.fixtures.pipeline import IMAGE_PREFIX

#: the sessions, by the tests they run: the first two at once, then the last
BESIDE = "beside and not alone"
MAIN = "not beside and not alone"
ALONE = "alone"


def pytest(marks: str, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", "-m", marks, *args]


def main(args: list[str]) -> int:
    beside_command = pytest(BESIDE, args)
    with tempfile.TemporaryFile("w+") as beside_output:
        beside = subprocess.Popen(
            beside_command,
            stdout=beside_output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "BOOKLAB_TEST_IMAGE_PREFIX": f"{IMAGE_PREFIX}-beside"},
        )
        try:
            main_status = subprocess.run(pytest(MAIN, args)).returncode
            beside_status = beside.wait()
        finally:
            if beside.poll() is None:  # interrupted
                beside.terminate()
                beside.wait()
        beside_output.seek(0)
        print(f"\n---- the tests marked beside, run beside the others ({' '.join(beside_command[1:])}):")
        sys.stdout.write(beside_output.read())
        sys.stdout.flush()
    alone_status = subprocess.run(pytest(ALONE, args)).returncode
    return next((status for status in (main_status, beside_status, alone_status) if status), 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
