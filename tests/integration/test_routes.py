"""Routes through a real Traefik: with either publisher a notebook is served at
``<slug>.<FQDN>``, announced ready only once Traefik serves it, and unrouted once stopped."""

from __future__ import annotations

import re

import pytest
import requests

from booklab import service
from booklab.phases import Phase
from tests.fixtures.pipeline import notebook_containers, run_to_end
from tests.fixtures.services import wait_until

DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def through_traefik(traefik, host: str, token: str | None = None) -> int:
    headers = {"Host": host, **({"Authorization": f"token {token}"} if token else {})}
    return requests.get(f"{traefik.entrypoint_url}/api/status", headers=headers, timeout=10).status_code


@pytest.mark.parametrize("publisher", ["docker", "redis"])
def test_a_notebook_is_served_at_its_slug_host_until_stopped(ctx, runners, traefik, alice, project, publisher):
    runners(1, **traefik.runner_env(publisher))
    request = service.request_deployment(ctx, project, "main", alice.token)
    events = run_to_end(ctx, request.id)
    ready = events[-1]
    assert ready["phase"] == "ready", events
    slug = ctx.slug(request.id)
    host = f"{slug}.{ctx.config.fqdn}"
    assert DNS_LABEL.fullmatch(slug)
    assert ready["url"] == f"http://{host}:{traefik.port}/"
    # ready was announced once Traefik served the route: no waiting here
    assert through_traefik(traefik, host, ready["token"]) == 200
    assert through_traefik(traefik, host) == 403
    assert through_traefik(traefik, host, "not-the-token") == 403
    route_keys = f"traefik/http/*/{slug}/*"
    # in a database of their own: Traefik reads it whole on each change, and Booklab's keys would weigh on that
    assert len(ctx.route_tree.keys(route_keys)) == (4 if publisher == "redis" else 0)
    assert ctx.redis.keys("traefik/*") == []

    service.stop(ctx, request.id)
    wait_until(lambda: ctx.deployments.status(request.id) is Phase.STOPPED, 15, "the stop")
    wait_until(lambda: through_traefik(traefik, host) == 404, 10, "Traefik to drop the route")
    assert ctx.route_tree.keys(route_keys) == []


def test_a_route_traefik_does_not_serve_fails_the_deployment_and_is_removed(ctx, runners, traefik, alice, project):
    (runner,) = runners(
        1, **traefik.runner_env("redis"), BOOKLAB_ROUTES_ENTRYPOINT="no-such-entrypoint", BOOKLAB_ROUTES_TIMEOUT="3"
    )
    request = service.request_deployment(ctx, project, "main", alice.token)
    events = run_to_end(ctx, request.id)
    assert [e["phase"] for e in events][-2:] == ["launching", "failed"]
    assert f"did not show the route {ctx.slug(request.id)}@redis" in events[-1]["message"]
    assert ctx.route_tree.keys(f"traefik/http/*/{ctx.slug(request.id)}/*") == []
    wait_until(lambda: not ctx.runners.held(runner.name), 10, "the runner to be free")


def test_a_notebook_not_published_on_the_host_is_reached_through_its_network(
    ctx, runners, traefik, alice, project, docker_engine
):
    runners(1, **traefik.runner_env("docker"), BOOKLAB_NOTEBOOK_PUBLISH="false")
    request = service.request_deployment(ctx, project, "main", alice.token)
    ready = run_to_end(ctx, request.id)[-1]
    assert ready["phase"] == "ready"
    host = f"{ctx.slug(request.id)}.{ctx.config.fqdn}"
    assert through_traefik(traefik, host, ready["token"]) == 200
    (container,) = notebook_containers(ctx, docker_engine, request.id, stopped=False)
    assert container.attrs["HostConfig"]["PortBindings"] in ({}, None)  # nothing listens on the host
