"""Forward-auth through a real Traefik and real runners: only the GitLab user who launched
a notebook reaches it, by their personal access token (scripts) or their Booklab session
(browsers, through the notebook host's own cookie), even with the notebook's URL and
Jupyter token in hand; the notebook never sees Booklab's credentials; with
``routes/forward_auth`` off, Jupyter's token alone opens it."""

from __future__ import annotations

import base64
import re
import socket
from urllib.parse import urlsplit

import pytest
import requests

from booklab import service
from booklab.config import Config, load
from booklab.errors import ConfigError
from booklab.phases import Phase
from booklab.pipeline.routes.names import (
    auth_address,
    auth_pairs,
    docker_labels,
    shared_auth_middleware,
    shared_auth_pairs,
)
from booklab.pipeline.routes.publishers import DockerLabelRoutes
from booklab.state import schema
from booklab.state.deployment import Deployment
from tests.fixtures.pipeline import notebook_containers, queue_run, run_to_end
from tests.fixtures.services import wait_until
from tests.fixtures.web import log_in_over_http, push_notebook_project

PROJECT = "fwd/notebooks"
SLUG = "notebooks-main-alice-5c12470e"
#: a Jupyter token in a notebook URL, as a browser may send it: no hex digest holds it
URI_TOKEN = "jupyter-token-in-the-url"
#: a "jupyter" that answers every request with the headers it arrived with: what the notebook sees
ECHO_SERVER = b"""#!/usr/bin/python3
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Echo(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"headers": [[k.lower(), v] for k, v in self.headers.items()]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

ThreadingHTTPServer(("0.0.0.0", 8888), Echo).serve_forever()
"""
ECHO_STEP = (
    f"RUN mkdir -p /home/jovyan/bin && echo {base64.b64encode(ECHO_SERVER).decode()} | base64 -d "
    "> /home/jovyan/bin/jupyter && chmod 755 /home/jovyan/bin/jupyter\n"
    "ENV PATH=/home/jovyan/bin:/usr/local/bin:/usr/bin:/bin\n"
)


@pytest.fixture
def web_env(web_env, web_port, traefik) -> dict[str, str]:
    """The web tier at its own address (where browsers log in and Traefik asks), notebook
    URLs on Traefik's port."""
    return {**web_env, "BOOKLAB_WEB_URL": f"http://127.0.0.1:{web_port}", "BOOKLAB_ROUTES_PORT": str(traefik.port)}


@pytest.fixture
def bob(gitlab):
    return gitlab.add_user("bob")


@pytest.fixture
def fwd_project(gitlab, alice, bob, base_image, tmp_path) -> str:
    """``fwd/notebooks``, alice and bob both Maintainers; branch ``echo`` runs :data:`ECHO_SERVER`."""
    return push_notebook_project(
        gitlab,
        tmp_path / "fwd",
        PROJECT,
        base_image,
        {alice.username: 40, bob.username: 40},
        branches={"main": "", "echo": ECHO_STEP},
    )


def deploy(ctx, user, ref: str = "main") -> tuple[Deployment, dict]:
    request = service.request_deployment(ctx, PROJECT, ref, user.token)
    events = run_to_end(ctx, request.id)
    assert events[-1]["phase"] == "ready", events
    return request.deployment, events[-1]


def through_traefik(traefik, host: str, path: str = "/api/status", headers: dict | None = None) -> requests.Response:
    return requests.get(
        f"{traefik.entrypoint_url}{path}", headers={"Host": host, **(headers or {})}, timeout=10, allow_redirects=False
    )


def absolute_request(traefik, url: str, host: str, token: str) -> bytes:
    """The start of Traefik's answer to ``GET <url>`` in absolute form, with ``host`` in the Host header."""
    request = f"GET {url} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    with socket.create_connection((traefik.address, traefik.port), timeout=10) as connection:
        connection.sendall(request.encode())
        return connection.recv(64)


