"""Redis restarted while a notebook runs and another deployment waits for the runner: the
runner reconnects by itself, the waiting deployment keeps its place (Redis with an
append-only file, as in production) and is served once the runner is free. Restarted in
the middle of a build, the deployment ends ``failed`` (retry) instead of staying stuck."""

from __future__ import annotations

import time

import pytest

from booklab import service
from booklab.phases import Phase
from booklab.state import schema
from tests.fixtures.gitlab import create_local_repo
from tests.fixtures.pipeline import (
    BRANCH_WITH_SLASH,
    MAINTAINER,
    events_of,
    messages,
    notebook_repo_files,
    phases,
    run_to_end,
)
from tests.fixtures.services import wait_until


@pytest.fixture
def booklab_env(booklab_env, own_redis):
    return {**booklab_env, "BOOKLAB_REDIS_URL": own_redis.url}


def test_after_a_redis_restart_the_runner_goes_on_and_the_queue_is_kept(ctx, runners, alice, project, own_redis):
    (runner,) = runners(1)
    first = service.request_deployment(ctx, project, "main", alice.token)
    assert phases(run_to_end(ctx, first.id))[-1] == "ready"
    second = service.request_deployment(ctx, project, BRANCH_WITH_SLASH, alice.token)
    assert ctx.deployments.queue_position(second.id) == 1

    own_redis.stop()
    time.sleep(3)  # a few failed heartbeats and broker polls
    own_redis.start()

    assert ctx.deployments.status(first.id) is Phase.READY
    assert (ctx.deployments.status(second.id), ctx.deployments.queue_position(second.id)) == (Phase.TODO, 1)
    ctx.redis.delete(schema.heartbeat(runner.name))
    wait_until(lambda: runner.name in ctx.runners.alive(), 30, "the runner's heartbeat after the restart")
    time.sleep(2)
    assert ctx.deployments.status(second.id) is Phase.TODO  # still one notebook at a time

    service.stop(ctx, first.id)
    last = run_to_end(ctx, second.id)[-1]
    assert last["phase"] == "ready", last["message"]
    assert ctx.deployments.status(first.id) is Phase.STOPPED


def test_a_build_cut_off_by_a_redis_restart_ends_failed_not_stuck(
    ctx, runners, gitlab, alice, base_image, tmp_path, own_redis
):
    repo = create_local_repo(
        tmp_path / "ticking",
        {"main": notebook_repo_files(base_image, "RUN for i in $(seq 1 14); do echo tick $i; sleep 0.5; done\n")},
    )
    gitlab.add_project("demo/ticking", members={"alice": MAINTAINER})
    gitlab.push("demo/ticking", repo)
    (runner,) = runners(1)
    request = service.request_deployment(ctx, "demo/ticking", "main", alice.token)
    wait_until(lambda: "tick 2" in messages([e.data for e in events_of(ctx, request.id)]), 60, "the build")

    own_redis.stop()  # the build's next log line cannot be written: its step ends
    time.sleep(3)
    own_redis.start()

    events = run_to_end(ctx, request.id, timeout=60)
    assert events[-1]["phase"] == "failed" and "stopped halfway" in events[-1]["message"]
    wait_until(lambda: not ctx.runners.held(runner.name), 10, "the runner to be free")
    assert (
        phases(run_to_end(ctx, service.request_deployment(ctx, "demo/ticking", "main", alice.token).id, timeout=120))[
            -1
        ]
        == "ready"
    )
