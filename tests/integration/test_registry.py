"""Images shared between runner hosts through a real registry (Debian's docker-registry), with real
runners, Docker and the GitLab stand-in: a commit built once is pushed alongside its launch, and a
host without the image pulls it instead of building it again; a registry that does not answer
means a build, never a failed launch; the registry's credentials never reach a log."""

from __future__ import annotations

import secrets

import pytest

from booklab import service
from booklab.phases import Phase
from booklab.pipeline import builder, image_sharing
from booklab.pipeline.launcher import api_status
from tests.fixtures.gitlab import create_local_repo
from tests.fixtures.pipeline import MAINTAINER, messages, notebook_repo_files, run_to_end
from tests.fixtures.services import ImageRegistry, free_port, wait_until

USER = "booklab-runner"


@pytest.fixture
def own_project(gitlab, alice, base_image, tmp_path):
    """A project of the test's own (its image was never built): its path."""
    path = f"shared/nb-{secrets.token_hex(4)}"
    files = {**notebook_repo_files(base_image), "unique.txt": secrets.token_hex(8)}
    gitlab.add_project(path, members={"alice": MAINTAINER})
    gitlab.push(path, create_local_repo(tmp_path / "own", {"main": files}))
    return path


@pytest.fixture
def auth_registry(tmp_path, docker_engine):
    """A registry of this test's own that asks for a login: (registry, password)."""
    password = secrets.token_urlsafe(18)
    directory = tmp_path / "registry"
    directory.mkdir()
    registry = ImageRegistry(directory, users={USER: password})
    registry.start()
    yield registry, password
    registry.stop()
    registry.remove_local_images(docker_engine)


def test_an_image_built_on_one_host_is_pushed_and_another_host_pulls_it_instead_of_building_it(
    ctx, runners, alice, own_project, auth_registry, docker_engine, tmp_path
):
    registry, password = auth_registry
    password_file = tmp_path / "registry-password"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    path = f"booklab-{secrets.token_hex(4)}"
    (runner,) = runners(
        1,
        BOOKLAB_IMAGES_REGISTRY=f"{registry.host}/{path}",
        BOOKLAB_BUILD_IMAGE_PREFIX="",
        BOOKLAB_IMAGES_REGISTRY_USERNAME=USER,
        BOOKLAB_IMAGES_REGISTRY_PASSWORD_FILE=str(password_file),
    )
    request = service.request_deployment(ctx, own_project, "main", alice.token)
    events = run_to_end(ctx, request.run)
    assert events[-1]["phase"] == "ready", messages(events)
    assert "Building image" in messages(events) and image_sharing.PULLING not in messages(events)
    record = ctx.deployments.record(request.id)
    image = record["image"]
    assert image.startswith(f"{registry.host}/{path}/") and image.endswith(f":{record['commit']}")
    repository = image.rsplit(":", 1)[0].removeprefix(f"{registry.host}/")
    # pushed alongside the launch, under the commit's own name; only with the login
    wait_until(lambda: record["commit"] in registry.tags(repository, auth=(USER, password)), 180, "the push")
    assert "is shared through the registry" in runner.output()
    with pytest.raises(Exception, match="401"):
        registry.tags(repository)

    # another host has no image: as here once the image is gone
    service.stop(ctx, request.id)
    wait_until(lambda: ctx.deployments.status(request.id) is Phase.STOPPED, 60, "the notebook to stop")
    docker_engine.images.remove(image)
    assert not builder.image_exists(docker_engine, image)
    again = service.request_deployment(ctx, own_project, "main", alice.token)
    events = run_to_end(ctx, again.run)
    told = messages(events)
    assert events[-1]["phase"] == "ready", told
    assert image_sharing.PULLING in told and "Pull complete" in told
    assert "Building image" not in told and "Found built image, launching..." in told
    assert builder.image_exists(docker_engine, image)
    assert api_status(events[-1]["url"], events[-1]["token"]) is not None
    # the pulled image is the registry's: nothing to push again
    assert image_sharing.SHARED not in told

    # the password went to the Docker Engine only
    full_logs = [ctx.events.full(run.id) or "" for run in (request.run, again.run)]
    assert all(full_logs)
    for text in (runner.output(), *full_logs):
        assert password not in text


def test_a_registry_that_does_not_answer_means_a_build_and_a_launch_as_on_one_host(
    ctx, runners, alice, own_project, docker_engine
):
    nothing_there = f"127.0.0.1:{free_port()}/booklab-{secrets.token_hex(4)}"
    (runner,) = runners(1, BOOKLAB_IMAGES_REGISTRY=nothing_there, BOOKLAB_BUILD_IMAGE_PREFIX="")
    request = service.request_deployment(ctx, own_project, "main", alice.token)
    events = run_to_end(ctx, request.run)
    told = messages(events)
    assert events[-1]["phase"] == "ready", told
    assert "The image registry did not answer: building the image here." in told and "Building image" in told
    assert api_status(events[-1]["url"], events[-1]["token"]) is not None
    image = ctx.deployments.record(request.id)["image"]
    try:
        wait_until(lambda: "was not shared through the registry" in runner.output(), 60, "the push to give up")
    finally:
        service.stop(ctx, request.id)
        wait_until(lambda: ctx.deployments.status(request.id) is Phase.STOPPED, 60, "the notebook to stop")
        docker_engine.images.remove(image)
