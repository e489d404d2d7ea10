"""Runners killed with SIGKILL: a lost runner's deployment does not stay stuck in a phase;
a runner restarted under its name adopts the notebook it served or removes what it left."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from booklab import service
from booklab.phases import Phase
from booklab.pipeline import launcher
from booklab.state import schema
from tests.fixtures.gitlab import create_local_repo
from tests.fixtures.pipeline import (
    BRANCH_WITH_SLASH,
    MAINTAINER,
    events_of,
    notebook_repo_files,
    run_to_end,
)
from tests.fixtures.services import wait_until


def test_a_runner_killed_during_the_build_is_noticed_and_its_deployment_fails(
    ctx, runners, gitlab, alice, base_image, tmp_path
):
    repo = create_local_repo(tmp_path / "slow", {"main": notebook_repo_files(base_image, "RUN sleep 60\n")})
    gitlab.add_project("demo/slow-build", members={"alice": MAINTAINER})
    gitlab.push("demo/slow-build", repo)
    first, second = runners(2)
    request = service.request_deployment(ctx, "demo/slow-build", "main", alice.token)
    wait_until(lambda: ctx.deployments.status(request.id) is Phase.BUILDING, 60, "the build")
    victim = next(r for r in (first, second) if ctx.deployments.record(request.id)["runner"] == r.name)
    survivor = second if victim is first else first

    os.killpg(victim.proc.pid, signal.SIGKILL)
    events = run_to_end(ctx, request.id, timeout=60)  # heartbeat expiry (30 s) + one check

    assert events[-1]["phase"] == "failed"
    # its name (and host) are not the user's
    assert events[-1]["message"] == "The runner preparing this notebook was lost: retry.\n"
    # the reaper forgets the lost runner after its run's end is written (a reaper that dies in
    # between leaves the runner declared, so another one finishes the work): wait for that step
    wait_until(lambda: victim.name not in ctx.redis.smembers(schema.RUNNERS), 10, "the lost runner to be forgotten")
    assert not ctx.runners.held(victim.name)
    assert survivor.name in ctx.runners.alive()
    image = ctx.deployments.record(request.id)["image"]
    wait_until(lambda: not _processes_naming(image), 10, "the lost runner's build to end with it")


def _processes_naming(text: str) -> list[int]:
    """Ids of the processes whose command line holds ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:  # it ended meanwhile
            pass
    return found


def _kill(runner) -> None:
    os.killpg(runner.proc.pid, signal.SIGKILL)
    runner.proc.wait()


def _containers_of(docker_engine, runner) -> list:
    return launcher.find_notebooks(docker_engine, {"booklab.runner": runner.name})


def test_a_restarted_runner_adopts_the_notebook_it_served(ctx, runners, docker_engine, alice, project):
    (runner,) = runners(1)
    first = service.request_deployment(ctx, project, "main", alice.token)
    ready = run_to_end(ctx, first.id)[-1]
    _kill(runner)

    (runner,) = runners(names=[runner.name])
    assert ctx.deployments.status(first.id) is Phase.READY
    assert launcher.api_status(ready["url"], ready["token"]) is not None
    assert [c.id for c in _containers_of(docker_engine, runner)] == [ctx.deployments.record(first.id)["container"]]
    second = service.request_deployment(ctx, project, BRANCH_WITH_SLASH, alice.token)
    time.sleep(3)  # a runner that did not adopt would have taken it within a second
    assert ctx.deployments.status(second.id) is Phase.TODO

    service.stop(ctx, first.id)
    assert run_to_end(ctx, second.id)[-1]["phase"] == "ready"
    assert ctx.deployments.status(first.id) is Phase.STOPPED


def test_a_restarted_runner_removes_a_notebook_that_no_longer_answers(ctx, runners, docker_engine, alice, project):
    (runner,) = runners(1)
    first = service.request_deployment(ctx, project, "main", alice.token)
    run_to_end(ctx, first.id)
    _kill(runner)
    docker_engine.containers.get(ctx.deployments.record(first.id)["container"]).kill()

    (runner,) = runners(names=[runner.name])
    wait_until(lambda: ctx.deployments.status(first.id) is Phase.STOPPED, 10, "the notebook to end")
    assert events_of(ctx, first.id)[-1].data["message"] == (
        "The runner serving this notebook restarted; launch it again.\n"
    )
    assert _containers_of(docker_engine, runner) == []
    second = service.request_deployment(ctx, project, BRANCH_WITH_SLASH, alice.token)
    assert run_to_end(ctx, second.id)[-1]["phase"] == "ready"


def test_a_runner_restarted_during_a_build_fails_that_deployment_at_once(
    ctx, runners, gitlab, alice, base_image, tmp_path
):
    repo = create_local_repo(tmp_path / "slow", {"main": notebook_repo_files(base_image, "RUN sleep 60\n")})
    gitlab.add_project("demo/slow-build", members={"alice": MAINTAINER})
    gitlab.push("demo/slow-build", repo)
    (runner,) = runners(1)
    request = service.request_deployment(ctx, "demo/slow-build", "main", alice.token)
    wait_until(lambda: ctx.deployments.status(request.id) is Phase.BUILDING, 60, "the build")
    _kill(runner)

    runners(names=[runner.name])
    events = run_to_end(ctx, request.id, timeout=10)  # long before its heartbeat would expire
    assert events[-1]["phase"] == "failed"
    assert events[-1]["message"] == "The runner preparing this notebook restarted: retry.\n"
