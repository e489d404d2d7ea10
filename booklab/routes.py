"""Routes from ``<slug>.<FQDN>`` to notebooks through Traefik, published the way
``routes/publisher`` says, behind one small interface (:class:`Routes`):

- ``docker``: labels on the notebook container, read by Traefik's docker provider (one
  host); removing the container removes the route.
- ``redis``: keys under ``traefik/`` read by Traefik's Redis provider, pointing at the
  address the runner publishes the notebook on (runners on several hosts).
- ``none``: no route; a notebook is reached at that address directly.

A published route counts only once Traefik serves it: its API shows the router enabled and
the notebook answers through Traefik's entrypoint with its token.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

import redis
import requests

from booklab import launcher, schema
from booklab.config import Config
from booklab.errors import RouteError
from booklab.launcher import Notebook

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"http": 80, "https": 443}
POLL_INTERVAL = 0.1


def route_host(config: Config, slug: str) -> str:
    return f"{slug}.{config.fqdn}"


def rule(config: Config, slug: str) -> str:
    return f"Host(`{route_host(config, slug)}`)"


def public_url(config: Config, slug: str) -> str:
    """``<scheme>://<slug>.<fqdn>[:<port>]/``, the port left out when it is the scheme's default."""
    port = config.routes_port
    suffix = f":{port}" if port and port != DEFAULT_PORTS[config.routes_scheme] else ""
    return f"{config.routes_scheme}://{route_host(config, slug)}{suffix}/"


def docker_labels(config: Config, slug: str) -> dict[str, str]:
    """The container labels by which Traefik's docker provider routes to the notebook."""
    labels = {
        "traefik.enable": "true",
        f"traefik.http.routers.{slug}.rule": rule(config, slug),
        f"traefik.http.routers.{slug}.entrypoints": config.routes_entrypoint,
        f"traefik.http.services.{slug}.loadbalancer.server.port": str(launcher.PORT),
    }
    if config.notebook_network:
        labels["traefik.docker.network"] = config.notebook_network
    return labels


def kv_pairs(config: Config, slug: str, backend_url: str) -> dict[str, str]:
    """The keys by which Traefik's Redis provider routes to the notebook at ``backend_url``."""
    return {
        schema.traefik_router(slug, "rule"): rule(config, slug),
        schema.traefik_router(slug, "entrypoints/0"): config.routes_entrypoint,
        schema.traefik_router(slug, "service"): slug,
        schema.traefik_service(slug, "loadbalancer/servers/0/url"): backend_url.rstrip("/"),
    }


class Routes:
    """No routes: a notebook is reached at the address its runner publishes it on."""

    def __init__(self, config: Config, client: redis.Redis) -> None:
        self.config = config
        self.redis = client

    def labels(self, slug: str) -> dict[str, str]:
        """Labels the notebook container carries for its route."""
        return {}

    def publish(self, slug: str, notebook: Notebook) -> str:
        """Route to the running ``notebook``; return its URL once it answers there."""
        return notebook.url

    def remove(self, slug: str) -> None:
        """Take the route down; nothing happens when there is none."""


class TraefikRoutes(Routes):
    """Routes Traefik serves at ``<slug>.<fqdn>``, read by its provider ``provider``."""

    provider = ""

    def publish(self, slug: str, notebook: Notebook) -> str:
        started = time.monotonic()
        wait_served(self.config, slug, self.provider, notebook.token)
        log.info("%s answers through Traefik %.2f s after the notebook", slug, time.monotonic() - started)
        return public_url(self.config, slug)


class DockerLabelRoutes(TraefikRoutes):
    """Labels on the notebook container (one host): the route goes with the container."""

    provider = "docker"

    def labels(self, slug: str) -> dict[str, str]:
        return docker_labels(self.config, slug)


class RedisRoutes(TraefikRoutes):
    """Keys for Traefik's Redis provider, to the port the runner publishes (several hosts)."""

    provider = "redis"

    def publish(self, slug: str, notebook: Notebook) -> str:
        self.redis.mset({schema.TRAEFIK_ANCHOR: "1", **kv_pairs(self.config, slug, notebook.url)})
        return super().publish(slug, notebook)

    def remove(self, slug: str) -> None:
        self.redis.delete(*kv_pairs(self.config, slug, ""))


PUBLISHERS: dict[str, type[Routes]] = {"none": Routes, "docker": DockerLabelRoutes, "redis": RedisRoutes}


def make_routes(config: Config, client: redis.Redis) -> Routes:
    """The publisher ``routes/publisher`` names."""
    return PUBLISHERS[config.routes_publisher](config, client)


def wait_served(config: Config, slug: str, provider: str, token: str) -> None:
    """Return once Traefik's API shows the router ``<slug>@<provider>`` enabled and the
    notebook answers through Traefik's entrypoint; raise :class:`RouteError` after
    ``routes/timeout`` seconds."""
    deadline = time.monotonic() + config.routes_timeout
    router = f"{slug}@{provider}"
    api = config.routes_traefik_api.rstrip("/")
    _wait(lambda: _enabled(f"{api}/api/http/routers/{router}"), deadline,
          f"Traefik's API at {api} did not show the route {router} within {config.routes_timeout} s: "
          f"check that Traefik runs with its {provider} provider and that routes/traefik_api is its API.")
    entrypoint = config.routes_traefik_entrypoint_url.rstrip("/") + "/"
    _wait(lambda: launcher.api_status(entrypoint, token, route_host(config, slug)) is not None, deadline,
          f"The notebook did not answer through Traefik at {entrypoint} within {config.routes_timeout} s: "
          "check routes/traefik_entrypoint_url and routes/entrypoint, and that Traefik reaches "
          "the notebook (notebook/network, notebook/host).")


def _wait(check: Callable[[], bool], deadline: float, failure: str) -> None:
    while not check():
        if time.monotonic() > deadline:
            raise RouteError(failure)
        time.sleep(POLL_INTERVAL)


def _enabled(router_url: str) -> bool:
    try:
        response = requests.get(router_url, timeout=launcher.HTTP_TIMEOUT)
        return response.status_code == 200 and response.json().get("status") == "enabled"
    except (requests.RequestException, ValueError):  # Traefik not up, or not its API
        return False
