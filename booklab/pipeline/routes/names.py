"""What a notebook's route is named and made of: its host, Traefik rule and public URL,
the container labels Traefik's docker provider reads, the keys its Redis provider reads,
and those of the route's forward-auth middleware (:mod:`booklab.pipeline.routes`)."""

from __future__ import annotations

import hashlib
import re

from booklab.config import Config
from booklab.derived_keys import TRAEFIK_ROUTE, derive_key
from booklab.errors import ConfigError
from booklab.pipeline import launcher
from booklab.state import schema

DEFAULT_PORTS = {"http": 80, "https": 443}
#: the web tier's forward-auth endpoint, followed by the notebook's slug (a route's own middleware: docker labels)
AUTH_PATH = "/auth/notebook/"
#: the web tier's forward-auth endpoint that tells the notebook by the host asked for (the middleware all of the
#: Redis provider's routes share: :func:`shared_auth_middleware`)
HOST_AUTH_PATH = "/auth/notebook"
#: request headers Traefik replaces by the forward-auth answer's (removed when it has none)
AUTH_RESPONSE_HEADERS = ("Authorization", "Private-Token", "Cookie")
#: :data:`AUTH_RESPONSE_HEADERS` as the one setting Traefik reads them from (one Redis key, not one a header:
#: each key written is one more reading of the whole tree by Traefik's Redis provider)
AUTH_RESPONSE_HEADERS_REGEX = "(?i)^(" + "|".join(re.escape(header) for header in AUTH_RESPONSE_HEADERS) + ")$"
#: the settings of every forward-auth middleware besides its address: the headers above; and the client's
#: ``X-Forwarded-*`` headers never trusted, said outright (Traefik would otherwise pass some of them to the web tier
#: as the client sent them), so that ``X-Forwarded-Host`` is always the host the route matched
FORWARD_AUTH = {"authResponseHeadersRegex": AUTH_RESPONSE_HEADERS_REGEX, "trustForwardHeader": "false"}
#: the key, under a route's service, of the notebook's address (Traefik's Redis provider)
BACKEND = "loadbalancer/servers/0/url"
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
        schema.traefik_service(slug, BACKEND): backend_url.rstrip("/"),
    }


def auth_middleware(slug: str) -> str:
    """The name of the notebook's forward-auth middleware."""
    return f"{slug}-auth"


def auth_base(config: Config) -> str:
    """The address at which Traefik reaches the web tier: ``routes/auth_url``, else ``web/url``."""
    base = config.routes_auth_url or config.web_url
    if not base:
        raise ConfigError(
            "Setting routes/auth_url is missing: Traefik's forward-auth needs the address at which it "
            "reaches the web tier (or web/url); set it in config.yml or in BOOKLAB_ROUTES_AUTH_URL, "
            "or set routes/forward_auth to false to guard notebooks by their Jupyter token alone."
        )
    return base.rstrip("/")


def auth_address(config: Config, slug: str) -> str:
    """Where Traefik asks the web tier whether a request may reach the notebook ``slug``."""
    return f"{auth_base(config)}{AUTH_PATH}{slug}"


def auth_labels(config: Config, slug: str) -> dict[str, str]:
    """The container labels of the notebook's forward-auth (none when ``routes/forward_auth`` is off)."""
    if not config.routes_forward_auth:
        return {}
    name = auth_middleware(slug)
    return {
        f"traefik.http.middlewares.{name}.forwardauth.address": auth_address(config, slug),
        **{f"traefik.http.middlewares.{name}.forwardauth.{key}": value for key, value in FORWARD_AUTH.items()},
        f"traefik.http.routers.{slug}.middlewares": name,
    }


def shared_auth_middleware(config: Config) -> str:
    """The name of the forward-auth middleware every route of the Redis provider shares: it asks the web tier at
    :data:`HOST_AUTH_PATH`, which tells the notebook by the request's host. A route is then one key fewer than
    with a middleware of its own (each key written is one more reading of the whole tree by Traefik). The name
    holds a digest of what the middleware is, so that it is written once (``SET NX``) and a change of
    ``routes/auth_url`` (or of its settings, :data:`FORWARD_AUTH`) makes a middleware of its own instead of
    changing the one routes in use have."""
    digest = hashlib.sha256(repr(sorted(_shared_auth_settings(config).items())).encode())
    return f"booklab-auth-{digest.hexdigest()[:16]}"


def _shared_auth_settings(config: Config) -> dict[str, str]:
    return {"address": f"{auth_base(config)}{HOST_AUTH_PATH}", **FORWARD_AUTH}


def shared_auth_pairs(config: Config) -> dict[str, str]:
    """The Redis provider's keys of :func:`shared_auth_middleware`."""
    name = shared_auth_middleware(config)
    return {
        schema.traefik_middleware(name, f"forwardAuth/{key}"): value
        for key, value in _shared_auth_settings(config).items()
    }


def auth_pairs(config: Config, slug: str) -> dict[str, str]:
    """The Redis provider's key that puts the notebook's route behind :func:`shared_auth_middleware`."""
    return {schema.traefik_router(slug, "middlewares/0"): shared_auth_middleware(config)}


def auth_keys(slug: str) -> list[str]:
    """Every key of the notebook's forward-auth the tree may have: its route's middleware, and the middleware of
    its own that routes published by Booklab before the shared one have."""
    own = ["forwardAuth/address", "forwardAuth/authResponseHeadersRegex"]
    own += [f"forwardAuth/authResponseHeaders/{i}" for i in range(len(AUTH_RESPONSE_HEADERS))]
    return [
        schema.traefik_router(slug, "middlewares/0"),
        *(schema.traefik_middleware(auth_middleware(slug), key) for key in own),
    ]
