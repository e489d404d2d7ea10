"""Runners on two Docker hosts that share nothing but a network (:mod:`tests.fixtures.hosts`): Redis, the
registry and Traefik on the first. A commit built on one host launches on the other by a pull; a notebook
on the second host answers through Traefik, and refuses everyone else, the other host's notebooks
included; notebooks reach none of the hosts' services; the second host's runner leaves and its notebook
ends with its route."""

from __future__ import annotations

import os
import secrets
import signal
from urllib.parse import urlsplit

import pytest
import requests

from booklab import service
from booklab.phases import Phase
from booklab.pipeline import image_sharing
from booklab.pipeline.routes.names import kv_pairs
from booklab.runner.worker import SHUT_DOWN
from tests.fixtures.gitlab import create_local_repo
from tests.fixtures.hosts import REDIS_PORT, Bed, DockerHost
from tests.fixtures.pipeline import MAINTAINER, events_of, messages, notebook_repo_files, run_to_end
from tests.fixtures.reach import connections_from
from tests.fixtures.services import wait_until

REFUSED = "ConnectionRefusedError"


@pytest.fixture
def shared_project(hosts: Bed, bed_ctx, base_image, tmp_path):
    """A project alice and bob may launch, never built before: (path, alice, bob)."""
    alice, bob = hosts.gitlab.add_user("alice"), hosts.gitlab.add_user("bob")
    path = f"lab/nb-{secrets.token_hex(3)}"
    files = {**notebook_repo_files(base_image), "unique.txt": secrets.token_hex(8)}
    hosts.gitlab.add_project(path, members={"alice": MAINTAINER, "bob": MAINTAINER})
    hosts.gitlab.push(path, create_local_repo(tmp_path / "repo", {"main": files}))
    return path, alice, bob


def through_traefik(hosts: Bed, ready: dict) -> int:
    """The status code of the notebook's /api/status asked through Traefik, as a browser outside asks it."""
    answer = requests.get(
        f"{hosts.traefik.entrypoint_url}/api/status",
        headers={"Host": urlsplit(ready["url"]).hostname, "Authorization": f"token {ready['token']}"},
        timeout=10,
    )
    return answer.status_code


def published_port(host: DockerHost, container_id: str) -> int:
    return int(host.client.containers.get(container_id).ports["8888/tcp"][0]["HostPort"])