def open_in_browser(traefik, host: str, path: str, browser: requests.Session, web_url: str) -> str:
    """What a browser does on its first visit to a notebook host, step by step: sent to the
    web tier, which sends it back with a one-use code, traded for the host's cookie; returns
    the cookie's value."""
    first = through_traefik(traefik, host, path, {"Accept": "text/html"})
    assert first.status_code == 302, first.text
    grant = first.headers["Location"]
    assert grant.startswith(f"{web_url}/auth/notebook/grant/{host.split('.')[0]}?next=")
    back = browser.get(grant, allow_redirects=False, timeout=10)
    assert back.status_code == 302, back.text
    target = urlsplit(back.headers["Location"])
    assert (target.hostname, target.port, target.path) == (host, traefik.port, "/.booklab/grant")
    redeemed = through_traefik(traefik, target.netloc, f"{target.path}?{target.query}")
    assert redeemed.status_code == 302, redeemed.text
    assert redeemed.headers["Location"] == f"http://{host}:{traefik.port}{path}"
    set_cookie = redeemed.headers["Set-Cookie"]
    assert set_cookie.startswith("booklab_notebook=") and "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie
    assert "Domain" not in set_cookie  # that notebook's host only
    replayed = through_traefik(traefik, target.netloc, f"{target.path}?{target.query}")
    assert replayed.status_code == 302 and "Set-Cookie" not in replayed.headers  # the code is used up
    assert replayed.headers["Location"].startswith(f"{web_url}/auth/notebook/grant/")
    return redeemed.cookies["booklab_notebook"]


@pytest.mark.parametrize("publisher", ["docker", "redis"])
def test_only_the_owners_token_reaches_the_notebook_not_its_leaked_url(
    ctx, runners, traefik, web_server, alice, bob, fwd_project, publisher, docker_engine
):
    runners(2, **traefik.runner_env(publisher, auth_url=web_server))
    dep, ready = deploy(ctx, alice)
    slug = ctx.slug(dep.id)
    host, token = f"{slug}.{ctx.config.fqdn}", ready["token"]
    leaked_url = f"/api/status?token={token}"
    bobs, _ = deploy(ctx, bob, "echo")
    bobs_host = f"{ctx.slug(bobs.id)}.{ctx.config.fqdn}"

    # the owner's personal access token, as the API takes it, next to Jupyter's token
    assert through_traefik(traefik, host, leaked_url, {"Authorization": f"Bearer {alice.token}"}).status_code == 200
    assert (
        through_traefik(
            traefik, host, headers={"PRIVATE-TOKEN": alice.token, "Authorization": f"token {token}"}
        ).status_code
        == 200
    )
    # Jupyter still asks for its own token
    assert through_traefik(traefik, host, headers={"PRIVATE-TOKEN": alice.token}).status_code == 403

    # the leaked URL: Jupyter's token alone is refused, in the URL or in the header
    leaked = through_traefik(traefik, host, leaked_url)
    assert leaked.status_code == 401 and leaked.headers["WWW-Authenticate"].startswith("Bearer")
    assert "only for the GitLab user who launched it" in leaked.json()["error"]
    assert through_traefik(traefik, host, headers={"Authorization": f"token {token}"}).status_code == 401
    in_a_browser = through_traefik(traefik, host, leaked_url, {"Accept": "text/html"})
    assert in_a_browser.status_code == 302
    assert in_a_browser.headers["Location"].startswith(f"{web_server}/auth/notebook/grant/{slug}?next=")
    assert token not in in_a_browser.headers["Location"]  # the path travels sealed

    # another GitLab user, or a token GitLab refuses
    other = through_traefik(traefik, host, leaked_url, {"Authorization": f"Bearer {bob.token}"})
    assert other.status_code == 403 and "belongs to the GitLab user alice" in other.json()["error"]
    assert through_traefik(traefik, host, leaked_url, {"Authorization": "Bearer glpat-forged"}).status_code == 401
    # bob asks for alice's host saying it is his own: forward-auth is asked of the host Traefik routed by
    forged = {"Authorization": f"Bearer {bob.token}", "X-Forwarded-Host": bobs_host}
    assert through_traefik(traefik, host, leaked_url, forged).status_code == 403
    assert through_traefik(traefik, bobs_host, "/echo", forged).status_code == 200
    # or his own host in the Host header, alice's in an absolute request line: Traefik routes by the latter
    assert absolute_request(traefik, f"http://{host}{leaked_url}", bobs_host, bob.token).startswith(b"HTTP/1.1 403")
    # the runner's pass for checking its route is gone with the check
    assert not ctx.redis.exists(schema.route_check(slug))
    assert through_traefik(traefik, host, leaked_url, {"X-Booklab-Route-Check": "guess"}).status_code == 401

    if publisher == "docker":  # a middleware of its own
        (container,) = notebook_containers(ctx, docker_engine, dep.id, stopped=False)
        address = container.labels[f"traefik.http.middlewares.{slug}-auth.forwardauth.address"]
        assert address == f"{web_server}/auth/notebook/{slug}"
    else:  # the middleware all routes share, which tells the notebook by its host
        shared = ctx.route_tree.get(schema.traefik_router(slug, "middlewares/0"))
        assert (
            ctx.route_tree.get(schema.traefik_middleware(shared, "forwardAuth/address"))
            == f"{web_server}/auth/notebook"
        )
    service.stop(ctx, dep.id)
    wait_until(lambda: ctx.deployments.status(dep.id) is Phase.STOPPED, 15, "the stop")
    wait_until(lambda: through_traefik(traefik, host).status_code == 404, 10, "Traefik to drop the route")
    assert ctx.route_tree.keys(f"traefik/http/*/{slug}*") == []
    assert not ctx.redis.exists(schema.slug(slug))  # the stopped notebook gave its host name up


