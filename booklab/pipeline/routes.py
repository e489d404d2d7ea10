"""Routes from ``<slug>.<domain>`` to notebooks through Traefik (``notebook/domain``, by
default the web tier's ``fqdn``), published the way ``routes/publisher`` says, behind one
small interface (:class:`Routes`):

- ``docker``: labels on the notebook container, read by Traefik's docker provider (one
  host); removing the container removes the route.
- ``redis``: keys under ``traefik/`` read by Traefik's Redis provider, pointing at the
  address the runner publishes the notebook on (runners on several hosts).
- ``none``: no route; a notebook is reached at that address directly.

With ``routes/forward_auth`` (on by default) each Traefik route also carries a
forward-auth middleware, ``<slug>-auth``: before every request to the notebook, Traefik
asks the web tier at ``<routes/auth_url>/auth/notebook/<slug>``
(:mod:`booklab.web.notebook_auth`), which lets only the notebook's owner through. The
headers in :data:`AUTH_RESPONSE_HEADERS` are set anew from the web tier's answer, so
Booklab's own credentials (a personal access token, the notebook host's login cookie)
never reach the notebook's code.

A published route counts only once Traefik serves it: its API shows the router enabled and
the notebook answers through Traefik's entrypoint with its token (and, behind forward-auth,
with a one-off value the web tier lets through: :data:`ROUTE_CHECK_HEADER`).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping

import redis
import requests

from booklab.pipeline import launcher
from booklab.state import schema
from booklab.config import Config
from booklab.derived_keys import TRAEFIK_ROUTE, derive_key
from booklab.errors import ConfigError, RouteError
from booklab.pipeline.launcher import Notebook

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"http": 80, "https": 443}
POLL_INTERVAL = 0.02
#: the web tier's forward-auth endpoint, followed by the notebook's slug
AUTH_PATH = "/auth/notebook/"
#: request headers Traefik replaces by the forward-auth answer's (removed when it has none)
AUTH_RESPONSE_HEADERS = ("Authorization", "Private-Token", "Cookie")
#: the header with which a runner passes forward-auth while it checks its new route
ROUTE_CHECK_HEADER = "X-Booklab-Route-Check"
#: Traefik's docker provider admits only containers whose label of this name has the value
#: :func:`route_label` (its constraint: :func:`booklab.pipeline.traefik_config.static_flags`)
ROUTE_LABEL = "booklab.route"


def notebook_domain(config: Config) -> str:
    """The domain under which notebooks are served: ``notebook/domain``, else ``fqdn``."""
    return config.notebook_domain or config.fqdn


def route_host(config: Config, slug: str) -> str:
    return f"{slug}.{notebook_domain(config)}"


def rule(config: Config, slug: str) -> str:
    return f"Host(`{route_host(config, slug)}`)"


def port_suffix(config: Config) -> str:
    """``:<port>`` of ``routes/port`` for a public URL, empty when it is unset or the scheme's default."""
    port = config.routes_port
    return f":{port}" if port and port != DEFAULT_PORTS[config.routes_scheme] else ""


def public_url(config: Config, slug: str) -> str:
    """``<scheme>://<slug>.<domain>[:<port>]/``, the port left out when it is the scheme's default."""
    return f"{config.routes_scheme}://{route_host(config, slug)}{port_suffix(config)}/"


def entrypoints(config: Config) -> list[str]:
    """The Traefik entrypoints a notebook's route is on (``routes/entrypoint``, comma-separated)."""
    return [name.strip() for name in config.routes_entrypoint.split(",") if name.strip()]


def route_label(secret_key: str) -> str:
    """The value of :data:`ROUTE_LABEL` on every container Booklab routes to: derived from
    ``secret_key``, so a repository (whose Dockerfile's labels ride on its build
    containers, and would on its notebook's) cannot know it."""
    return derive_key(secret_key, TRAEFIK_ROUTE).hex()[:32]


