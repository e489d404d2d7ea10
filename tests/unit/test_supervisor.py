"""A runner's checks (:mod:`booklab.runner.supervisor`) as plain calls, on a real Redis and the
GitLab stand-in, with no runner process and no Docker: what ends the run a runner holds, what
its user is told, and when the runner is free again."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from booklab import service
from booklab.context import Context
from booklab.dispatch.queues import DEPLOYMENTS_QUEUE
from booklab.phases import Phase
from booklab.pipeline import access, key_sweeper, teardown
from booklab.runner import recovery
from booklab.runner.supervisor import CHAIN_GAP, ChainWatch, QueueWatch, supervise
from booklab.saveback import protocol
from booklab.state import schema
from booklab.state.deployment import Deployment
from booklab.state.vault import NOTEBOOK_TOKEN
from tests.fixtures.pipeline import MAINTAINER, PROJECT, queue_run, served, taken, tasks_sent, told
from tests.fixtures.services import wait_until

RUNNER = "runner-1@test"
DEP = Deployment(PROJECT, "main", "alice")


def check(ctx, watch: ChainWatch | None = None, steps_in_hand: bool = False, runner: str = RUNNER) -> bool:
    """One check of ``runner``; whether it is free afterwards."""
    return supervise(ctx, runner, watch or ChainWatch(), steps_in_hand)


def past_the_gap(watch: ChainWatch) -> ChainWatch:
    """The watch as it is CHAIN_GAP seconds after it last saw a step of its run."""
    watch.idle_since = time.monotonic() - CHAIN_GAP
    return watch


def test_a_runner_still_holding_a_run_that_is_over_is_freed(redis_ctx):
    run = served(redis_ctx, DEP, RUNNER)
    # another runner ended it (this one was thought lost): the hold outlived the run
    assert teardown.end(redis_ctx, run, "runner-2@test", Phase.FAILED, "Ended by another runner.")
    assert redis_ctx.runners.held(RUNNER)

    assert check(redis_ctx)
    assert redis_ctx.runners.held(RUNNER) == {}
    assert told(redis_ctx, run) == ("failed", "Ended by another runner.")


def test_a_stop_ends_the_notebook_at_the_next_check_once_its_steps_are_over(redis_ctx):
    run = served(redis_ctx, DEP, RUNNER)
    service.stop(redis_ctx, DEP.id)

    assert not check(redis_ctx, steps_in_hand=True)  # a step still runs: the end waits for it
    assert redis_ctx.deployments.status(DEP.id) is Phase.STOPPING

    assert check(redis_ctx)
    assert told(redis_ctx, run) == ("stopped", "Stopped on request.")
    assert redis_ctx.runners.held(RUNNER) == {}
    assert redis_ctx.vault.notebook_token(DEP.id) is None


def test_a_stop_waits_for_a_save_now_under_way(redis_ctx):
    run = served(redis_ctx, DEP, RUNNER)
    assert service.save_now(redis_ctx, DEP.id, "alice's token")
    service.stop(redis_ctx, DEP.id)

    assert not check(redis_ctx)  # the save still reads the notebook
    assert not check(redis_ctx)
    assert told(redis_ctx, run) == ("stopping", "Stopping the notebook...")
    assert redis_ctx.lifecycle.current(DEP.id) == (Phase.STOPPING, run, "")  # nobody claimed its end

    protocol.unlock(redis_ctx, DEP.id)  # the save is over
    assert check(redis_ctx)
    assert told(redis_ctx, run) == ("stopped", "Stopped on request.")


def test_a_chain_that_died_during_the_preparation_fails_its_run_after_the_gap(redis_ctx):
    run = taken(redis_ctx, DEP, RUNNER)
    watch = ChainWatch()
    assert not check(redis_ctx, watch, steps_in_hand=True)
    assert not check(redis_ctx, watch)  # no step in hand: the gap starts
    assert not check(redis_ctx, past_the_gap(watch), steps_in_hand=True)  # a step again: the gap starts anew
    assert not check(redis_ctx, watch)
    assert redis_ctx.deployments.status(DEP.id) is Phase.FETCHING

    assert check(redis_ctx, past_the_gap(watch))
    assert told(redis_ctx, run) == (
        "failed",
        "Preparing this notebook stopped halfway (Booklab lost its state store for a moment): retry.",
    )
    assert redis_ctx.runners.held(RUNNER) == {}


def test_a_ready_notebook_whose_end_was_cut_off_is_stopped_after_the_gap(redis_ctx):
    run = served(redis_ctx, DEP, RUNNER)
    # the runner's process claimed the notebook's end, then died before it ended it
    assert redis_ctx.lifecycle.claim_end(run, RUNNER)
    watch = ChainWatch()
    assert not check(redis_ctx, watch)

    assert check(redis_ctx, past_the_gap(watch))
    assert told(redis_ctx, run) == ("stopped", "Stopping this notebook was cut off halfway; it is stopped now.")
    assert redis_ctx.runners.held(RUNNER) == {}


def test_a_queued_run_nobody_takes_is_sent_again_after_the_gap(redis_ctx):
    run = queue_run(redis_ctx, DEP)  # its chain was never sent
    watch = QueueWatch()
    watch.check(redis_ctx)
    watch.since -= CHAIN_GAP
    watch.pause()  # the runner took a notebook meanwhile: it was not free to take this one
    watch.check(redis_ctx)
    watch.check(redis_ctx)
    assert tasks_sent(redis_ctx, DEPLOYMENTS_QUEUE) == []

    watch.since -= CHAIN_GAP
    watch.check(redis_ctx)
    assert tasks_sent(redis_ctx, DEPLOYMENTS_QUEUE) == [("booklab.provision_key", [run.id])]
    assert told(redis_ctx, run) == ("waiting", "Waiting for a free runner: position 1 in the queue.")


def lose(ctx, runner: str) -> None:
    """The runner's heartbeat expires (it was killed, or its host is gone)."""
    ctx.redis.pexpire(schema.heartbeat(runner), 1)
    while ctx.redis.exists(schema.heartbeat(runner)):
        time.sleep(0.001)


