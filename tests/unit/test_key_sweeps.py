"""The sets of deploy keys to sweep: a sweep is taken by one caller at a time, one sweep at a time, under a
lease."""

from __future__ import annotations

import threading

from booklab.state import schema
from booklab.state.key_sweeps import KeySweeps

MEMBER = "7 booklab-clone-x"


def test_a_due_sweep_is_taken_by_one_caller_until_its_lease_runs_out(redis_client):
    sweeps = KeySweeps(redis_client)
    sweeps.due(schema.KEY_SWEEP, MEMBER, at=100)
    assert sweeps.take_due(schema.KEY_SWEEP, now=99, lease=60) is None  # not due yet

    assert sweeps.take_due(schema.KEY_SWEEP, now=100, lease=60) == MEMBER
    assert sweeps.take_due(schema.KEY_SWEEP, now=159, lease=60) is None  # leased to the first
    assert sweeps.take_due(schema.KEY_SWEEP, now=160, lease=60) == MEMBER  # its taker did not finish it

    assert sweeps.done(schema.KEY_SWEEP, MEMBER)
    assert sweeps.take_due(schema.KEY_SWEEP, now=10_000, lease=60) is None
    assert not sweeps.done(schema.KEY_SWEEP, MEMBER)  # done already


def test_a_sweep_that_failed_after_another_caller_finished_it_is_not_due_again(redis_client):
    sweeps = KeySweeps(redis_client)
    sweeps.due(schema.KEY_SWEEP, MEMBER, at=100)
    assert sweeps.take_due(schema.KEY_SWEEP, now=100, lease=60) == MEMBER  # GitLab holds this caller's request
    assert sweeps.take_due(schema.KEY_SWEEP, now=160, lease=60) == MEMBER  # past the lease: another takes it
    assert sweeps.done(schema.KEY_SWEEP, MEMBER)  # and removes the key

    sweeps.put_off(schema.KEY_SWEEP, MEMBER, at=220)  # then GitLab fails the first caller's request
    assert sweeps.take_due(schema.KEY_SWEEP, now=10_000, lease=60) is None  # nothing left to sweep, no false alarm


def test_a_failed_sweep_is_put_off_past_its_lease(redis_client):
    sweeps = KeySweeps(redis_client)
    sweeps.due(schema.KEY_SWEEP, MEMBER, at=100)
    assert sweeps.take_due(schema.KEY_SWEEP, now=100, lease=60) == MEMBER
    sweeps.put_off(schema.KEY_SWEEP, MEMBER, at=400)
    assert sweeps.take_due(schema.KEY_SWEEP, now=399, lease=60) is None
    assert sweeps.take_due(schema.KEY_SWEEP, now=400, lease=60) == MEMBER


def test_sweeps_are_taken_one_at_a_time_the_one_due_first_first(redis_client):
    sweeps = KeySweeps(redis_client)
    sweeps.due(schema.KEY_SWEEP, "7 later", at=200)
    sweeps.due(schema.KEY_SWEEP, "7 sooner", at=100)
    assert sweeps.take_due(schema.KEY_SWEEP, now=300, lease=60) == "7 sooner"
    assert sweeps.take_due(schema.KEY_SWEEP, now=300, lease=60) == "7 later"
    assert sweeps.take_due(schema.KEY_SWEEP, now=300, lease=60) is None


def test_twenty_runners_taking_at_once_take_a_sweep_once(redis_client):
    sweeps = KeySweeps(redis_client)
    sweeps.due(schema.KEY_SWEEP, MEMBER, at=100)
    start = threading.Barrier(20)
    taken = []

    def take() -> None:
        start.wait()
        taken.append(sweeps.take_due(schema.KEY_SWEEP, now=100, lease=60))

    threads = [threading.Thread(target=take) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(taken, key=str) == [MEMBER] + [None] * 19
