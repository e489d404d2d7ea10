"""The sets of deploy keys to sweep: a sweep is taken by one caller at a time, under a lease."""

from __future__ import annotations

from booklab.state import schema
from booklab.state.key_sweeps import KeySweeps

MEMBER = "7 booklab-clone-x"


def test_a_due_sweep_is_taken_by_one_caller_until_its_lease_runs_out(redis_client):
    sweeps = KeySweeps(redis_client)
    sweeps.due(schema.KEY_SWEEP, MEMBER, at=100)
    assert sweeps.take_due(schema.KEY_SWEEP, now=99, lease=60) == []  # not due yet

    assert sweeps.take_due(schema.KEY_SWEEP, now=100, lease=60) == [MEMBER]
    assert sweeps.take_due(schema.KEY_SWEEP, now=159, lease=60) == []  # leased to the first
    assert sweeps.take_due(schema.KEY_SWEEP, now=160, lease=60) == [MEMBER]  # its taker did not finish it

    sweeps.done(schema.KEY_SWEEP, MEMBER)
    assert sweeps.take_due(schema.KEY_SWEEP, now=10_000, lease=60) == []
