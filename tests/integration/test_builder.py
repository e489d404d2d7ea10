"""build_image builds a repository with repo2docker through the real Docker Engine."""

import time
import uuid

import docker
import pytest

from booklab.errors import BuildError
from booklab.pipeline.builder import build_image, image_exists
from tests.fixtures.pipeline import IMAGE_PREFIX
from tests.fixtures.services import wait_until

NOTEBOOK = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'


@pytest.fixture
def image(docker_engine):
    """A fresh image name; the image is removed afterwards."""
    name = f"{IMAGE_PREFIX}/builder-{uuid.uuid4().hex[:12]}:latest"
    yield name
    try:
        docker_engine.images.remove(name, force=True)
    except docker.errors.ImageNotFound:
        pass


def make_repo(path, base_image, *steps):
    """A repository holding a notebook and a Dockerfile FROM the base image."""
    lines = [f"FROM {base_image}", *steps, "USER jovyan", "WORKDIR /home/jovyan"]
    (path / "Dockerfile").write_text("\n".join(lines) + "\n")
    (path / "hello.ipynb").write_text(NOTEBOOK)
    return path


#: label values a Dockerfile would read otherwise: quotes, a variable, a backslash, a command
ODD_VALUE = """{"memory": "2g\\", "x": '$HOME ${PATH} `id` $(id) \\$'}"""


def test_builds_an_image_with_repo2docker_labels_and_streams_lines(tmp_path, docker_engine, base_image, image):
    marker = uuid.uuid4().hex  # never in the build cache
    # the repository's own label of a name Booklab sets: Booklab's value wins
    repo = make_repo(tmp_path, base_image, "LABEL booklab.test=someone-else", f"RUN echo marker-{marker} && sleep 3")
    arrivals = {}
    started = time.monotonic()
    assert not image_exists(docker_engine, image)
    given = {"booklab.test": "builder", "booklab.odd": ODD_VALUE, "booklab.empty": ""}

    for line in build_image(repo, image, timeout=120, labels=given):
        arrivals.setdefault(line, time.monotonic() - started)
    finished = time.monotonic() - started

    assert image_exists(docker_engine, image)
    labels = docker_engine.images.get(image).labels
    assert "repo2docker.version" in labels
    assert {key: labels[key] for key in given} == given  # each value exactly as given, nothing expanded
    # repo2docker's labels and Booklab's in one step of the build, not one step each
    assert sum(" : LABEL " in line for line in arrivals) == 2  # the repository's, then all of those
    assert "Using DockerBuildPack builder" in arrivals  # repo2docker's own message
    # the RUN line arrived while the build was still going (3 s sleep after it)
    assert finished - arrivals[f"marker-{marker}"] > 2


# ONBUILD: the repository's commands that run at the FROM of the step which gives the image its labels
@pytest.mark.parametrize("instruction", ["RUN", "ONBUILD RUN"])
def test_build_memory_limit_applies_to_build_containers(tmp_path, base_image, image, instruction):
    repo = make_repo(
        tmp_path,
        base_image,
        f"{instruction} echo {uuid.uuid4().hex} && "
        "cat /sys/fs/cgroup/memory.max 2>/dev/null"
        " || cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
    )
    lines = list(build_image(repo, image, timeout=120, memory_limit="512m"))
    assert str(512 * 1024 * 1024) in lines


def test_failing_build_raises_with_its_last_lines(tmp_path, base_image, image):
    repo = make_repo(tmp_path, base_image, "RUN echo about-to-fail && false")
    with pytest.raises(BuildError) as failure:
        list(build_image(repo, image, timeout=120))
    message = str(failure.value)
    assert "fix the repository's Dockerfile" in message
    assert "about-to-fail" in message
    assert "returned a non-zero code: 1" in message


def test_slow_build_is_stopped_at_the_timeout(tmp_path, docker_engine, base_image, image):
    marker = uuid.uuid4().hex
    repo = make_repo(tmp_path, base_image, f"RUN echo slow-{marker} && sleep 120")
    started = time.monotonic()
    with pytest.raises(BuildError, match="took longer than 5 s") as failure:
        list(build_image(repo, image, timeout=5))
    assert time.monotonic() - started < 15
    assert "build/timeout" in str(failure.value)

    def build_container_gone():
        # one call: containers.list() inspects each container after listing, and the one this
        # waits for may be removed in between (NotFound)
        return not [c for c in docker_engine.api.containers(all=True) if marker in c["Command"]]

    wait_until(build_container_gone, 30, "the build container to be removed")
    assert not image_exists(docker_engine, image)


def test_a_path_that_looks_like_an_option_is_still_a_path(tmp_path, monkeypatch, base_image, image):
    (tmp_path / "--help").mkdir()
    repo = make_repo(tmp_path / "--help", base_image)
    monkeypatch.chdir(tmp_path)
    assert f"Using local repo {repo}." in list(build_image("--help", image, timeout=120))