def test_the_owners_browser_session_opens_the_notebook_and_no_other_users(
    ctx, runners, traefik, web_server, alice, bob, fwd_project
):
    runners(1, **traefik.runner_env("docker", auth_url=web_server))
    dep, ready = deploy(ctx, alice)
    host, path = f"{ctx.slug(dep.id)}.{ctx.config.fqdn}", f"/api/status?token={ready['token']}"

    alices_browser = log_in_over_http(web_server, alice)
    cookie = open_in_browser(traefik, host, path, alices_browser, web_server)
    opened = through_traefik(traefik, host, path, {"Cookie": f"booklab_notebook={cookie}"})
    assert opened.status_code == 200 and "started" in opened.json()  # Jupyter's own answer
    assert through_traefik(traefik, host, headers={"Cookie": f"booklab_notebook={cookie}"}).status_code == 403
    assert through_traefik(traefik, host, path, {"Cookie": "booklab_notebook=forged"}).status_code == 401

    # bob, logged in to Booklab, with alice's notebook URL: a page that says whose it is
    grant = through_traefik(traefik, host, path, {"Accept": "text/html"}).headers["Location"]
    refused = log_in_over_http(web_server, bob).get(grant, allow_redirects=False, timeout=10)
    assert refused.status_code == 403
    assert "belongs to the GitLab user alice, and you are logged in as bob" in refused.text
    # nobody logged in: to GitLab's login first, and back to this grant after
    anonymous = requests.get(grant, allow_redirects=False, timeout=10)
    assert anonymous.status_code == 302 and anonymous.headers["Location"].endswith("/login/gitlab")

    # logging out of Booklab closes the notebook's host too
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', alices_browser.get(f"{web_server}/", timeout=10).text)
    alices_browser.post(f"{web_server}/logout", data={"csrf_token": csrf.group(1)}, timeout=10)
    assert through_traefik(traefik, host, path, {"Cookie": f"booklab_notebook={cookie}"}).status_code == 401


