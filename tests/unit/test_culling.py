"""What a runner remembers of its notebook's activity between its checks (:class:`ActivityWatch`): Jupyter is
asked only once the notebook may have idled past its limit since the latest activity known."""

from __future__ import annotations

from booklab.runner.culling import ActivityWatch

STARTED = 1000.0


def test_before_anything_is_known_the_notebooks_start_counts_as_its_latest_activity():
    assert ActivityWatch().known("demo:main:alice#1", STARTED) == STARTED


def test_an_activity_seen_counts_for_its_run_only():
    watch = ActivityWatch()
    watch.saw("demo:main:alice#1", STARTED + 50)
    assert watch.known("demo:main:alice#1", STARTED) == STARTED + 50
    # the runner's next notebook: its own start, never the activity of the notebook before
    assert watch.known("demo:main:alice#2", STARTED + 10) == STARTED + 10
    assert watch.known("demo:main:bob#1", STARTED + 10) == STARTED + 10


def test_a_start_later_than_the_activity_seen_wins():
    watch = ActivityWatch()
    watch.saw("demo:main:alice#1", STARTED - 30)  # a warm spare's server, idle before its user came
    assert watch.known("demo:main:alice#1", STARTED) == STARTED
