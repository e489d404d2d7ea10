"""The lifecycle's checked moves on a real Redis: runs, stops that are not joined, one
claimant per end, a run queued behind an end, and only the lifecycle writing a status."""

import ast
from pathlib import Path

import pytest

import booklab
from booklab.errors import Moved
from booklab.phases import Phase
from booklab.state import lifecycle as lifecycle_module
from booklab.state import schema
from booklab.state.deployment import Deployment
from booklab.state.events import EventLog
from booklab.state.lifecycle import MOVES, Lifecycle, Outcome, Run, allowed
from booklab.state.vault import GITLAB_TOKEN, PENDING

DEP = Deployment("g/p", "main", "alice")
SLUG = "slug-of-alice"


@pytest.fixture
def lifecycle(redis_client) -> Lifecycle:
    return Lifecycle(redis_client, EventLog(redis_client))


def ready(lifecycle: Lifecycle) -> Run:
    """A run of DEP, taken by runner-1 and ready."""
    outcome, run = lifecycle.request(DEP, SLUG, {}, b"sealed", 60)
    assert outcome is Outcome.STARTED
    assert lifecycle.claim(run, "runner-1")
    for phase in (Phase.BUILDING, Phase.LAUNCHING, Phase.READY):
        lifecycle.say(run, phase, phase.value)
    return run


def phases(lifecycle: Lifecycle, run: Run) -> list[str]:
    return [e.data["phase"] for e in lifecycle.events.read(run.id)]


def test_a_request_while_the_run_stops_starts_a_new_run_behind_it_and_never_joins(lifecycle, redis_client):
    first = ready(lifecycle)
    assert lifecycle.stop(DEP.id) == (Phase.READY, first)
    outcome, second = lifecycle.request(DEP, SLUG, {}, b"sealed again", 60)
    assert (outcome, second) == (Outcome.BEHIND, Run(DEP.id, 2))
    assert lifecycle.request(DEP, SLUG, {}, b"newest", 60) == (Outcome.JOINED, second)  # a third joins the second
    assert redis_client.get(schema.secret(DEP.id, PENDING + GITLAB_TOKEN)) == "newest"  # the freshest token
    claim = lifecycle.claim_end(first, "runner-1")
    assert claim is not None and claim.before is Phase.STOPPING
    assert lifecycle.finish(first, claim.token, Phase.STOPPED, "Stopped on request.") == second
    # the new run is queued with its own log, its token and its slug; the old log ends with its end
    assert lifecycle.current(DEP.id) == (Phase.TODO, second, "")
    assert redis_client.zrange(schema.QUEUE, 0, -1) == [DEP.id]
    assert redis_client.get(schema.secret(DEP.id, GITLAB_TOKEN)) == "newest"
    assert redis_client.get(schema.slug(SLUG)) == DEP.id
    assert phases(lifecycle, first) == ["fetching", "building", "launching", "ready", "stopping", "stopped"]
    assert phases(lifecycle, second) == ["waiting"]


def test_requests_one_after_the_other_queue_in_their_order_whatever_their_names(lifecycle, redis_client):
    # names that sort backwards: in a tie of the queue's scores Redis would order them so
    users = [f"user-{99 - i:02d}" for i in range(40)]
    for user in users:
        lifecycle.request(Deployment("g/p", "main", user), f"slug-of-{user}", {}, b"sealed", 60)
    assert redis_client.zrange(schema.QUEUE, 0, -1) == [f"g/p:main:{user}" for user in users]


def test_a_step_of_a_stopped_run_writes_nothing(lifecycle):
    _, run = lifecycle.request(DEP, SLUG, {}, b"sealed", 60)
    lifecycle.claim(run, "runner-1")
    lifecycle.say(run, Phase.BUILDING, "Step 1/3")
    lifecycle.stop(DEP.id)
    with pytest.raises(Moved, match="found stopping in run 1"):
        lifecycle.say(run, Phase.BUILDING, "Step 2/3")
    assert phases(lifecycle, run) == ["fetching", "building", "stopping"]


def test_one_claimant_ends_a_run_and_a_second_end_writes_nothing(lifecycle):
    run = ready(lifecycle)
    claim = lifecycle.claim_end(run, "runner-1 supervisor")
    assert claim is not None and claim.before is Phase.READY
    assert lifecycle.claim_end(run, "runner-1 steps") is None
    assert lifecycle.finish(run, "someone else's claim", Phase.FAILED, "failed") is None
    assert lifecycle.finish(run, claim.token, Phase.STOPPED, "The notebook server ended.") is None
    assert lifecycle.finish(run, claim.token, Phase.FAILED, "a second end") is None
    assert phases(lifecycle, run)[-1:] == ["stopped"] and phases(lifecycle, run).count("stopped") == 1


def test_only_a_claimant_known_to_be_gone_is_taken_over(lifecycle):
    run = ready(lifecycle)
    assert lifecycle.claim_end(run, "runner-1") is not None
    assert lifecycle.claim_end(run, "runner-2", take_over_from="runner-12") is None  # a name's prefix is not it
    assert lifecycle.claim_end(run, "runner-3", take_over_from="runner-2") is None
    taken = lifecycle.claim_end(run, "runner-2", take_over_from="runner-1")
    assert taken is not None
    assert lifecycle.finish(run, taken.token, Phase.STOPPED, "The runner serving this notebook was lost.") is None
    assert lifecycle.current(DEP.id)[0] is Phase.STOPPED


