"""Runners on two Docker hosts that share nothing but a network (:mod:`tests.fixtures.hosts`): Redis, the
registry and Traefik on the first. A commit built on one host launches there when a runner of that host is
idle, else on the other by a pull; a notebook on the second host answers through Traefik, and refuses
everyone else, the other host's notebooks included; notebooks reach none of the hosts' services; the second
host's runner leaves and its notebook ends with its route; a launch whose engine dies halfway is served by
the other host; a site's JupyterHub on a host with those rules gets its servers' reports, and they reach
nothing more."""

from __future__ import annotations

import os
import secrets
import signal
from urllib.parse import urlsplit

import pytest
import requests

from booklab import service
from booklab.phases import Phase
from booklab.pipeline import image_sharing, notebook_network
from booklab.pipeline.routes.names import kv_pairs
from booklab.runner.worker import SHUT_DOWN
from booklab.state.vault import GITLAB_TOKEN
from tests.fixtures.gitlab import create_local_repo
from tests.fixtures.hosts import NOTEBOOK_NETWORK, REDIS_PORT, Bed, DockerHost
from tests.fixtures.hub import Site, running_hub
from tests.fixtures.pipeline import (
    MAINTAINER,
    events_of,
    messages,
    notebook_containers,
    notebook_repo_files,
    run_to_end,
)
from tests.fixtures.reach import connections_from, gateway
from tests.fixtures.services import wait_until

REFUSED = "ConnectionRefusedError"
#: run by a build (its Dockerfile's RUN): tries each host:port and prints what happened
BUILD_PROBE = """
import socket, sys
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        print("build reached", target)
    except OSError as e:
        print("build could not reach", target, type(e).__name__)
"""


@pytest.fixture
def shared_project(hosts: Bed, bed_ctx, base_image, tmp_path):
    """A project alice, bob and carol may launch, never built before: (path, alice, bob, carol)."""
    users = [hosts.gitlab.add_user(name) for name in ("alice", "bob", "carol")]
    path = f"lab/nb-{secrets.token_hex(3)}"
    # its Dockerfile tries the front's services while it builds, as a hostile repository would
    probe = f"RUN python3 /home/jovyan/probe.py {hosts.a.address}:{REDIS_PORT} {hosts.registry.host}\n"
    files = {**notebook_repo_files(base_image, probe), "probe.py": BUILD_PROBE, "unique.txt": secrets.token_hex(8)}
    hosts.gitlab.add_project(path, members={user.username: MAINTAINER for user in users})
    hosts.gitlab.push(path, create_local_repo(tmp_path / "repo", {"main": files}))
    return path, *users


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


