"""A run's full log, on a real Redis: every message of the run as text, past the event cap
the page's stream keeps, cut (and saying so) at its most bytes, and its own to each run."""

from __future__ import annotations

from booklab.phases import Phase
from booklab.state import schema
from booklab.state.deployment import Deployment
from booklab.state.events import LOG_CUT
from tests.fixtures.pipeline import PROJECT, queue_run, take_run

DEP = Deployment(PROJECT, "main", "alice")


def test_the_full_log_keeps_every_line_past_the_event_cap_and_is_cut_at_its_most(redis_ctx):
    redis_ctx.events.max_events, redis_ctx.events.full_max = 5, 2000
    run = take_run(redis_ctx, queue_run(redis_ctx, DEP).deployment)
    for n in range(40):
        redis_ctx.lifecycle.say(run, Phase.BUILDING, f"Step {n}: pip install thing-{n}")

    assert len(redis_ctx.events.read(run.id)) == 5  # the stream's cap
    full = redis_ctx.events.full(run.id)
    assert "Step 0: pip install thing-0\n" in full and "Step 39: pip install thing-39\n" in full
    assert redis_ctx.redis.ttl(schema.full_log(run.id)) > redis_ctx.events.retention - 5

    for n in range(100):
        redis_ctx.lifecycle.say(run, Phase.BUILDING, "x" * 50)
    full = redis_ctx.events.full(run.id)
    assert len(full) == 2000 + len(LOG_CUT) and full.endswith(LOG_CUT)


def test_each_run_has_a_full_log_of_its_own(redis_ctx):
    first = take_run(redis_ctx, queue_run(redis_ctx, DEP).deployment)
    redis_ctx.lifecycle.say(first, Phase.BUILDING, "the first run's build")
    claim = redis_ctx.lifecycle.claim_end(first, "runner-played-by-a-test")
    redis_ctx.lifecycle.finish(first, claim.token, Phase.FAILED, "The build failed.")
    second = queue_run(redis_ctx, DEP)

    assert "the first run's build" not in (redis_ctx.events.full(second.id) or "")
    assert redis_ctx.events.full(first.id).endswith("the first run's build\nThe build failed.\n")
