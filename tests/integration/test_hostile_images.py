"""Hostile images, deployed on a real runner: labels that would make Traefik route the web
tier's host to the notebook (set by the repository's Dockerfile or inherited from its
``FROM``) and an image that runs as root are refused before a container exists; the
notebook that does start is hardened (no capabilities, no new privileges, a pids limit,
not root)."""

from __future__ import annotations

import io
import secrets
import threading
import time

import pytest
import requests

from booklab import service
from tests.fixtures.gitlab import create_local_repo
from tests.fixtures.pipeline import IMAGE_PREFIX, MAINTAINER, messages, phases, run_to_end
from tests.fixtures.services import wait_until

#: what a Dockerfile adds to take the web tier's host (booklab.localhost) through Traefik
HIJACK = (
    'LABEL traefik.enable=true traefik.http.routers.hijack.rule="Host(`booklab.localhost`)" '
    "traefik.http.routers.hijack.priority=100000 traefik.http.services.hijack.loadbalancer.server.port=8888\n"
)


def deploy(ctx, gitlab, alice, tmp_path, path: str, dockerfile: str) -> tuple[str, list[dict]]:
    """Deploy a repository holding only ``dockerfile``; its id and its events, as they came."""
    repo = create_local_repo(tmp_path / path.replace("/", "-"), {"main": {"Dockerfile": dockerfile}})
    gitlab.add_project(path, members={"alice": MAINTAINER})
    gitlab.push(path, repo)
    deployment_id = service.request_deployment(ctx, path, "main", alice.token).id
    return deployment_id, run_to_end(ctx, deployment_id)


def containers_created(docker_engine, runner, deployment_id: str, since: float) -> list[dict]:
    """The containers ``runner`` created for ``deployment_id`` since ``since``, removed or not."""
    return list(
        docker_engine.events(
            since=int(since),
            until=int(time.time()) + 1,
            decode=True,
            filters={
                "type": "container",
                "event": "create",
                "label": [f"booklab.deployment={deployment_id}", f"booklab.runner={runner.name}"],
            },
        )
    )


def routers(traefik) -> list[str]:
    return [router["name"] for router in requests.get(f"{traefik.api_url}/api/http/routers", timeout=5).json()]


@pytest.mark.parametrize("publisher", ["docker", "redis"])
def test_traefik_labels_of_a_repository_are_refused(
    ctx, runners, traefik, gitlab, alice, base_image, tmp_path, docker_engine, publisher
):
    (runner,) = runners(1, **traefik.runner_env(publisher))
    since = time.time()
    deployment_id, events = deploy(
        ctx, gitlab, alice, tmp_path, f"hostile/labels-{publisher}", f"FROM {base_image}\n{HIJACK}"
    )
    assert phases(events)[-1] == "failed", messages(events)
    message = events[-1]["message"]
    assert "traefik.http.routers.hijack.rule" in message and "LABEL" in message
    assert "booklab.localhost" not in message  # keys are named, not values
    assert containers_created(docker_engine, runner, deployment_id, since) == []
    assert not [name for name in routers(traefik) if "hijack" in name]
    wait_until(lambda: not ctx.runners.held(runner.name), 10, "the runner to be free")


def test_traefik_labels_give_no_route_even_while_the_image_builds(
    ctx, runners, traefik, gitlab, alice, base_image, tmp_path
):
    """The build's own containers carry the Dockerfile's labels, and a build step may serve
    on Jupyter's port for as long as the build runs: Traefik must not route to them."""
    runners(1, **traefik.runner_env("docker"))
    # a step of its own: from Docker's build cache, it would serve nothing
    serving = f"RUN (echo {secrets.token_hex(8)}; timeout 8 python3 -u -m http.server 8888 || true)\n"
    seen: list[str] = []
    done = threading.Event()

    def watch() -> None:  # what a visitor of the web tier's host would get while the build runs
        while not done.is_set():
            seen.extend(name for name in routers(traefik) if "hijack" in name)
            answer = requests.get(f"{traefik.entrypoint_url}/", headers={"Host": "booklab.localhost"}, timeout=5)
            if answer.status_code != 404:
                seen.append(f"{answer.status_code} {answer.text[:80]}")
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        _, events = deploy(
            ctx, gitlab, alice, tmp_path, "hostile/labels-building", f"FROM {base_image}\n{HIJACK}{serving}"
        )
    finally:
        done.set()
        watcher.join()
    assert "Serving HTTP on" in messages(events)  # the build did serve, for 8 seconds
    assert phases(events)[-1] == "failed"
    assert seen == []


@pytest.fixture
def labelled_parent(docker_engine, base_image, test_images) -> str:
    """A local image that carries a Traefik label (in capitals) for its children to inherit."""
    tag = f"{IMAGE_PREFIX}/labelled-parent:latest"
    dockerfile = f'FROM {base_image}\nLABEL Traefik.HTTP.Routers.inherited.rule="HostRegexp(`.+`)"\n'
    docker_engine.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    return tag


def test_a_traefik_label_inherited_from_the_parent_image_is_refused(
    ctx, runners, gitlab, alice, tmp_path, labelled_parent
):
    runners(1)
    _, events = deploy(ctx, gitlab, alice, tmp_path, "hostile/inherited", f"FROM {labelled_parent}\n")
    assert phases(events)[-1] == "failed", messages(events)
    assert "Traefik.HTTP.Routers.inherited.rule" in events[-1]["message"]


def test_booklab_own_container_labels_on_an_image_are_refused(ctx, runners, gitlab, alice, base_image, tmp_path):
    runners(1)
    _, events = deploy(
        ctx, gitlab, alice, tmp_path, "hostile/own-labels", f"FROM {base_image}\nLABEL booklab.runner=someone-else\n"
    )
    assert phases(events)[-1] == "failed", messages(events)
    assert "booklab.runner" in events[-1]["message"]


def test_the_notebook_container_is_hardened(ctx, runners, project, alice, docker_engine):
    runners(1)
    request = service.request_deployment(ctx, project, "main", alice.token)
    events = run_to_end(ctx, request.id)
    assert phases(events)[-1] == "ready", messages(events)
    container = docker_engine.containers.get(ctx.deployments.record(request.id)["container"])

    host = container.attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["PidsLimit"] == ctx.config.notebook_pids_limit
    assert not host["Privileged"]
    exit_code, output = container.exec_run(["cat", "/proc/1/status"])  # Jupyter's own process
    status = dict(line.split(":\t", 1) for line in output.decode().splitlines() if ":\t" in line)
    assert exit_code == 0
    assert status["CapEff"].strip() == status["CapPrm"].strip() == "0" * 16
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Uid"].split()[0] != "0"