def test_the_runs_of_lost_runners_end_and_the_lost_runners_are_forgotten(redis_ctx):
    preparing, serving = Deployment(PROJECT, "main", "alice"), Deployment(PROJECT, "other", "alice")
    redis_ctx.runners.beat("runner-2@test")
    redis_ctx.runners.beat("runner-3@test")
    prepared_run = taken(redis_ctx, preparing, "runner-2@test")
    served_run = served(redis_ctx, serving, "runner-3@test")
    assert check(redis_ctx)
    assert redis_ctx.deployments.status(preparing.id) is Phase.FETCHING  # its runner is alive

    lose(redis_ctx, "runner-2@test")
    lose(redis_ctx, "runner-3@test")
    assert check(redis_ctx)
    assert told(redis_ctx, prepared_run) == ("failed", "The runner preparing this notebook was lost: retry.")
    assert told(redis_ctx, served_run) == ("stopped", "The runner serving this notebook was lost; launch it again.")
    assert redis_ctx.vault.find(serving.id, NOTEBOOK_TOKEN) is None
    assert redis_ctx.redis.smembers(schema.RUNNERS) == {RUNNER}
    assert redis_ctx.runners.held("runner-2@test") == redis_ctx.runners.held("runner-3@test") == {}


def test_a_lost_runner_is_reaped_by_one_runner_only(redis_ctx):
    redis_ctx.runners.beat("runner-2@test")
    run = taken(redis_ctx, DEP, "runner-2@test")
    lose(redis_ctx, "runner-2@test")
    assert recovery.lost_runners(redis_ctx) == ["runner-2@test"]

    assert recovery.reap(redis_ctx, "runner-2@test", by=RUNNER)
    assert not recovery.reap(redis_ctx, "runner-2@test", by="runner-3@test")
    assert [e.data["phase"] for e in redis_ctx.events.read(run.id)].count("failed") == 1
    assert recovery.lost_runners(redis_ctx) == []


@pytest.fixture
def project_on_gitlab(gitlab, alice):
    gitlab.add_project(PROJECT, members={"alice": MAINTAINER})
    return alice.token


@pytest.fixture
def clone_key(redis_ctx, project_on_gitlab):
    """A clone's deploy key on the project: the project, and the key's title."""
    gl = redis_ctx.gitlab(project_on_gitlab)
    project = gl.project(PROJECT)
    title = access.key_title("clone", DEP.id)
    assert access.add_deploy_key(redis_ctx, gl, project, title)
    return project, title


def test_a_deploy_key_gitlab_failed_to_remove_is_swept_at_the_next_check(
    redis_ctx, gitlab, project_on_gitlab, clone_key
):
    project, title = clone_key
    key_sweeper.expect(redis_ctx, project.id, title, project_on_gitlab, due=time.time() + 3600)
    assert check(redis_ctx)
    assert len(gitlab.deploy_keys(PROJECT)) == 1  # not due yet

    key_sweeper.expect(redis_ctx, project.id, title, project_on_gitlab, due=time.time())
    assert check(redis_ctx)
    assert gitlab.deploy_keys(PROJECT) == []
    assert redis_ctx.redis.zcard(schema.KEY_SWEEP) == 0


def _sweep_in_a_process_of_its_own(config) -> None:
    key_sweeper.sweep(Context(config))


