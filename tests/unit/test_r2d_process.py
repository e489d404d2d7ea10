"""The repo2docker process started ahead of a build: the run's build gets it, nothing else does, and none
is left behind (real processes; no Docker Engine: none of them is given a build)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from booklab.pipeline import r2d_process
from booklab.pipeline.r2d_waiting import NOT_BUILT
from tests.fixtures.services import wait_until


@pytest.fixture(autouse=True)
def none_ahead():
    yield
    r2d_process.drop_ahead()


def test_the_build_of_the_run_gets_the_process_started_ahead_for_it():
    ahead = r2d_process.start_ahead("alice/notes:main:alice#1")
    assert ahead.waiting()
    taken = r2d_process.take_ahead("alice/notes:main:alice#1")
    assert taken is ahead and taken.waiting()
    taken.close()


def test_another_runs_build_gets_a_new_process_and_the_one_ahead_ends():
    ahead = r2d_process.start_ahead("alice/notes:main:alice#1")
    taken = r2d_process.take_ahead("alice/notes:main:alice#2")
    assert taken is not ahead and taken.waiting()
    assert ahead.process.poll() is not None
    taken.close()


def test_one_process_ahead_at_most():
    first = r2d_process.start_ahead("alice/notes:main:alice#1")
    second = r2d_process.start_ahead("bob/notes:main:bob#1")
    assert first.process.poll() is not None and second.waiting()
    r2d_process.drop_ahead()
    assert second.process.poll() is not None


def test_a_process_ahead_that_ended_is_replaced():
    ahead = r2d_process.start_ahead("alice/notes:main:alice#1")
    ahead.kill()
    ahead.process.wait()
    taken = r2d_process.take_ahead("alice/notes:main:alice#1")
    assert taken is not ahead and taken.waiting()
    taken.close()


def test_a_process_given_no_arguments_ends_without_a_build_and_says_so():
    process = r2d_process.Repo2docker()
    process.process.stdin.close()
    assert process.process.wait(timeout=30) == NOT_BUILT != 0
    assert process.process.stdout.read() == ""
    process.close()


def test_arguments_handed_to_a_process_that_has_ended_give_a_failed_build_not_a_crash():
    process = r2d_process.Repo2docker()
    process.kill()
    process.process.wait()
    with process.begin(["--version"]) as output:
        assert output.read() == ""
    assert process.process.wait() != 0
    process.close()


@pytest.mark.parametrize("building", [False, True])
def test_a_process_ahead_dies_with_the_runner_process_that_started_it(tmp_path, building):
    # an engine that never answers: a build handed its arguments waits on it, and on nothing else
    engine = socket.socket(socket.AF_UNIX)
    engine.bind(str(tmp_path / "docker.sock"))
    engine.listen(8)
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "Dockerfile").write_text("FROM scratch\n")
    env = os.environ | {"DOCKER_HOST": f"unix://{tmp_path / 'docker.sock'}"}
    arguments = ["--engine=booklab", "--no-run", "--image-name=booklab-test/never:1", "--user-id=1000"]
    arguments += ["--user-name=jovyan", "--", str(tmp_path / "repo")]
    script = STARTS_ONE.format(arguments=arguments if building else None)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    held: list[socket.socket] = []  # connections to the engine, never answered
    try:
        child = int(parent.stdout.readline())
        if building:
            wait_until(lambda: _connected(engine, held), 30, "the build to ask the engine")
        assert not _gone(child)
        parent.kill()  # as a runner lost to SIGKILL
        parent.wait()
        wait_until(lambda: _gone(child), 10, "the process started ahead to die with its parent")
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()
        for connection in held:
            connection.close()
        engine.close()


#: a stand-in for a runner's process: starts a repo2docker process ahead, tells its pid, hands it its
#: arguments (if any), then waits
STARTS_ONE = """
import time
from booklab.pipeline import r2d_process
process = r2d_process.start_ahead("alice/notes:main:alice#1")
print(process.process.pid, flush=True)
if {arguments!r} is not None:
    process.begin({arguments!r})
time.sleep(60)
"""


def _connected(engine: socket.socket, held: list[socket.socket]) -> bool:
    engine.settimeout(0.1)
    try:
        connection, _ = engine.accept()
    except TimeoutError:
        return False
    held.append(connection)
    return True


def _gone(pid: int) -> bool:
    """Whether ``pid`` is gone or a zombie (its parent, reaped by now, no longer waits for it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
