"""A repository's ``.booklab.yml`` reaches its notebook container, within the operator's
maxima, for a new build and for a cached image alike; an invalid file fails the deployment
naming the key and the allowed range."""

from __future__ import annotations

from booklab import service
from tests.fixtures.gitlab import create_local_repo
from tests.fixtures.pipeline import MAINTAINER, messages, notebook_repo_files, phases, run_to_end

PROJECT = "demo/settings"
SETTINGS = "memory: 64g\ncpus: 0.5\nidle_timeout: 10m\nurlpath: tree/hello.ipynb\n"


def test_settings_reach_the_container_capped_and_survive_a_cached_image(
    ctx, runners, gitlab, alice, base_image, tmp_path, docker_engine
):
    repo = create_local_repo(
        tmp_path / "settings",
        {
            "main": {**notebook_repo_files(base_image), ".booklab.yml": SETTINGS},
            "invalid": {".booklab.yml": "cpus: lots\n"},
        },
    )
    bob = gitlab.add_user("bob")
    gitlab.add_project(PROJECT, members={"alice": MAINTAINER, "bob": MAINTAINER})
    gitlab.push(PROJECT, repo)
    runners(2, BOOKLAB_NOTEBOOK_MAX_MEMORY="1g")

    built = run_to_end(ctx, service.request_deployment(ctx, PROJECT, "main", alice.token).id)
    cached = run_to_end(ctx, service.request_deployment(ctx, PROJECT, "main", bob.token).id)

    for events in (built, cached):
        assert phases(events)[-1] == "ready", messages(events)
        assert "Memory 64g from .booklab.yml is above the maximum 1g: using 1g." in messages(events)
        assert events[-1]["urlpath"] == "tree/hello.ipynb"
    assert "Found built image" in messages(cached)
    for user in ("alice", "bob"):
        record = ctx.deployments.record(f"{PROJECT}:main:{user}")
        host = docker_engine.containers.get(record["container"]).attrs["HostConfig"]
        assert host["Memory"] == 1024**3 and host["NanoCpus"] == 500_000_000
        assert ctx.runners.held(record["runner"])["idle_timeout"] == "600"

    service.stop(ctx, f"{PROJECT}:main:bob")  # frees a runner for the next one
    failed = run_to_end(ctx, service.request_deployment(ctx, PROJECT, "invalid", alice.token).id)
    assert phases(failed)[-1] == "failed"
    assert ".booklab.yml: cpus must be a number between 0.1 and 4" in failed[-1]["message"], failed[-1]["message"]
    assert "building" not in phases(failed)
