"""The runner image (workers/): built without a registry, a runner in it deploys a notebook."""

from __future__ import annotations

import os

import requests

from booklab import service
from booklab.state import schema
from tests.fixtures.gitlab import create_local_repo
from tests.fixtures.pipeline import events_of, notebook_repo_files
from tests.fixtures.services import wait_until


def test_a_runner_in_its_image_deploys_a_notebook(
    ctx, booklab_env, docker_engine, runner_image, gitlab, base_image, tmp_path
):
    alice = gitlab.add_user("alice")
    gitlab.add_project("demo/contained", members={"alice": 40})
    gitlab.push("demo/contained", create_local_repo(tmp_path / "repo", {"main": notebook_repo_files(base_image)}))
    name = f"contained-runner@test-{os.getpid()}"
    env = {k: v for k, v in booklab_env.items() if k != "TMPDIR"}  # the image has its own
    runner = docker_engine.containers.run(
        runner_image,
        ["booklab", "runner", "--name", name],
        detach=True,
        network_mode="host",
        environment=env,
        volumes={
            "/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"},
            # as docker-compose.yml mounts it: the disk whose share images/max_disk names
            docker_engine.info()["DockerRootDir"]: {"bind": docker_engine.info()["DockerRootDir"], "mode": "ro"},
        },
    )
    try:
        wait_until(lambda: ctx.redis.exists(schema.heartbeat(name)), 60, "the runner in its container")
        request = service.request_deployment(ctx, "demo/contained", "main", alice.token)
        events = [event for _, event in service.follow(ctx, request.run, timeout=240)]
        assert events[-1]["phase"] == "ready", "".join(e["message"] for e in events)
        assert ctx.deployments.record(request.id)["runner"] == name
        ready = events[-1]
        status = requests.get(
            ready["url"] + "api/status", timeout=10, headers={"Authorization": f"token {ready['token']}"}
        )
        assert status.status_code == 200
    finally:
        runner.stop(timeout=30)
        logs = runner.logs().decode(errors="replace")
        runner.remove(force=True)
        for notebook in docker_engine.containers.list(all=True, filters={"label": f"booklab.runner={name}"}):
            notebook.remove(force=True)
    assert "The runner was shut down" in events_of(ctx, request.id)[-1].data["message"], logs


def test_a_runner_that_cannot_see_the_docker_data_disk_refuses_a_share_of_it_and_says_what_to_do(
    booklab_env, docker_engine, runner_image
):
    env = {k: v for k, v in booklab_env.items() if k != "TMPDIR"}
    runner = docker_engine.containers.run(
        runner_image,
        ["booklab", "runner", "--name", f"blind-runner@test-{os.getpid()}"],
        detach=True,
        network_mode="host",
        environment={**env, "BOOKLAB_IMAGES_MAX_DISK": "50%"},
        volumes={"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"}},
    )
    try:
        exit_code = runner.wait(timeout=60)["StatusCode"]
        logs = runner.logs().decode(errors="replace")
    finally:
        runner.remove(force=True)
    assert exit_code != 0, logs
    assert "Setting images/max_disk is 50%, a share of the Docker data disk, which this runner cannot see" in logs
