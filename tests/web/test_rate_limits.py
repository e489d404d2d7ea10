"""Rate limits per client (issue 12, attack 7): anonymous requests to forward-auth and
checks of GitLab tokens not in the cache answer 429 with Retry-After past the limit, the
client being the address Traefik appended to X-Forwarded-For; the owner's requests with a
valid pass are never limited."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from flask import Flask

from booklab import config as config_module
from booklab.context import Context
from booklab.state.deployment import Deployment
from booklab.web import create_app
from tests.fixtures.pipeline import queue_run
from tests.fixtures.web import log_in

LIMIT = 3
WINDOW = 3600
#: seconds of its window a test needs at most: it starts in a new window when fewer are left (the windows follow
#: the clock, and a count that went on in the next window would start again from 0)
TEST_TIME = 30
CLIENT = "203.0.113.7"


@pytest.fixture
def limited_app(web_env, ctx) -> Iterator[Flask]:
    env = {
        **web_env,
        "BOOKLAB_WEB_AUTH_RATE_LIMIT": str(LIMIT),
        "BOOKLAB_WEB_TOKEN_RATE_LIMIT": str(LIMIT),
        "BOOKLAB_WEB_RATE_WINDOW": str(WINDOW),
    }
    context = Context(config_module.load(os.devnull, environ=env))
    left = WINDOW - time.time() % WINDOW
    if left < TEST_TIME:
        time.sleep(left)
    try:
        yield create_app(context=context)
    finally:
        context.close()


def from_traefik(client_address: str, host: str, uri: str = "/api/status", **headers: str) -> dict[str, str]:
    """Forward-auth's request as Traefik sends it for ``client_address`` (what the client sent
    in X-Forwarded-For before it, ``forged``, comes first)."""
    forged = headers.pop("forged", "")
    chain = f"{forged}, {client_address}" if forged else client_address
    return {
        "X-Forwarded-For": chain,
        "X-Forwarded-Method": "GET",
        "X-Forwarded-Proto": "http",
        "X-Forwarded-Host": host,
        "X-Forwarded-Uri": uri,
        **headers,
    }


def assert_too_many(answer) -> None:
    assert answer.status_code == 429, answer.get_data(as_text=True)
    assert 0 < int(answer.headers["Retry-After"]) <= WINDOW
    assert "Too many requests from your address" in answer.get_data(as_text=True)


def queued_notebook(ctx, project: str, user) -> tuple[str, str, str]:
    """A deployment of ``project`` for ``user``, queued: its slug, host and forward-auth URL."""
    dep = Deployment(project, "main", user.username)
    slug = ctx.slug(dep.id)
    queue_run(ctx, dep)
    return slug, f"{slug}.{ctx.config.fqdn}", f"/auth/notebook/{slug}"


def test_anonymous_requests_to_forward_auth_are_limited_per_client(limited_app, ctx, alice, plain_project):
    _, host, url = queued_notebook(ctx, plain_project, alice)
    client = limited_app.test_client(use_cookies=False)
    for _ in range(LIMIT):
        assert client.get(url, headers=from_traefik(CLIENT, host)).status_code == 401
    assert_too_many(client.get(url, headers=from_traefik(CLIENT, host)))
    # what the client wrote in X-Forwarded-For before Traefik's entry does not make it someone else
    assert_too_many(client.get(url, headers=from_traefik(CLIENT, host, forged="198.51.100.1")))
    assert_too_many(client.get("/auth/notebook/no-such-slug-0badc0de", headers=from_traefik(CLIENT, host)))
    assert client.get(url, headers=from_traefik("203.0.113.8", host)).status_code == 401  # another client


def test_the_owner_with_a_valid_pass_is_never_limited(limited_app, ctx, alice, plain_project):
    slug, host, url = queued_notebook(ctx, plain_project, alice)
    with limited_app.test_client() as browser:
        browser.environ_base["HTTP_SEC_FETCH_SITE"] = "same-origin"
        log_in(browser, alice)
        grant = urlsplit(browser.get(f"/auth/notebook/grant/{slug}").headers["Location"])
        redeemed = browser.get(url, headers=from_traefik(CLIENT, host, f"/.booklab/grant?{grant.query}"))
        assert redeemed.status_code == 302
        value = redeemed.headers["Set-Cookie"].split(";")[0].partition("=")[2]
    client = limited_app.test_client(use_cookies=False)
    for _ in range(LIMIT):  # the address has spent its anonymous requests
        client.get(url, headers=from_traefik(CLIENT, host))
    assert_too_many(client.get(url, headers=from_traefik(CLIENT, host)))
    for _ in range(3 * LIMIT):
        answer = client.get(url, headers=from_traefik(CLIENT, host, Cookie=f"booklab_notebook={value}"))
        assert answer.status_code == 200
    # a forged pass is a request without a valid login
    assert_too_many(client.get(url, headers=from_traefik(CLIENT, host, Cookie="booklab_notebook=forged")))


def test_checks_of_unknown_tokens_against_gitlab_are_limited_per_client(limited_app, alice):
    client = limited_app.test_client(use_cookies=False)
    address = {"X-Forwarded-For": CLIENT}
    assert client.get("/api/user", headers={**address, "Authorization": f"Bearer {alice.token}"}).status_code == 200
    for n in range(LIMIT - 1):
        refused = client.get("/api/user", headers={**address, "Authorization": f"Bearer glpat-guess-{n}"})
        assert refused.status_code == 401
    assert_too_many(client.get("/api/user", headers={**address, "Authorization": "Bearer glpat-guess-x"}))
    # a token GitLab accepted a moment ago is in the cache: no check, no limit
    for _ in range(LIMIT):
        assert client.get("/api/user", headers={**address, "Authorization": f"Bearer {alice.token}"}).status_code == 200


def test_an_ipv6_client_is_its_whole_64_network(limited_app, ctx, alice, plain_project):
    _, host, url = queued_notebook(ctx, plain_project, alice)
    client = limited_app.test_client(use_cookies=False)
    for n in range(1, LIMIT + 1):  # a new address of its /64 for each request
        assert client.get(url, headers=from_traefik(f"2001:db8:0:7::{n}", host)).status_code == 401
    assert_too_many(client.get(url, headers=from_traefik("2001:db8:0:7::ffff", host)))
    assert client.get(url, headers=from_traefik("2001:db8:0:8::1", host)).status_code == 401  # another network