@pytest.mark.parametrize("publisher", ["docker", "redis"])
def test_the_notebook_never_sees_booklabs_credentials(ctx, runners, traefik, web_server, alice, fwd_project, publisher):
    runners(1, **traefik.runner_env(publisher, auth_url=web_server))
    dep, _ = deploy(ctx, alice, "echo")
    host = f"{ctx.slug(dep.id)}.{ctx.config.fqdn}"

    def seen(headers: dict) -> dict[str, str]:
        response = through_traefik(traefik, host, "/echo", headers)
        assert response.status_code == 200, response.text
        return dict(response.json()["headers"])

    by_bearer = seen({"Authorization": f"Bearer {alice.token}", "Cookie": "_xsrf=1; theme=dark"})
    assert "authorization" not in by_bearer and by_bearer["cookie"] == "_xsrf=1; theme=dark"
    by_header = seen({"PRIVATE-TOKEN": alice.token, "Authorization": "token jupyters-own"})
    assert "private-token" not in by_header and by_header["authorization"] == "token jupyters-own"
    assert "cookie" not in by_header
    cookie = open_in_browser(traefik, host, "/tree", log_in_over_http(web_server, alice), web_server)
    by_cookie = seen({"Cookie": f"_xsrf=1; booklab_notebook={cookie}; theme=dark"})
    assert by_cookie["cookie"] == "_xsrf=1; theme=dark"
    assert alice.token not in str([by_bearer, by_header, by_cookie]) and cookie not in str(by_cookie)


def test_with_forward_auth_off_jupyters_token_alone_opens_the_notebook(
    ctx, runners, traefik, alice, fwd_project, docker_engine
):
    runners(1, **traefik.runner_env("docker"))  # no auth_url: BOOKLAB_ROUTES_FORWARD_AUTH=false
    dep, ready = deploy(ctx, alice)
    host = f"{ctx.slug(dep.id)}.{ctx.config.fqdn}"
    assert through_traefik(traefik, host, f"/api/status?token={ready['token']}").status_code == 200
    assert through_traefik(traefik, host).status_code == 403  # Jupyter's own refusal
    (container,) = notebook_containers(ctx, docker_engine, dep.id, stopped=False)
    assert not any("middlewares" in label for label in container.labels)


def test_the_endpoint_answers_traefik_for_the_owner_only(ctx, web_app, alice, bob, fwd_project):
    """The same endpoint through Flask's test client (real Redis, the GitLab stand-in):
    what each answer carries back for Traefik."""
    client = web_app.test_client(use_cookies=False)  # the Cookie header below as it is
    dep = Deployment(PROJECT, "main", alice.username)
    slug = ctx.slug(dep.id)
    queue_run(ctx, dep)
    url = f"/auth/notebook/{slug}"
    forwarded = {
        "X-Forwarded-Method": "GET",
        "X-Forwarded-Proto": "http",
        "X-Forwarded-Uri": f"/tree?token={URI_TOKEN}",
        "X-Forwarded-Host": f"{slug}.{ctx.config.fqdn}",
    }

    owner = client.get(
        url,
        headers={
            **forwarded,
            "PRIVATE-TOKEN": alice.token,
            "Authorization": "token abc",
            "Cookie": "booklab_notebook=x; _xsrf=1; booklab_session=y; theme=dark",
        },
    )
    assert owner.status_code == 200
    assert owner.headers["Authorization"] == "token abc" and "Private-Token" not in owner.headers
    assert owner.headers["Cookie"] == "_xsrf=1; theme=dark"
    bearer = client.get(url, headers={**forwarded, "Authorization": f"Bearer {alice.token}"})
    assert bearer.status_code == 200 and "Authorization" not in bearer.headers and "Cookie" not in bearer.headers
    assert client.get(url, headers={**forwarded, "Authorization": f"Bearer {bob.token}"}).status_code == 403
    assert client.get(url, headers=forwarded).status_code == 401
    browser = client.get(url, headers={**forwarded, "Accept": "text/html,application/xhtml+xml"})
    # the token the browser sent in its URL is not sent back in the redirect (a slug's hex could hold "abc")
    assert browser.status_code == 302 and URI_TOKEN not in browser.headers["Location"]
    web_url = web_app.extensions["booklab"].config.web_url
    assert browser.headers["Location"].startswith(f"{web_url}/auth/notebook/grant/{slug}?next=")
    # a notebook's cookie opens that notebook only
    other = Deployment(PROJECT, "echo", alice.username)
    queue_run(ctx, other)
    assert (
        client.get(
            f"/auth/notebook/{ctx.slug(other.id)}", headers={**forwarded, "Cookie": "booklab_notebook=x"}
        ).status_code
        == 401
    )
    # unknown or malformed slugs
    assert client.get("/auth/notebook/nothing-here-0123456789abcdef", headers=forwarded).status_code == 404
    assert client.get("/auth/notebook/Not_A_Slug", headers=forwarded).status_code == 404