def test_a_sweep_whose_runner_died_before_gitlab_answered_is_taken_again(
    redis_ctx, gitlab, project_on_gitlab, clone_key
):
    project, title = clone_key
    key_sweeper.expect(redis_ctx, project.id, title, project_on_gitlab, due=time.time())
    member = f"{project.id} {title}"
    gitlab.fail_next(r"/deploy_keys", status=0, delay=20)  # GitLab is slow to answer the sweep
    runner = multiprocessing.get_context("spawn").Process(
        target=_sweep_in_a_process_of_its_own, args=(redis_ctx.config,)
    )
    runner.start()
    wait_until(lambda: gitlab.faults_left() == 0, 30, "a runner to take the sweep and ask GitLab")
    runner.kill()  # and dies before GitLab answered
    runner.join()

    assert redis_ctx.redis.zscore(schema.KEY_SWEEP, member) is not None  # due again when its lease runs out
    redis_ctx.redis.zadd(schema.KEY_SWEEP, {member: time.time()}, xx=True)  # it ran out
    assert check(redis_ctx)
    assert gitlab.deploy_keys(PROJECT) == []
    assert redis_ctx.redis.zcard(schema.KEY_SWEEP) == 0
    assert redis_ctx.vault.find(member, key_sweeper.SWEEP_TOKEN) is None


def test_a_sweep_gitlab_fails_to_answer_is_due_again_after_retry_max_delay(
    redis_ctx, gitlab, project_on_gitlab, clone_key
):
    project, title = clone_key
    key_sweeper.expect(redis_ctx, project.id, title, project_on_gitlab, due=time.time())
    gitlab.fail_next(r"/deploy_keys", status=500, times=20)  # GitLab fails every try of the removal
    before = time.time()
    assert check(redis_ctx)
    assert len(gitlab.deploy_keys(PROJECT)) == 1
    due = redis_ctx.redis.zscore(schema.KEY_SWEEP, f"{project.id} {title}")
    delay = redis_ctx.config.retry_max_delay  # not the lease's end: that is for a runner that died
    assert before + delay <= due <= time.time() + delay


def test_a_key_gitlab_adds_after_its_title_was_removed_is_swept_once_more_later(redis_ctx, gitlab, project_on_gitlab):
    gl = redis_ctx.gitlab(project_on_gitlab)
    project = gl.project(PROJECT)
    title = access.key_title("clone", DEP.id)
    queue_run(redis_ctx, DEP, project_on_gitlab)  # the user's token, as a run has it
    # its adding got no answer (no deploy_key_added): the key is not there yet when its run removes it
    redis_ctx.deployments.update(DEP.id, project_id=str(project.id), deploy_key_title=title)
    access.remove_deploy_key(redis_ctx, DEP.id)
    member = f"{project.id} {title}"
    assert redis_ctx.redis.zscore(schema.KEY_SWEEP_LATE, member) > time.time() + 60  # keys/late_sweep
    # a sweep of its title meanwhile (it found no key) does not cancel the late sweep
    key_sweeper.expect(redis_ctx, project.id, title, project_on_gitlab, due=time.time())
    assert check(redis_ctx)
    assert redis_ctx.redis.zcard(schema.KEY_SWEEP) == 0
    # then GitLab adds it after all
    assert access.add_deploy_key(redis_ctx, gl, project, title)
    assert check(redis_ctx)
    assert len(gitlab.deploy_keys(PROJECT)) == 1  # not due yet

    redis_ctx.redis.zadd(schema.KEY_SWEEP_LATE, {member: time.time()})  # keys/late_sweep later
    assert check(redis_ctx)
    assert gitlab.deploy_keys(PROJECT) == []
    assert redis_ctx.redis.zcard(schema.KEY_SWEEP_LATE) == 0
    assert redis_ctx.vault.find(member, key_sweeper.LATE_TOKEN) is None


def test_a_key_whose_adding_was_answered_gets_no_late_sweep(redis_ctx, gitlab, project_on_gitlab):
    gl = redis_ctx.gitlab(project_on_gitlab)
    project = gl.project(PROJECT)
    title = access.key_title("clone", DEP.id)
    queue_run(redis_ctx, DEP, project_on_gitlab)  # the user's token, as a run has it
    assert access.add_deploy_key(redis_ctx, gl, project, title)
    redis_ctx.deployments.update(DEP.id, project_id=str(project.id), deploy_key_title=title, deploy_key_added="1")
    access.remove_deploy_key(redis_ctx, DEP.id)
    assert gitlab.deploy_keys(PROJECT) == []
    assert redis_ctx.redis.zcard(schema.KEY_SWEEP_LATE) == 0 and redis_ctx.redis.zcard(schema.KEY_SWEEP) == 0