def test_a_commit_built_on_one_host_launches_on_the_other_by_a_pull_and_only_traefik_reaches_it(
    hosts, bed_ctx, shared_project
):
    ctx, (path, alice, bob) = bed_ctx, shared_project
    runner_a = hosts.runner(hosts.a, "runner-1@booklab-a", ctx)
    first = service.request_deployment(ctx, path, "main", alice.token)
    events = run_to_end(ctx, first.run)
    assert events[-1]["phase"] == "ready", messages(events)
    assert "Building image" in messages(events)
    wait_until(lambda: "is shared through the registry" in runner_a.output(), 180, "the image to be pushed")

    # the front's runner serves alice: bob's launch goes to the other host, which pulls the image
    runner_b = hosts.runner(hosts.b, "runner-1@booklab-b", ctx)
    second = service.request_deployment(ctx, path, "main", bob.token)
    events = run_to_end(ctx, second.run)
    told = messages(events)
    assert events[-1]["phase"] == "ready", told
    assert image_sharing.PULLING in told and "Building image" not in told
    on_b = ctx.deployments.record(second.id)
    assert on_b["runner"] == runner_b.name and on_b["image"] == ctx.deployments.record(first.id)["image"]
    assert ctx.runners.hosts() == {runner_a.name: "booklab-a", runner_b.name: "booklab-b"}

    # host B's notebook: through Traefik at the front, and no one else
    assert through_traefik(hosts, events[-1]) == 200
    port = published_port(hosts.b, on_b["container"])
    assert hosts.a.namespace.connects(hosts.b.address, port) == "open"  # Traefik's host
    assert hosts.stranger.connects(hosts.b.address, port) == REFUSED
    assert hosts.outside.connects(hosts.b.address, port) == REFUSED
    # notebooks reach the world outside, and nothing of Booklab's on any host
    on_a = hosts.a.client.containers.get(ctx.deployments.record(first.id)["container"])
    services = [f"{hosts.a.address}:{REDIS_PORT}", hosts.registry.host, f"{hosts.a.address}:{hosts.traefik.port}"]
    outside = f"{hosts.outside.address}:{hosts.gitlab.ssh_port}"
    reached_from_a = connections_from(on_a, [f"{hosts.b.address}:{port}", *services, outside])
    assert reached_from_a == {**dict.fromkeys([f"{hosts.b.address}:{port}", *services], REFUSED), outside: "open"}
    reached_from_b = connections_from(hosts.b.client.containers.get(on_b["container"]), [*services, outside])
    assert reached_from_b == {**dict.fromkeys(services, REFUSED), outside: "open"}

    # host B's runner leaves: its notebook ends, and its route with it
    slug = ctx.slug(second.id)
    os.killpg(runner_b.proc.pid, signal.SIGTERM)
    runner_b.proc.wait(60)
    assert ctx.deployments.status(second.id) is Phase.STOPPED
    assert SHUT_DOWN in events_of(ctx, second.id)[-1].data["message"]
    assert not ctx.redis.exists(*kv_pairs(ctx.config, slug, ""))
    wait_until(lambda: through_traefik(hosts, events[-1]) == 404, 10, "Traefik to drop the route")
    assert hosts.b.client.containers.list(all=True, filters={"label": f"booklab.deployment={second.id}"}) == []
    assert ctx.deployments.status(first.id) is Phase.READY


def test_a_launch_whose_engine_dies_is_served_by_another_host(hosts, bed_ctx, shared_project):
    ctx, (path, alice, bob) = bed_ctx, shared_project
    runner_a = hosts.runner(hosts.a, "runner-1@booklab-a", ctx)
    first = service.request_deployment(ctx, path, "main", alice.token)
    assert run_to_end(ctx, first.run)[-1]["phase"] == "ready"
    wait_until(lambda: "is shared through the registry" in runner_a.output(), 180, "the image to be pushed")
    for image in hosts.b.client.images.list():  # host B holds no layer of it: its pull takes a while
        hosts.b.client.images.remove(image.id, force=True)

    runner_b = hosts.runner(hosts.b, "runner-1@booklab-b", ctx)
    second = service.request_deployment(ctx, path, "main", bob.token)
    told = lambda: messages([event.data for event in events_of(ctx, second.id)])  # noqa: E731
    wait_until(lambda: image_sharing.PULLING in told(), 60, "host B to pull the image")
    try:
        hosts.registry.proc.send_signal(signal.SIGSTOP)  # the pull hangs halfway...
        hosts.b.kill()  # ...when host B's engine dies
    finally:
        hosts.registry.proc.send_signal(signal.SIGCONT)
    try:
        back = "The notebook goes back to the queue, in its place, for a runner of another Docker Engine."
        wait_until(lambda: back in told(), 60, "host B's runner to give the launch back")
        assert "The Docker Engine did not answer" in told()
        assert ctx.deployments.status(second.id) is Phase.TODO and not ctx.runners.held(runner_b.name)

        # the front's runner serves alice; a second one takes bob's launch, with the image on its host
        runner_a2 = hosts.runner(hosts.a, "runner-2@booklab-a", ctx)
        events = run_to_end(ctx, second.run)
        assert events[-1]["phase"] == "ready", messages(events)
        assert ctx.deployments.record(second.id)["runner"] == runner_a2.name
        assert ctx.lifecycle.newest(second.id) == second.run  # the same run, its whole log kept
        assert "Found built image, launching..." in messages(events)
        assert through_traefik(hosts, events[-1]) == 200
        assert runner_b.proc.poll() is None and not ctx.runners.held(runner_b.name)  # takes nothing meanwhile
    finally:
        hosts.b.start()
