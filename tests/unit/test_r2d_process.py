"""The repo2docker process started ahead of a build: the run's build gets it, nothing else does, and none
is left behind (real processes; no Docker Engine: none of them is given a build)."""

import pytest

from booklab.pipeline import r2d_process
from booklab.pipeline.r2d_waiting import NOT_BUILT


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