def docker_labels(config: Config, slug: str) -> dict[str, str]:
    """The container labels by which Traefik's docker provider routes to the notebook."""
    labels = {
        ROUTE_LABEL: route_label(config.secret_key),  # secret_key is required by every runner
        "traefik.enable": "true",
        f"traefik.http.routers.{slug}.rule": rule(config, slug),
        f"traefik.http.routers.{slug}.entrypoints": ",".join(entrypoints(config)),
        f"traefik.http.services.{slug}.loadbalancer.server.port": str(launcher.PORT),
    }
    if config.notebook_network:
        labels["traefik.docker.network"] = config.notebook_network
    return labels


def kv_pairs(config: Config, slug: str, backend_url: str) -> dict[str, str]:
    """The keys by which Traefik's Redis provider routes to the notebook at ``backend_url``."""
    return {
        schema.traefik_router(slug, "rule"): rule(config, slug),
        **{schema.traefik_router(slug, f"entrypoints/{i}"): name for i, name in enumerate(entrypoints(config))},
        schema.traefik_router(slug, "service"): slug,
        schema.traefik_service(slug, "loadbalancer/servers/0/url"): backend_url.rstrip("/"),
    }


def auth_middleware(slug: str) -> str:
    """The name of the notebook's forward-auth middleware."""
    return f"{slug}-auth"


def auth_address(config: Config, slug: str) -> str:
    """Where Traefik asks the web tier whether a request may reach the notebook ``slug``."""
    base = config.routes_auth_url or config.web_url
    if not base:
        raise ConfigError(
            "Setting routes/auth_url is missing: Traefik's forward-auth needs the address at which it "
            "reaches the web tier (or web/url); set it in config.yml or in BOOKLAB_ROUTES_AUTH_URL, "
            "or set routes/forward_auth to false to guard notebooks by their Jupyter token alone.")
    return f"{base.rstrip('/')}{AUTH_PATH}{slug}"


def auth_labels(config: Config, slug: str) -> dict[str, str]:
    """The container labels of the notebook's forward-auth (none when ``routes/forward_auth`` is off)."""
    if not config.routes_forward_auth:
        return {}
    name = auth_middleware(slug)
    return {
        f"traefik.http.middlewares.{name}.forwardauth.address": auth_address(config, slug),
        f"traefik.http.middlewares.{name}.forwardauth.authResponseHeaders": ",".join(AUTH_RESPONSE_HEADERS),
        f"traefik.http.routers.{slug}.middlewares": name,
    }


def auth_pairs(config: Config, slug: str, address: str | None = None) -> dict[str, str]:
    """The Redis provider's keys of the notebook's forward-auth, asking at ``address``
    (default: :func:`auth_address`)."""
    name = auth_middleware(slug)
    pairs = {
        schema.traefik_router(slug, "middlewares/0"): name,
        schema.traefik_middleware(name, "forwardAuth/address"):
            auth_address(config, slug) if address is None else address,
    }
    for i, header in enumerate(AUTH_RESPONSE_HEADERS):
        pairs[schema.traefik_middleware(name, f"forwardAuth/authResponseHeaders/{i}")] = header
    return pairs


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def route_check_passes(client: redis.Redis, slug: str, value: str) -> bool:
    """Whether ``value`` is the one a runner is checking the route ``slug`` with (Redis holds
    only its digest: a reader of Redis cannot pass forward-auth with it)."""
    expected = client.get(schema.route_check(slug))
    return expected is not None and secrets.compare_digest(_digest(value), expected)


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
    """Routes Traefik serves at ``<slug>.<domain>``, read by its provider ``provider``."""

    provider = ""

    def publish(self, slug: str, notebook: Notebook) -> str:
        started = time.monotonic()
        headers: dict[str, str] = {}
        if self.config.routes_forward_auth:
            # forward-auth lets this one value through while the route is checked, then never again
            check = secrets.token_urlsafe(32)
            self.redis.set(schema.route_check(slug), _digest(check), ex=self.config.routes_timeout + 10)
            headers[ROUTE_CHECK_HEADER] = check
        try:
            wait_served(self.config, slug, self.provider, notebook.token, headers)
        finally:
            if headers:
                self.redis.delete(schema.route_check(slug))
        log.info("%s answers through Traefik %.2f s after the notebook", slug, time.monotonic() - started)
        return public_url(self.config, slug)