def test_a_commit_built_on_one_host_launches_there_or_on_the_other_by_a_pull_and_only_traefik_reaches_it(
    hosts, bed_ctx, shared_project
):
    ctx, (path, alice, bob, carol) = bed_ctx, shared_project
    runner_a = hosts.runner(hosts.a, "runner-1@booklab-a", ctx)
    first = service.request_deployment(ctx, path, "main", alice.token)
    events = run_to_end(ctx, first.run)
    assert events[-1]["phase"] == "ready", messages(events)
    assert "Building image" in messages(events)
    for front in (f"{hosts.a.address}:{REDIS_PORT}", hosts.registry.host):
        assert f"build could not reach {front} {REFUSED}" in messages(events)
    wait_until(lambda: "is shared through the registry" in runner_a.output(), 180, "the image to be pushed")

    # both hosts have an idle runner (host B's the longer): bob's launch goes where the image is
    runner_b = hosts.runner(hosts.b, "runner-1@booklab-b", ctx)
    service.stop(ctx, first.id)
    wait_until(lambda: ctx.deployments.status(first.id) is Phase.STOPPED, 60, "alice's notebook to stop")
    wait_until(lambda: ctx.runners.idle_hosts() == {"booklab-a", "booklab-b"}, 10, "both runners to be idle")
    second = service.request_deployment(ctx, path, "main", bob.token)
    events = run_to_end(ctx, second.run)
    assert events[-1]["phase"] == "ready", messages(events)
    assert ctx.deployments.record(second.id)["runner"] == runner_a.name
    assert image_sharing.PULLING not in messages(events) and "Found built image, launching..." in messages(events)
    assert ctx.vault.find(second.id, GITLAB_TOKEN) is None

    # host A's runner serves bob: carol's launch does not wait for it, host B pulls the image
    third = service.request_deployment(ctx, path, "main", carol.token)
    events = run_to_end(ctx, third.run)
    told = messages(events)
    assert events[-1]["phase"] == "ready", told
    assert image_sharing.PULLING in told and "Building image" not in told
    on_b = ctx.deployments.record(third.id)
    assert on_b["runner"] == runner_b.name and on_b["image"] == ctx.deployments.record(second.id)["image"]
    assert ctx.runners.hosts() == {runner_a.name: "booklab-a", runner_b.name: "booklab-b"}

    # host B's notebook: through Traefik at the front, and no one else
    assert through_traefik(hosts, events[-1]) == 200
    port = published_port(hosts.b, on_b["container"])
    assert hosts.a.namespace.connects(hosts.b.address, port) == "open"  # Traefik's host
    assert hosts.stranger.connects(hosts.b.address, port) == REFUSED
    assert hosts.outside.connects(hosts.b.address, port) == REFUSED
    # notebooks reach the world outside and, on the front's own addresses, Traefik's entrypoint only: nothing
    # else of Booklab's on any host (the front's public address lies outside the hosts' network, where the
    # notebooks of every host reach Traefik)
    on_a = hosts.a.client.containers.get(ctx.deployments.record(second.id)["container"])
    services = [f"{hosts.a.address}:{REDIS_PORT}", hosts.registry.host]
    entrypoint, outside = f"{hosts.a.address}:{hosts.traefik.port}", f"{hosts.outside.address}:{hosts.gitlab.ssh_port}"
    reached_from_a = connections_from(on_a, [f"{hosts.b.address}:{port}", *services, entrypoint, outside])
    assert reached_from_a == {
        **dict.fromkeys([f"{hosts.b.address}:{port}", *services], REFUSED),
        entrypoint: "open",
        outside: "open",
    }
    reached_from_b = connections_from(hosts.b.client.containers.get(on_b["container"]), [*services, outside])
    assert reached_from_b == {**dict.fromkeys(services, REFUSED), outside: "open"}

    # host B's runner leaves: its notebook ends, and its route with it
    slug = ctx.slug(third.id)
    os.killpg(runner_b.proc.pid, signal.SIGTERM)
    runner_b.proc.wait(60)
    assert ctx.deployments.status(third.id) is Phase.STOPPED
    assert SHUT_DOWN in events_of(ctx, third.id)[-1].data["message"]
    assert not ctx.route_tree.exists(*kv_pairs(ctx.config, slug, ""))
    wait_until(lambda: through_traefik(hosts, events[-1]) == 404, 10, "Traefik to drop the route")
    assert notebook_containers(ctx, hosts.b.client, third.id) == []
    assert ctx.deployments.status(second.id) is Phase.READY


def test_a_launch_whose_engine_dies_is_served_by_another_host(hosts, bed_ctx, shared_project):
    ctx, (path, alice, bob, _) = bed_ctx, shared_project
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
        assert ctx.vault.find(second.id, GITLAB_TOKEN) is None  # kept for host A's runner until it started
        assert "Found built image, launching..." in messages(events)
        assert through_traefik(hosts, events[-1]) == 200
        assert runner_b.proc.poll() is None and not ctx.runners.held(runner_b.name)  # takes nothing meanwhile
    finally:
        hosts.b.start()


def test_a_hubs_servers_on_a_host_with_the_firewall_rules_reach_the_hubs_api_and_nothing_more(
    hosts, bed_ctx, shared_project, base_image, tmp_path
):
    """Hub mode with notebook/unreachable: a server reports to the hub's own API on its host (jupyterhub/api_port),
    which the rules open beside Traefik's entrypoint, and reaches no other service of the host's."""
    ctx, (path, alice, _, _) = bed_ctx, shared_project
    notebook_network.ensure_isolated(hosts.a.client, NOTEBOOK_NETWORK)
    booklab = "http://booklab.localhost"
    with running_hub(
        tmp_path / "hub", hosts.a.client, NOTEBOOK_NETWORK, hosts.gitlab, booklab, base_image, Site(), host=hosts.a
    ) as hub:
        api = urlsplit(hub.site.api_url).port
        hosts.runner(hosts.a, "runner-1@booklab-a", ctx, **hub.booklab_env(), BOOKLAB_JUPYTERHUB_API_PORT=str(api))
        request = service.request_deployment(ctx, path, "main", alice.token)
        events = run_to_end(ctx, request.run)
        assert events[-1]["phase"] == "ready", messages(events)
        server = hosts.a.client.containers.get(ctx.deployments.record(request.id)["container"])
        hub_api, front = f"{gateway(server, NOTEBOOK_NETWORK)}:{api}", f"{hosts.a.address}:{REDIS_PORT}"
        reached = connections_from(server, [hub_api, front, hosts.registry.host])
        assert reached == {hub_api: "open", front: REFUSED, hosts.registry.host: REFUSED}
        service.stop(ctx, request.id)
        wait_until(lambda: ctx.deployments.status(request.id) is Phase.STOPPED, 60, "the notebook to stop")
