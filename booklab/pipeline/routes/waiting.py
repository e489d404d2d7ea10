"""Waiting until Traefik serves a published route (:mod:`booklab.pipeline.routes`): the notebook
answers through Traefik's entrypoint with its token (Traefik's API says why not, when it does not);
behind forward-auth, the runner passes with a one-off value (the route check,
:data:`ROUTE_CHECK_HEADER`) that the web tier lets through while the check runs."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping

import redis
import requests

from booklab.config import Config
from booklab.errors import RouteError
from booklab.pipeline import launcher
from booklab.pipeline.routes.names import auth_base, route_host
from booklab.state import schema

POLL_INTERVAL = 0.02
#: the header with which a runner passes forward-auth while it checks its new route
ROUTE_CHECK_HEADER = "X-Booklab-Route-Check"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def route_check_passes(client: redis.Redis, slug: str, value: str) -> bool:
    """Whether ``value`` is the one a runner is checking the route ``slug`` with (Redis holds
    only its digest: a reader of Redis cannot pass forward-auth with it)."""
    expected = client.get(schema.route_check(slug))
    return expected is not None and secrets.compare_digest(_digest(value), expected)


def run_route_check(config: Config, client: redis.Redis, slug: str, provider: str, token: str) -> None:
    """:func:`wait_served`; with ``routes/forward_auth``, asked with a one-off value that
    forward-auth lets through while the route is checked, then never again."""
    headers: dict[str, str] = {}
    if config.routes_forward_auth:
        check = secrets.token_urlsafe(32)
        client.set(schema.route_check(slug), _digest(check), ex=config.routes_timeout + 10)
        headers[ROUTE_CHECK_HEADER] = check
    try:
        wait_served(config, slug, provider, token, headers)
    finally:
        if headers:
            client.delete(schema.route_check(slug))


def wait_served(config: Config, slug: str, provider: str, token: str, headers: Mapping[str, str] | None = None) -> None:
    """Return once the notebook answers through Traefik's entrypoint (asked with ``headers`` too); raise
    :class:`RouteError` after ``routes/timeout`` seconds, saying whether Traefik's API (when ``routes/traefik_api``
    names one) shows the router ``<slug>@<provider>`` enabled. One request a poll: runners that wait at once
    leave Traefik's cores to apply their routes."""
    entrypoint = config.routes_traefik_entrypoint_url.rstrip("/") + "/"
    host = route_host(config, slug)
    deadline = time.monotonic() + config.routes_timeout
    follow = not headers  # behind forward-auth a redirect is its refusal: the one-off value is never sent on
    with requests.Session() as session:  # one connection to Traefik for all the polls
        while launcher.api_status(entrypoint, token, host, headers, allow_redirects=follow, session=session) is None:
            if time.monotonic() > deadline:
                raise RouteError(_why_not_served(config, slug, provider, entrypoint))
            time.sleep(POLL_INTERVAL)


def _why_not_served(config: Config, slug: str, provider: str, entrypoint: str) -> str:
    router = f"{slug}@{provider}"
    api = config.routes_traefik_api.rstrip("/")
    if api and not _enabled(f"{api}/api/http/routers/{router}"):
        return (
            f"Traefik's API at {api} did not show the route {router} within {config.routes_timeout} s: "
            f"check that Traefik runs with its {provider} provider and that routes/traefik_api is its API."
        )
    behind_auth = (
        (f", and that Traefik reaches the web tier directly for forward-auth at {auth_base(config)} (routes/auth_url)")
        if config.routes_forward_auth
        else ""
    )
    return (
        f"The notebook did not answer through Traefik at {entrypoint} within {config.routes_timeout} s: "
        "check routes/traefik_entrypoint_url and routes/entrypoint, that Traefik reaches "
        f"the notebook (notebook/network, notebook/host){behind_auth}."
    )


def _enabled(router_url: str) -> bool:
    try:
        response = requests.get(router_url, timeout=launcher.HTTP_TIMEOUT)
        return response.status_code == 200 and response.json().get("status") == "enabled"
    except (requests.RequestException, ValueError):  # Traefik not up, or not its API
        return False
