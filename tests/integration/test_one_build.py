"""Launches of one commit at once build its image once: the launch that claims the build builds it, the
others wait for it and launch from it; a launch waiting for a runner that is killed mid-build builds the
image itself. The build waits at a gate the test opens (a file it creates in the build's container), so
that the second launch surely finds the first one building."""

from __future__ import annotations

import os
import secrets
import signal

import pytest

from booklab import service
from booklab.phases import Phase
from booklab.state import schema
from tests.fixtures.gitlab import create_local_repo
from tests.fixtures.pipeline import MAINTAINER, events_of, messages, notebook_repo_files, run_to_end
from tests.fixtures.services import wait_until

WAITING = "Another launch is building this commit's image (on this host): waiting for it..."
BUILDING = "Building image"


@pytest.fixture
def gated_project(gitlab, base_image, tmp_path):
    """A project alice and bob may launch, never built before, whose build waits at a gate: (path, users,
    the gate's name)."""
    gate = f"gate-{secrets.token_hex(6)}"
    users = [gitlab.add_user(name) for name in ("alice", "bob")]
    path = f"lab/gated-{secrets.token_hex(3)}"
    extra = f"RUN echo waiting at {gate}; while [ ! -e /tmp/{gate} ]; do sleep 0.2; done\n"
    gitlab.add_project(path, members={user.username: MAINTAINER for user in users})
    gitlab.push(path, create_local_repo(tmp_path / "gated", {"main": notebook_repo_files(base_image, extra)}))
    return path, users, gate


def gated_builds(docker_engine, gate: str) -> list:
    """The build containers waiting at ``gate`` (listed in one call: ``containers.list()`` inspects each container
    after listing, and another test session's may be gone by then)."""
    return [c for c in docker_engine.api.containers() if gate in c["Command"]]


def open_gate(docker_engine, gate: str) -> None:
    """Let the build that waits at ``gate`` go on, once there is one."""
    (build,) = wait_until(lambda: gated_builds(docker_engine, gate), 60, "a build at the gate")
    assert docker_engine.containers.get(build["Id"]).exec_run(["touch", f"/tmp/{gate}"]).exit_code == 0


def log_of(ctx, request) -> str:
    return "".join(event.data["message"] for event in events_of(ctx, request.id))


def test_two_launches_of_one_commit_at_once_build_its_image_once(ctx, runners, docker_engine, gated_project):
    path, users, gate = gated_project
    runners(2)
    launches = [service.request_deployment(ctx, path, "main", user.token) for user in users]
    waiter = wait_until(
        lambda: next((launch for launch in launches if WAITING in log_of(ctx, launch)), None), 60, "a launch to wait"
    )
    open_gate(docker_engine, gate)

    told = {launch.id: messages(run_to_end(ctx, launch.id)) for launch in launches}
    assert [ctx.deployments.status(launch.id) for launch in launches] == [Phase.READY, Phase.READY], told
    assert sum(log.count(BUILDING) for log in told.values()) == 1, told
    assert BUILDING not in told[waiter.id] and "Found built image, launching..." in told[waiter.id]
    assert len({ctx.deployments.record(launch.id)["runner"] for launch in launches}) == 2
    image = ctx.deployments.record(waiter.id)["image"]
    assert not ctx.redis.exists(schema.build_claim(image))  # let go once built


def test_a_launch_waiting_for_a_runner_killed_mid_build_builds_the_image_itself(
    ctx, runners, docker_engine, gated_project
):
    path, (alice, bob), gate = gated_project
    (holder,) = runners(1)
    first = service.request_deployment(ctx, path, "main", alice.token)
    wait_until(lambda: gated_builds(docker_engine, gate), 60, "the first build at the gate")
    runners(1)
    second = service.request_deployment(ctx, path, "main", bob.token)
    wait_until(lambda: WAITING in log_of(ctx, second), 60, "the second launch to wait")

    os.killpg(holder.proc.pid, signal.SIGKILL)
    holder.proc.wait()
    wait_until(lambda: not gated_builds(docker_engine, gate), 30, "the killed runner's build to end")
    ctx.redis.delete(schema.heartbeat(holder.name))  # expired, as it would be 30 s later
    open_gate(docker_engine, gate)  # the second launch's own build

    told = messages(run_to_end(ctx, second.id))
    assert ctx.deployments.status(second.id) is Phase.READY, told
    assert ": building it here." in told and told.count(BUILDING) == 1
    assert ctx.deployments.status(first.id) is Phase.FAILED
