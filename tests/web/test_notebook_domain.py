"""Notebook hosts on a domain of their own (``notebook/domain``) over https: the owner's
login travels from the web tier to ``<slug>.<domain>`` and comes back as that host's own
``__Host-`` cookie; forward-auth never hands Booklab's cookies on to the notebook, under
either name, and takes no cookie a notebook host could have planted under the plain name."""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient

from booklab import config as config_module
from booklab.context import Context
from booklab.pipeline.routes.names import docker_labels, kv_pairs
from booklab.state.deployment import Deployment
from booklab.web import create_app
from tests.fixtures.pipeline import queue_run
from tests.fixtures.web import log_in

WEB_URL = "https://booklab.example.org"
NOTEBOOK_DOMAIN = "notebooks.example.net"


@pytest.fixture
def https_client(web_env, gitlab_server, ctx) -> Iterator[FlaskClient]:
    """The web tier at :data:`WEB_URL`, notebooks at ``<slug>.<NOTEBOOK_DOMAIN>`` over https."""
    client_id, secret = gitlab_server.add_oauth_app([f"{WEB_URL}/login/gitlab/authorized"])
    env = {
        **web_env,
        "BOOKLAB_WEB_URL": WEB_URL,
        "BOOKLAB_NOTEBOOK_DOMAIN": NOTEBOOK_DOMAIN,
        "BOOKLAB_ROUTES_SCHEME": "https",
        "BOOKLAB_GITLAB_CONSUMER_KEY": client_id,
        "BOOKLAB_GITLAB_CONSUMER_SECRET": secret,
    }
    context = Context(config_module.load(os.devnull, environ=env))
    try:
        with create_app(context=context).test_client() as client:
            client.environ_base["HTTP_SEC_FETCH_SITE"] = "same-origin"
            yield client
    finally:
        context.close()


def forwarded(host: str, uri: str) -> dict[str, str]:
    """What Traefik's forward-auth sends along for a browser's request to ``host``."""
    return {
        "X-Forwarded-Method": "GET",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": host,
        "X-Forwarded-Uri": uri,
        "Accept": "text/html",
    }


def test_notebooks_on_their_own_domain_get_a_host_cookie_that_never_reaches_them(
    https_client, ctx, alice, plain_project
):
    log_in(https_client, alice)
    dep = Deployment(plain_project, "main", alice.username)
    slug = ctx.slug(dep.id)
    queue_run(ctx, dep)
    host = f"{slug}.{NOTEBOOK_DOMAIN}"
    config = https_client.application.extensions["booklab"].config
    rule = f"Host(`{host}`)"  # Traefik serves the notebook there, with either publisher
    assert docker_labels(config, slug)[f"traefik.http.routers.{slug}.rule"] == rule
    assert kv_pairs(config, slug, "http://10.0.0.2:8888")[f"traefik/http/routers/{slug}/rule"] == rule

    grant = https_client.get(f"/auth/notebook/grant/{slug}")
    assert grant.status_code == 302
    target = urlsplit(grant.headers["Location"])
    assert (target.scheme, target.netloc, target.path) == ("https", host, "/.booklab/grant")

    redeemed = https_client.get(f"/auth/notebook/{slug}", headers=forwarded(host, f"/.booklab/grant?{target.query}"))
    assert redeemed.status_code == 302 and redeemed.headers["Location"] == f"https://{host}/"
    (cookie,) = [c for c in redeemed.headers.getlist("Set-Cookie") if "booklab_notebook=" in c]
    attributes = [part.strip() for part in cookie.split(";")]
    name, _, value = attributes[0].partition("=")
    assert name == "__Host-booklab_notebook"
    assert {"Secure", "HttpOnly", "Path=/"} <= set(attributes)
    assert not any(a.lower().startswith("domain=") for a in attributes)

    check = https_client.application.test_client(use_cookies=False)  # the Cookie header below as it is
    sent = f"_xsrf=1; __Host-booklab_notebook={value}; booklab_session=a; __Host-booklab_session=b; theme=dark"
    opened = check.get(f"/auth/notebook/{slug}", headers={**forwarded(host, "/tree"), "Cookie": sent})
    assert opened.status_code == 200 and opened.headers["Cookie"] == "_xsrf=1; theme=dark"
    # the plain name, which any host of the parent domain could have set, opens nothing over https
    planted = check.get(
        f"/auth/notebook/{slug}", headers={**forwarded(host, "/tree"), "Cookie": f"booklab_notebook={value}"}
    )
    assert planted.status_code == 302 and planted.headers["Location"].startswith(f"{WEB_URL}/auth/notebook/grant/")