def test_the_endpoint_the_routes_share_tells_the_notebook_by_its_host(ctx, web_app, alice, bob, fwd_project):
    """``/auth/notebook`` (the Redis provider's routes): the same answers, for the notebook at the request's host
    as Traefik forwards it; a host that is no notebook's opens nothing."""
    client = web_app.test_client(use_cookies=False)
    dep = Deployment(PROJECT, "main", alice.username)
    queue_run(ctx, dep)
    host = f"{ctx.slug(dep.id)}.{ctx.config.fqdn}"

    def answer(forwarded_host: str | None, token: str) -> int:
        headers = {"X-Forwarded-Uri": "/tree", "Authorization": f"Bearer {token}"}
        if forwarded_host is not None:
            headers["X-Forwarded-Host"] = forwarded_host
        return client.get("/auth/notebook", headers=headers).status_code

    assert answer(host, alice.token) == 200
    assert answer(f"{host.upper()}:8000", alice.token) == 200  # a host's name has no case; the port is not its name
    assert answer(host, bob.token) == 403
    for elsewhere in (None, "", ctx.config.fqdn, f"{host}.evil.example", f"www.{host}", "evil.example"):
        assert answer(elsewhere, alice.token) == 404, elsewhere


def test_routes_ask_the_web_tier_before_every_notebook_request():
    config = Config(fqdn="example.org", routes_auth_url="http://web:8080")
    labels = DockerLabelRoutes(config, None, None).labels(SLUG)
    assert labels[f"traefik.http.routers.{SLUG}.middlewares"] == f"{SLUG}-auth"
    assert (
        labels[f"traefik.http.middlewares.{SLUG}-auth.forwardauth.address"] == f"http://web:8080/auth/notebook/{SLUG}"
    )
    assert (
        labels[f"traefik.http.middlewares.{SLUG}-auth.forwardauth.authResponseHeadersRegex"]
        == "(?i)^(Authorization|Private\\-Token|Cookie)$"
    )
    assert labels[f"traefik.http.middlewares.{SLUG}-auth.forwardauth.trustForwardHeader"] == "false"
    # the Redis provider's routes share one middleware, named after what it asks
    shared = shared_auth_middleware(config)
    assert auth_pairs(config, SLUG) == {f"traefik/http/routers/{SLUG}/middlewares/0": shared}
    assert shared_auth_pairs(config)[f"traefik/http/middlewares/{shared}/forwardAuth/address"] == (
        "http://web:8080/auth/notebook"
    )
    assert shared_auth_pairs(config)[f"traefik/http/middlewares/{shared}/forwardAuth/trustForwardHeader"] == "false"
    assert shared_auth_middleware(Config(fqdn="example.org", routes_auth_url="http://web2:8080")) != shared
    assert (
        auth_address(Config(web_url="https://booklab.example.org/"), SLUG)
        == f"https://booklab.example.org/auth/notebook/{SLUG}"
    )
    off = Config(routes_forward_auth=False)
    assert DockerLabelRoutes(off, None, None).labels(SLUG) == docker_labels(off, SLUG)
    with pytest.raises(ConfigError, match="routes/auth_url is missing"):
        DockerLabelRoutes(Config(), None, None).labels(SLUG)
    with pytest.raises(ConfigError, match="routes/auth_url must be a base URL"):
        load(None, environ={"BOOKLAB_ROUTES_AUTH_URL": "web:8080"})
    assert load(None, environ={}).routes_forward_auth is True  # on by default
