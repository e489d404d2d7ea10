"""How Traefik is started for Booklab: its static configuration as command-line flags, and
the dynamic configuration that routes fixed hosts (the web tier, Flower) to services on
the host through Traefik's file provider.

The names agree with what :mod:`booklab.pipeline.routes` publishes: notebook routes use the
entrypoint ``routes/entrypoint`` (``web`` by default), and the Redis provider reads the
keys under ``traefik/`` (:mod:`booklab.state.schema`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import requests

from booklab.config import Config
from booklab.pipeline.routes.names import ROUTE_LABEL

ENTRYPOINT = "web"
#: with TLS: the public HTTPS entrypoint, and a plain one on loopback where runners check new routes
TLS_ENTRYPOINT = "websecure"
CHECK_ENTRYPOINT = "check"
DOCKER_SOCKET = "unix:///var/run/docker.sock"
PROVIDERS_THROTTLE = "50ms"


def static_flags(
    entrypoint_address: str,
    api_address: str,
    *,
    docker_network: str = "",
    route_label: str = "",
    redis_url: str = "",
    routes_redis_db: int = Config.routes_redis_db,
    routes_file: Path | None = None,
    entrypoint: str = ENTRYPOINT,
) -> list[str]:
    """Traefik's flags: the entrypoint ``entrypoint`` at ``entrypoint_address``, the API,
    dashboard and ping at ``api_address`` (``host:port``), and the providers asked for:
    docker (containers on ``docker_network`` that carry Booklab's route label with the value
    ``route_label``, :func:`booklab.pipeline.routes.names.route_label`: no other container, a repository's
    build containers among them, becomes a route whatever its labels), Redis (the server of
    ``redis_url``, plain TCP, its database ``routes_redis_db``: the runners' ``routes/redis_db``, by default
    the setting's default) and file (``routes_file``, see :func:`host_routes`). No call leaves the machine."""
    flags = [
        "--global.checkNewVersion=false",
        "--global.sendAnonymousUsage=false",
        f"--entryPoints.{entrypoint}.address={entrypoint_address}",
        f"--entryPoints.traefik.address={api_address}",
        "--api.insecure=true",
        "--api.dashboard=true",
        "--ping=true",
        "--log.level=INFO",
        # apply a provider's next change 50 ms after the last, not the default 2 s: new notebooks' routes go
        # live while their users wait (8 routes written at once: all served after 190 ms with 100 ms, 124 ms
        # with 50 ms; 10 ms gains no more)
        f"--providers.providersThrottleDuration={PROVIDERS_THROTTLE}",
    ]
    if docker_network:
        if not route_label:
            raise ValueError("Traefik's docker provider needs Booklab's route label value")
        flags += [
            f"--providers.docker.endpoint={DOCKER_SOCKET}",
            "--providers.docker.exposedByDefault=false",
            f"--providers.docker.network={docker_network}",
            f"--providers.docker.constraints=Label(`{ROUTE_LABEL}`,`{route_label}`)",
        ]
    if redis_url:
        redis = urlsplit(redis_url)
        if redis.scheme != "redis":
            raise ValueError(f"Traefik is started here for Redis over plain TCP (redis://), not {redis.scheme}://")
        host = f"[{redis.hostname}]" if ":" in (redis.hostname or "") else redis.hostname
        flags += [
            f"--providers.redis.endpoints={host}:{redis.port or 6379}",
            f"--providers.redis.db={routes_redis_db}",
            "--providers.redis.rootKey=traefik",
        ]
        if redis.username:
            flags.append(f"--providers.redis.username={unquote(redis.username)}")
    if routes_file is not None:
        flags.append(f"--providers.file.filename={routes_file}")
    return flags


def static_environment(flags: list[str], redis_url: str = "") -> dict[str, str]:
    """The static configuration of ``flags`` as Traefik's environment variables, with the Redis provider's
    password from ``redis_url``: Traefik reads its static configuration from one source only, and a password
    belongs in a process's environment, never on its command line."""
    environment = {}
    for flag in flags:
        name, _, value = flag.removeprefix("--").partition("=")
        environment[f"TRAEFIK_{name.replace('.', '_').upper()}"] = value
    password = urlsplit(redis_url).password if redis_url else None
    if password:
        environment["TRAEFIK_PROVIDERS_REDIS_PASSWORD"] = unquote(password)
    return environment


def tls_flags(tls_address: str, check_address: str, entrypoint: str = ENTRYPOINT) -> list[str]:
    """Traefik's flags for HTTPS: the entrypoint :data:`TLS_ENTRYPOINT` at ``tls_address``
    terminates TLS for every router on it, ``entrypoint`` (plain HTTP) redirects there, and
    :data:`CHECK_ENTRYPOINT` serves plain HTTP at ``check_address`` (bind it to loopback) for
    the runners' route checks. The certificate comes from the dynamic configuration
    (:func:`tls_certificate`)."""
    return [
        f"--entryPoints.{TLS_ENTRYPOINT}.address={tls_address}",
        f"--entryPoints.{TLS_ENTRYPOINT}.http.tls=true",
        f"--entryPoints.{entrypoint}.http.redirections.entryPoint.to={TLS_ENTRYPOINT}",
        f"--entryPoints.{entrypoint}.http.redirections.entryPoint.scheme=https",
        f"--entryPoints.{CHECK_ENTRYPOINT}.address={check_address}",
    ]


def tls_certificate(cert_file: str, key_file: str) -> dict[str, Any]:
    """Dynamic configuration (file provider) that serves the certificate in ``cert_file``
    (PEM, e.g. a wildcard one for ``*.<fqdn>`` and ``<fqdn>``) with its key in ``key_file``."""
    return {"tls": {"stores": {"default": {"defaultCertificate": {"certFile": cert_file, "keyFile": key_file}}}}}


def host_routes(routes: Mapping[str, tuple[str, str]], entrypoint: str = ENTRYPOINT) -> dict[str, Any]:
    """Dynamic configuration (for the file provider, as YAML or JSON) that routes, for each
    ``name: (host, url)``, requests for ``host`` on ``entrypoint`` to ``url``."""
    return {
        "http": {
            "routers": {
                name: {"rule": f"Host(`{host}`)", "entryPoints": [entrypoint], "service": name}
                for name, (host, _) in routes.items()
            },
            "services": {name: {"loadBalancer": {"servers": [{"url": url}]}} for name, (_, url) in routes.items()},
        }
    }


def pings(api_url: str) -> bool:
    """Whether Traefik answers its ping at ``api_url`` (``http://host:port`` of its API)."""
    try:
        return requests.get(f"{api_url.rstrip('/')}/ping", timeout=2).status_code == 200
    except requests.RequestException:
        return False
