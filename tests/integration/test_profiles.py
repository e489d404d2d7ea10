"""Machine profiles reach the notebook container: the profile its user picked, else the one
its repository's ``.booklab.yml`` asks for when the user's groups allow it, else the default,
each as Docker's memory and CPU limits, and said in the log."""

from __future__ import annotations

import json

import pytest

from booklab import service
from gitlab_standin.store import GUEST
from tests.fixtures.gitlab import create_local_repo
from tests.fixtures.pipeline import MAINTAINER, messages, notebook_repo_files, phases, run_to_end

PROJECT = "demo/profiles"
PROFILES = {
    "small": {"memory": "512m", "cpus": 0.5},
    "big": {"memory": "1g", "cpus": 1.5, "groups": "physics/gpu"},
}


@pytest.fixture
def booklab_env(booklab_env):
    return {**booklab_env, "BOOKLAB_PROFILES_LIST": json.dumps(PROFILES), "BOOKLAB_PROFILES_DEFAULT": "small"}


def limits(ctx, docker_engine, deployment: str) -> tuple[int, int]:
    """The container's memory (bytes) and NanoCpus, as Docker enforces them."""
    host = docker_engine.containers.get(ctx.deployments.record(deployment)["container"]).attrs["HostConfig"]
    return host["Memory"], host["NanoCpus"]


def test_the_picked_or_the_repositorys_allowed_or_the_default_profile_limits_the_container(
    ctx, runners, gitlab, alice, base_image, tmp_path, docker_engine
):
    repo = create_local_repo(
        tmp_path / "profiles", {"main": {**notebook_repo_files(base_image), ".booklab.yml": "profile: big\n"}}
    )
    bob = gitlab.add_user("bob")
    gitlab.add_project(PROJECT, members={"alice": MAINTAINER, "bob": MAINTAINER})
    gitlab.push(PROJECT, repo)
    gitlab.add_group("physics")
    gitlab.add_group("physics/gpu", {"alice": GUEST})
    runners(2)
    mine, theirs = f"{PROJECT}:main:alice", f"{PROJECT}:main:bob"

    asked = run_to_end(ctx, service.request_deployment(ctx, PROJECT, "main", alice.token).id)
    assert phases(asked)[-1] == "ready", messages(asked)
    assert "Profile big: 1 GiB, 1.5 CPUs" in messages(asked)
    assert limits(ctx, docker_engine, mine) == (1024**3, 1_500_000_000)
    assert ctx.deployments.record(mine)["profile"] == "big"

    refused = run_to_end(ctx, service.request_deployment(ctx, PROJECT, "main", bob.token).id)  # the cached image
    assert phases(refused)[-1] == "ready", messages(refused)
    assert (
        "The repository asks for the profile big, which is for the members of physics/gpu: using the profile small."
        in messages(refused)
    )
    assert "Profile small: 512 MiB, 0.5 CPUs" in messages(refused)
    assert limits(ctx, docker_engine, theirs) == (512 * 1024**2, 500_000_000)

    service.stop(ctx, mine)  # the new run waits for its end
    picked = run_to_end(ctx, service.request_deployment(ctx, PROJECT, "main", alice.token, profile="small").run)
    assert phases(picked)[-1] == "ready", messages(picked)
    assert limits(ctx, docker_engine, mine) == (512 * 1024**2, 500_000_000)