class DockerLabelRoutes(TraefikRoutes):
    """Labels on the notebook container (one host): the route goes with the container."""

    provider = "docker"

    def labels(self, slug: str) -> dict[str, str]:
        return {**docker_labels(self.config, slug), **auth_labels(self.config, slug)}


class RedisRoutes(TraefikRoutes):
    """Keys for Traefik's Redis provider, to the port the runner publishes (several hosts)."""

    provider = "redis"

    def publish(self, slug: str, notebook: Notebook) -> str:
        auth = auth_pairs(self.config, slug) if self.config.routes_forward_auth else {}
        self.redis.mset({schema.TRAEFIK_ANCHOR: "1", **kv_pairs(self.config, slug, notebook.url), **auth})
        return super().publish(slug, notebook)

    def remove(self, slug: str) -> None:
        self.redis.delete(*kv_pairs(self.config, slug, ""), *auth_pairs(self.config, slug, ""))


PUBLISHERS: dict[str, type[Routes]] = {"none": Routes, "docker": DockerLabelRoutes, "redis": RedisRoutes}


def make_routes(config: Config, client: redis.Redis) -> Routes:
    """The publisher ``routes/publisher`` names."""
    return PUBLISHERS[config.routes_publisher](config, client)


def wait_served(config: Config, slug: str, provider: str, token: str,
                headers: Mapping[str, str] | None = None) -> None:
    """Return once Traefik's API (when ``routes/traefik_api`` names one) shows the router
    ``<slug>@<provider>`` enabled and the notebook answers through Traefik's entrypoint
    (asked with ``headers`` too); raise :class:`RouteError` after ``routes/timeout`` seconds."""
    deadline = time.monotonic() + config.routes_timeout
    if config.routes_traefik_api:
        router = f"{slug}@{provider}"
        api = config.routes_traefik_api.rstrip("/")
        _wait(lambda: _enabled(f"{api}/api/http/routers/{router}"), deadline,
              f"Traefik's API at {api} did not show the route {router} within {config.routes_timeout} s: "
              f"check that Traefik runs with its {provider} provider and that routes/traefik_api is its API.")
    entrypoint = config.routes_traefik_entrypoint_url.rstrip("/") + "/"
    behind_auth = (f", and that Traefik reaches the web tier for forward-auth at {auth_address(config, slug)} "
                   "(routes/auth_url)") if config.routes_forward_auth else ""
    _wait(lambda: _answers(entrypoint, token, route_host(config, slug), headers or {}), deadline,
          f"The notebook did not answer through Traefik at {entrypoint} within {config.routes_timeout} s: "
          "check routes/traefik_entrypoint_url and routes/entrypoint, that Traefik reaches "
          f"the notebook (notebook/network, notebook/host){behind_auth}.")


def _wait(check: Callable[[], bool], deadline: float, failure: str) -> None:
    while not check():
        if time.monotonic() > deadline:
            raise RouteError(failure)
        time.sleep(POLL_INTERVAL)


def _answers(entrypoint: str, token: str, host: str, headers: Mapping[str, str]) -> bool:
    """Whether Jupyter answers ``/api/status`` for ``host`` at Traefik's ``entrypoint``."""
    if not headers:
        return launcher.api_status(entrypoint, token, host) is not None
    try:
        response = requests.get(f"{entrypoint}api/status", timeout=launcher.HTTP_TIMEOUT, allow_redirects=False,
                                headers={"Authorization": f"token {token}", "Host": host, **headers})
        return response.status_code == 200 and isinstance(response.json(), dict)
    except (requests.RequestException, ValueError):  # not routed yet, or not Jupyter
        return False


def _enabled(router_url: str) -> bool:
    try:
        response = requests.get(router_url, timeout=launcher.HTTP_TIMEOUT)
        return response.status_code == 200 and response.json().get("status") == "enabled"
    except (requests.RequestException, ValueError):  # Traefik not up, or not its API
        return False
