"""launch starts a repo2docker image as a token-protected notebook on the real Docker Engine;
wait_ready, last_activity, find_notebooks and stop watch and end it."""

import json
import re
import uuid
from datetime import datetime

import docker
import pytest
import requests

from booklab.errors import LaunchError
from booklab.pipeline.builder import build_image
from booklab.pipeline.launcher import find_notebooks, last_activity, launch, stop, wait_ready
from booklab.pipeline.notebook_container import Limits
from tests.fixtures.pipeline import IMAGE_PREFIX

CPUS = 0.5
LIMITS = Limits(memory="256m", cpus=CPUS, pids=128)


def build(docker_engine, path, base_image, *steps):
    """Build a Dockerfile FROM the base image with repo2docker; yields its name, then removes it."""
    path.mkdir()
    lines = [f"FROM {base_image}", *steps, "USER jovyan", "WORKDIR /home/jovyan"]
    (path / "Dockerfile").write_text("\n".join(lines) + "\n")
    image = f"{IMAGE_PREFIX}/launcher-{uuid.uuid4().hex[:12]}:latest"
    for _ in build_image(path, image, timeout=300):
        pass
    yield image
    docker_engine.images.remove(image, force=True)


@pytest.fixture(scope="module")
def notebook_image(docker_engine, base_image, tmp_path_factory):
    yield from build(docker_engine, tmp_path_factory.mktemp("nb") / "repo", base_image)


@pytest.fixture(scope="module")
def broken_image(docker_engine, base_image, tmp_path_factory):
    """An image that prints its token and exits instead of serving a notebook."""
    entrypoint = json.dumps(["sh", "-c", "echo broken-image token=$JUPYTER_TOKEN >&2; exit 3"])
    yield from build(docker_engine, tmp_path_factory.mktemp("broken") / "repo", base_image, f"ENTRYPOINT {entrypoint}")


@pytest.fixture(scope="module")
def silent_image(docker_engine, base_image, tmp_path_factory):
    """An image that keeps running but never serves a notebook."""
    entrypoint = json.dumps(["sh", "-c", "echo silent-image >&2; exec sleep 600"])
    yield from build(docker_engine, tmp_path_factory.mktemp("silent") / "repo", base_image, f"ENTRYPOINT {entrypoint}")


@pytest.fixture
def start(docker_engine):
    """launch() with the test's labels; every container started is removed afterwards."""
    labels = {"booklab.test": uuid.uuid4().hex}
    started = []

    def start(image, **kwargs):
        kwargs = {
            "name": f"booklab-test-{uuid.uuid4().hex[:12]}",
            "deployment_id": "test/notebooks:main:alice",
            "labels": labels,
            "limits": LIMITS,
        } | kwargs
        notebook = launch(docker_engine, image, **kwargs)
        started.append(notebook.container_id)
        return notebook

    start.labels = labels
    yield start
    for container_id in started:
        try:
            docker_engine.containers.get(container_id).remove(force=True)
        except docker.errors.NotFound:
            pass


def test_notebook_answers_with_its_token_only(start, notebook_image):
    notebook = start(notebook_image)
    wait_ready(notebook, timeout=60)

    assert notebook.url.startswith("http://127.0.0.1:")
    assert notebook.image == notebook_image
    with_token = requests.get(
        f"{notebook.url}api/status", timeout=5, headers={"Authorization": f"token {notebook.token}"}
    )
    assert with_token.status_code == 200
    without = requests.get(f"{notebook.url}api/status", timeout=5)
    assert without.status_code in {401, 403}
    assert isinstance(last_activity(notebook), datetime)
    assert notebook.token not in repr(notebook)


def test_token_is_fresh_and_not_on_the_command_line(start, notebook_image, docker_engine):
    first, second = start(notebook_image), start(notebook_image)
    assert first.token != second.token and len(first.token) == 64

    attrs = docker_engine.containers.get(first.container_id).attrs
    command_line = json.dumps([attrs["Path"], attrs["Args"], attrs["Config"]["Cmd"], attrs["Config"]["Entrypoint"]])
    assert first.token not in command_line
    assert "notebook" in command_line


def test_limits_labels_and_network_are_applied(start, notebook_image, docker_engine):
    network = docker_engine.networks.create(f"booklab-test-{uuid.uuid4().hex[:12]}")
    try:
        notebook = start(notebook_image, network=network.name)
        wait_ready(notebook, timeout=60)
        attrs = docker_engine.containers.get(notebook.container_id).attrs
        assert attrs["HostConfig"]["Memory"] == 256 * 1024 * 1024
        assert attrs["HostConfig"]["NanoCpus"] == int(CPUS * 1e9)
        assert attrs["Config"]["Labels"]["booklab.test"] == start.labels["booklab.test"]
        assert list(attrs["NetworkSettings"]["Networks"]) == [network.name]
        assert attrs["HostConfig"]["PortBindings"]["8888/tcp"][0]["HostIp"] == "127.0.0.1"
        stop(docker_engine, notebook.container_id)
    finally:
        network.remove()


def test_stop_removes_and_is_idempotent(start, notebook_image, docker_engine):
    notebook = start(notebook_image)
    wait_ready(notebook, timeout=60)  # Jupyter handles SIGTERM once it is up
    assert [c.id for c in find_notebooks(docker_engine, start.labels)] == [notebook.container_id]

    stop(docker_engine, notebook.container_id)
    stop(docker_engine, notebook.container_id)

    with pytest.raises(docker.errors.NotFound):
        docker_engine.containers.get(notebook.container_id)
    assert find_notebooks(docker_engine, start.labels) == []
    assert last_activity(notebook) is None


def test_exited_notebook_fails_with_its_logs_but_not_its_token(start, broken_image):
    with pytest.raises(LaunchError, match="exit code 3") as failure:
        # it may exit before launch() returns or while wait_ready() polls
        wait_ready(start(broken_image), timeout=60)
    assert "broken-image token=<token>" in str(failure.value)
    assert not re.search(r"[0-9a-f]{64}", str(failure.value))  # no token, whichever step failed


def test_silent_notebook_fails_after_the_timeout(start, silent_image):
    notebook = start(silent_image)
    with pytest.raises(LaunchError, match="(?s)did not answer within 2 s.*silent-image"):
        wait_ready(notebook, timeout=2)


def test_a_name_held_by_another_deployment_is_refused_and_its_container_kept(start, notebook_image, docker_engine):
    name = f"booklab-test-{uuid.uuid4().hex[:12]}"
    victim = docker_engine.containers.create(
        notebook_image, ["sleep", "600"], name=name, labels={"booklab.deployment": "victim/notebooks:main:victim"}
    )
    try:
        with pytest.raises(LaunchError, match="taken by another deployment"):
            start(notebook_image, name=name, deployment_id="attacker/notebooks:main:attacker")
        victim.reload()  # still there
    finally:
        victim.remove(force=True)


def test_a_container_an_earlier_try_of_the_same_deployment_left_is_replaced(start, notebook_image, docker_engine):
    name = f"booklab-test-{uuid.uuid4().hex[:12]}"
    leftover = docker_engine.containers.create(
        notebook_image, ["sleep", "600"], name=name, labels={"booklab.deployment": "same/notebooks:main:alice"}
    )
    notebook = start(notebook_image, name=name, deployment_id="same/notebooks:main:alice")
    assert notebook.container_id != leftover.id
    with pytest.raises(docker.errors.NotFound):
        leftover.reload()