def test_an_end_called_off_keeps_the_notebook_and_drops_the_run_behind_it(lifecycle, redis_client):
    run = ready(lifecycle)
    lifecycle.stop(DEP.id)
    _, behind = lifecycle.request(DEP, SLUG, {}, b"sealed", 60)
    claim = lifecycle.claim_end(run, "runner-1")
    assert lifecycle.keep(run, claim.token)  # its save failed
    assert lifecycle.current(DEP.id) == (Phase.READY, run, "")
    assert lifecycle.pending(DEP.id) is None and phases(lifecycle, behind) == ["waiting", "stopped"]
    assert not redis_client.exists(schema.secret(DEP.id, PENDING + GITLAB_TOKEN))


def test_a_queued_run_stops_at_once_and_its_chain_cannot_claim_it(lifecycle, redis_client):
    _, run = lifecycle.request(DEP, SLUG, {}, b"sealed", 60)
    assert lifecycle.stop(DEP.id) == (Phase.TODO, run)
    assert not lifecycle.claim(run, "runner-1")
    assert redis_client.zrange(schema.QUEUE, 0, -1) == [] and not redis_client.exists(schema.slug(SLUG))
    _, again = lifecycle.request(DEP, SLUG, {}, b"sealed", 60)
    assert again == Run(DEP.id, 2)
    assert not lifecycle.claim(run, "runner-1")  # the first run's chain, delivered late
    assert lifecycle.claim(again, "runner-1")


def test_an_event_cannot_undo_a_stop_or_revive_an_ended_run(lifecycle, redis_client):
    run = ready(lifecycle)
    lifecycle.stop(DEP.id)
    for phase in (Phase.READY, Phase.LAUNCHING, Phase.STOPPED, Phase.FAILED):
        with pytest.raises(Moved):
            lifecycle.say(run, phase, "a step that did not see the stop")
    claim = lifecycle.claim_end(run, "runner-1")
    lifecycle.finish(run, claim.token, Phase.STOPPED, "Stopped on request.")
    with redis_client.pipeline() as pipe:
        lifecycle.tell_waiting(pipe, DEP.id, "position 1", 1)
        pipe.execute()
    assert lifecycle.current(DEP.id)[0] is Phase.STOPPED


def test_a_claim_given_back_waits_for_its_supervisor_again(lifecycle):
    run = ready(lifecycle)
    lifecycle.stop(DEP.id)
    claim = lifecycle.claim_end(run, "runner-1")
    assert lifecycle.give_back(run, claim)  # a Save now took the notebook in between
    assert lifecycle.current(DEP.id) == (Phase.STOPPING, run, "")  # the Stop still stands
    culled = lifecycle.claim_end(run, "runner-1")
    assert culled is not None and lifecycle.give_back(run, culled)
    assert lifecycle.current(DEP.id) == (Phase.STOPPING, run, "")


def test_a_queued_run_stopped_loses_its_secrets_in_the_same_move(lifecycle, redis_client):
    lifecycle.request(DEP, SLUG, {}, b"sealed", 60)
    lifecycle.stop(DEP.id)
    assert redis_client.keys("secret:*") == []
    _, again = lifecycle.request(DEP, SLUG, {}, b"sealed again", 60)
    assert redis_client.get(schema.secret(DEP.id, GITLAB_TOKEN)) == "sealed again"


def test_a_new_run_never_shows_an_old_log_of_its_number(lifecycle, redis_client):
    first = ready(lifecycle)
    redis_client.delete(schema.runseq(DEP.id))  # forgotten, as after 7 quiet days, while the old log is kept
    lifecycle.stop(DEP.id)
    claim = lifecycle.claim_end(first, "runner-1")
    lifecycle.finish(first, claim.token, Phase.STOPPED, "Stopped.")
    _, again = lifecycle.request(DEP, SLUG, {}, b"sealed", 60)
    assert again.number == first.number and phases(lifecycle, again) == []


def test_a_record_from_before_runs_is_run_0(lifecycle, redis_client):
    redis_client.hset(schema.deployment(DEP.id), mapping={"project": "g/p", "ref": "main", "user": "alice"})
    redis_client.hset(schema.STATUS, DEP.id, "ready")
    assert lifecycle.current(DEP.id) == (Phase.READY, Run(DEP.id, 0), "")
    assert lifecycle.request(DEP, SLUG, {}, b"sealed", 60) == (Outcome.JOINED, Run(DEP.id, 0))
    assert Run.parse(DEP.id) == Run(DEP.id, 0) and Run.parse("g/p:feat#1:alice") == Run("g/p:feat#1:alice", 0)
    assert Run.parse(f"{DEP.id}#7") == Run(DEP.id, 7)


def test_the_table_allows_no_move_out_of_a_final_phase_but_a_new_run():
    for phase in (Phase.FAILED, Phase.STOPPED):
        assert [m.after for m in MOVES if m.before is phase] == [Phase.TODO]
    assert not allowed(Phase.READY, Phase.STOPPED)  # an end is claimed first (stopping)
    assert not allowed(Phase.STOPPING, Phase.TODO)  # a new run waits for the end
    assert all(m.by for m in MOVES)


def test_only_the_lifecycle_writes_a_status():
    """No module but booklab.state.lifecycle names the status hash in a write (state/records.py
    only reads it, and forgets long-ended statuses)."""
    package = Path(booklab.__file__).parent
    writers = set()
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("hset", "hdel", "hsetnx", "hmset", "delete")
                and any(isinstance(a, ast.Attribute) and a.attr == "STATUS" for a in node.args)
            ):
                writers.add(path.relative_to(package).as_posix())
    assert writers == set()
    assert "'HSET', STATUS" in lifecycle_module._SAY


def test_reliability_md_shows_the_table_as_it_is():
    doc = (Path(booklab.__file__).parents[1] / "docs" / "RELIABILITY.md").read_text()
    for move in MOVES:
        before = move.before.value if move.before else "(no run)"
        assert f"| {before} | {move.after.value} | {move.by} |" in doc, move
