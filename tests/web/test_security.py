"""The web tier's hardening: CSRF on every state-changing route (found in the app's URL
map, so a new route without the check fails here), security headers on every kind of
response, a Content-Security-Policy that the pages live with in a real browser, and
``/metrics`` behind its own token."""

from __future__ import annotations

import os
from html.parser import HTMLParser
from urllib.parse import quote, urlsplit

import pytest
import redis
import requests
from flask import Flask
from flask.testing import FlaskClient

from booklab import config as config_module
from booklab import service
from booklab.context import Context
from booklab.phases import Phase
from booklab.web import create_app, csrf
from tests.fixtures.web import csrf_token, log_in, log_in_with_the_browser

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
#: what csrf.py answers a request without its token (Flask-WTF's status; the message says why)
CSRF_REFUSED = 400
#: routes that change state today; the test also covers any other the URL map holds
KNOWN_UNSAFE = {
    ("POST", "/logout"),
    ("POST", "/launch"),
    ("POST", "/api/deployments"),
    ("POST", "/api/deployments/<path:deployment_id>/stop"),
    ("POST", "/api/deployments/<path:deployment_id>/retry"),
}
METRICS_TOKEN = "metrics-token-for-the-test-3b9f"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def redis_snapshot(url: str) -> dict[bytes, bytes]:
    """Every key of Booklab's Redis with its serialized value (not its TTL), but the rate
    limits' counters (a refused request counts, and changes nothing else)."""
    with redis.Redis.from_url(url) as raw:
        return {key: raw.dump(key) for key in raw.scan_iter(count=1000) if not key.startswith(b"ratelimit:")}


def unsafe_routes(app: Flask) -> list[tuple[str, str, str]]:
    """(method, rule, endpoint) of every route that accepts a state-changing method;
    logout last (it ends the session the others use)."""
    found = [
        (method, rule.rule, rule.endpoint)
        for rule in app.url_map.iter_rules()
        for method in sorted(rule.methods - SAFE_METHODS)
    ]
    return sorted(found, key=lambda route: (route[2] == "auth.logout", route[1], route[0]))


def url_for_rule(app: Flask, method: str, endpoint: str, rule: str, samples: dict[str, str]) -> str:
    arguments = next(r.arguments for r in app.url_map.iter_rules() if r.rule == rule)
    values = {name: samples.get(name, "sample") for name in arguments}
    return app.url_map.bind("localhost").build(endpoint, values, method=method)


def is_csrf_refusal(answer) -> bool:
    return answer.status_code == CSRF_REFUSED and csrf.REFUSED in answer.get_data(as_text=True)


def still_logged_in_as(client: FlaskClient, username: str) -> bool:
    answer = client.get("/api/user")
    return answer.status_code == 200 and answer.json["username"] == username


def test_every_state_changing_route_refuses_a_session_without_its_csrf_token(
    web_app, logged_in, ctx, alice, plain_project, redis_url
):
    token = csrf_token(logged_in)
    assert token  # the session has one: a refusal below is not for want of any
    deployment = service.request_deployment(ctx, plain_project, "main", alice.token).id
    samples = {"deployment_id": deployment}
    form = {"project": plain_project, "ref": "main"}
    routes = unsafe_routes(web_app)
    assert KNOWN_UNSAFE <= {(method, rule) for method, rule, _ in routes}, routes

    for method, rule, endpoint in routes:
        url = url_for_rule(web_app, method, endpoint, rule, samples)
        blueprint = endpoint.rpartition(".")[0]
        forgeries = {
            "no token": ({}, form),
            "a forged token": ({csrf.HEADER: "forged"}, {**form, csrf.FIELD: "forged"}),
            "an empty token": ({csrf.HEADER: ""}, {**form, csrf.FIELD: ""}),
        }
        if blueprint not in csrf.TOKEN_BLUEPRINTS:  # a token header does not excuse a cookie-driven view
            forgeries["a stray Authorization header"] = ({"Authorization": "Bearer whatever"}, form)
        for what, (headers, data) in forgeries.items():
            before = redis_snapshot(redis_url)
            answer = logged_in.open(url, method=method, headers=headers, data=data)
            assert is_csrf_refusal(answer), (method, rule, what, answer.status_code, answer.get_data(as_text=True))
            assert redis_snapshot(redis_url) == before, (method, rule, what, "changed Booklab's state")
            assert still_logged_in_as(logged_in, alice.username), (method, rule, what)
        if blueprint in csrf.TOKEN_BLUEPRINTS:
            # a token-authenticated call never falls back on the cookie: a bad token is 401
            before = redis_snapshot(redis_url)
            answer = logged_in.open(url, method=method, headers=bearer("glpat-not-a-token"), data=form)
            assert answer.status_code == 401, (method, rule, answer.status_code)
            assert redis_snapshot(redis_url) == before, (method, rule, "a bad token changed Booklab's state")

    # the same requests with the page's token go through: the refusals above were the CSRF check
    for method, rule, endpoint in routes:
        url = url_for_rule(web_app, method, endpoint, rule, samples)
        answer = logged_in.open(url, method=method, headers={csrf.HEADER: token}, data={**form, csrf.FIELD: token})
        assert not is_csrf_refusal(answer), (method, rule)
        if rule in {r for _, r in KNOWN_UNSAFE}:
            assert answer.status_code < 400, (method, rule, answer.status_code, answer.get_data(as_text=True))
    assert not still_logged_in_as(logged_in, alice.username)  # /logout, last, did log out


def test_a_gitlab_token_needs_no_csrf_token_even_beside_the_cookie(logged_in, alice, plain_project, ctx):
    answer = logged_in.post(
        "/api/deployments", headers=bearer(alice.token), json={"project": plain_project, "ref": "main"}
    )
    assert answer.status_code == 201
    stopped = logged_in.post(f"/api/deployments/{quote(answer.json['id'], safe='')}/stop", headers=bearer(alice.token))
    assert stopped.status_code == 202 and ctx.deployments.status(answer.json["id"]) is Phase.STOPPED


def csp_directives(response) -> dict[str, list[str]]:
    policy = response.headers.get("Content-Security-Policy", "")
    directives = {}
    for part in filter(None, (p.strip() for p in policy.split(";"))):
        name, *values = part.split()
        directives[name] = values
    return directives


def assert_security_headers(response, what: str, gitlab_url: str) -> None:
    headers = response.headers
    assert headers.get("X-Content-Type-Options") == "nosniff", what
    assert headers.get("X-Frame-Options") == "DENY", what
    assert headers.get("Referrer-Policy") == "same-origin", what
    assert "Strict-Transport-Security" not in headers, what  # web/url is not https here
    directives = csp_directives(response)
    gitlab = urlsplit(gitlab_url)
    assert directives.get("default-src") == ["'none'"], (what, directives)
    assert directives.get("frame-ancestors") == ["'none'"], (what, directives)
    for name in ("script-src", "style-src", "connect-src", "img-src", "font-src"):
        assert directives.get(name) == ["'self'"], (what, name, directives)
    assert directives.get("form-action") == ["'self'", f"{gitlab.scheme}://{gitlab.netloc}"], (what, directives)
    assert directives.get("base-uri") == ["'none'"], (what, directives)


def test_security_headers_on_every_kind_of_response(web_server, logged_in, alice, plain_project, gitlab_server):
    # requests without the session go over real HTTP: the test client's preserved context
    # (the logged-in client's ``with`` block) would lend them the logged-in request's ``g``
    with requests.Session() as anonymous:
        answers = {
            "home page": (logged_in.get("/"), 200),
            "project page": (logged_in.get("/projects/demo/notebooks"), 200),
            "deploy page": (logged_in.get("/v2/gl/demo%2Fnotebooks/main"), 200),
            "API JSON": (logged_in.get("/api/deployments"), 200),
            "404 page": (logged_in.get("/no/such/page"), 404),
            "CSRF refusal": (logged_in.post("/launch", data={"project": plain_project, "ref": "main"}), 400),
            "stylesheet": (logged_in.get("/static/booklab.css"), 200),
            "landing page": (anonymous.get(web_server + "/"), 200),
            "redirect to log in": (
                anonymous.get(web_server + "/v2/gl/demo%2Fnotebooks/main", allow_redirects=False),
                302,
            ),
            "API 401": (anonymous.get(web_server + "/api/user", headers=bearer("glpat-not-a-token")), 401),
            "event stream": (
                anonymous.get(web_server + "/build/gl/demo%2Fmissing/main", headers=bearer(alice.token)),
                200,
            ),
            "script": (anonymous.get(web_server + "/static/deploy.js"), 200),
            "badge": (anonymous.get(web_server + "/badge.svg"), 200),
            "health": (anonymous.get(web_server + "/health"), 503),  # no runner
            "metrics, off": (anonymous.get(web_server + "/metrics"), 404),
        }
    try:
        assert answers["event stream"][0].headers["Content-Type"].startswith("text/event-stream")
        for what, (answer, status) in answers.items():
            assert answer.status_code == status, (what, answer.status_code)
            assert_security_headers(answer, what, gitlab_server.url)
    finally:
        for answer, _ in answers.values():
            answer.close()


@pytest.mark.parametrize(
    "url, hsts", [("https://booklab.example.org", "max-age=31536000"), ("http://booklab.example.org", None)]
)
def test_strict_transport_security_only_when_web_url_is_https(web_env, url, hsts):
    context = Context(config_module.load(os.devnull, environ={**web_env, "BOOKLAB_WEB_URL": url}))
    try:
        with create_app(context=context).test_client() as client, client.get("/static/booklab.css") as answer:
            assert answer.status_code == 200
            # no includeSubDomains: notebooks live on subdomains, maybe over plain http
            assert answer.headers.get("Strict-Transport-Security") == hsts
    finally:
        context.close()


class PolicyAudit(HTMLParser):
    """What in a page the Content-Security-Policy would block: inline scripts (a JSON data
    block is not one), inline styles, event-handler attributes, javascript: URLs, and
    resources from elsewhere than Booklab."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        for name, value in attrs:
            if name.startswith("on") or name == "style" or (value or "").strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}={value!r}>")
        if tag == "style":
            self.problems.append("<style> element")
        if tag == "script":
            self.scripts += 1
            if not attributes.get("src") and attributes.get("type") != "application/json":
                self.problems.append("inline <script>")
        for name in ("src", "href"):
            value = attributes.get(name) or ""
            if tag != "a" and value and not value.startswith("/"):
                self.problems.append(f"<{tag} {name}={value!r}> not from Booklab")


def test_pages_hold_nothing_their_policy_forbids(web_server, logged_in, plain_project):
    pages = {
        path: logged_in.get(path).text
        for path in ("/", "/projects/demo/notebooks", "/v2/gl/demo%2Fnotebooks/main", "/no/such/page")
    }
    pages["landing"] = requests.get(web_server + "/", timeout=10).text  # see the headers test
    scripts = {}
    for path, page in pages.items():
        audit = PolicyAudit()
        audit.feed(page)
        assert audit.problems == [], path
        scripts[path] = audit.scripts
    assert scripts["/v2/gl/demo%2Fnotebooks/main"] == 3  # its settings (JSON), copy.js, deploy.js


def test_a_real_browser_runs_the_pages_under_their_policy(
    browser, web_server, alice, plain_project, ctx, gitlab_server
):
    """Log in, Launch, watch the deploy page's script follow the stream and Stop through
    the API (fetch with the CSRF header), and, once the login is gone, a Launch form that
    is redirected to GitLab's sign-in: with no policy violation reported on the way."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    violations: list[str] = []
    page.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
    )

    log_in_with_the_browser(page, web_server, alice)
    page.get_by_role("link", name=plain_project).click()
    page.get_by_role("button", name="Launch").click()
    page.wait_for_url(web_server + "/v2/gl/demo%2Fnotebooks/main")
    page.locator("#status").filter(has_text="position 1 in the queue").wait_for()  # the script follows the stream
    page.get_by_role("button", name="Stop").click()
    page.get_by_role("button", name="Launch again").wait_for()  # the API answered, the stream said stopped
    assert ctx.deployments.status(f"{plain_project}:main:{alice.username}") is Phase.STOPPED

    page.goto(web_server + "/projects/" + plain_project)
    for key in ctx.redis.scan_iter("websession:*"):  # the login ends (expired, or logged out elsewhere)
        ctx.redis.delete(key)
    page.get_by_role("button", name="Launch").click()
    page.get_by_label("Username or primary email").wait_for()  # GitLab's sign-in, reached from the form
    assert page.url.startswith(gitlab_server.url)
    context.close()
    assert violations == []


def metrics_app(web_env: dict[str, str], **settings: str) -> tuple[Flask, Context]:
    context = Context(config_module.load(os.devnull, environ={**web_env, **settings}))
    return create_app(context=context), context


def test_metrics_are_off_while_their_token_is_not_set(web_client, alice):
    for headers in ({}, bearer(METRICS_TOKEN), bearer(alice.token)):
        answer = web_client.get("/metrics", headers=headers)
        assert answer.status_code == 404 and answer.is_json
        assert "web/metrics_token" in answer.json["error"] and "BOOKLAB_WEB_METRICS_TOKEN" in answer.json["error"]
    assert web_client.get("/health").status_code == 503  # /health stays open (503: no runner)


def test_metrics_answer_their_token_only(web_env, ctx, alice):
    app, context = metrics_app(web_env, BOOKLAB_WEB_METRICS_TOKEN=METRICS_TOKEN)
    try:
        with app.test_client() as client:
            log_in(client, alice)  # a logged-in session is no metrics token
            for headers in (
                {},
                bearer("wrong"),
                bearer(METRICS_TOKEN + "x"),
                {"Authorization": METRICS_TOKEN},
                {"Authorization": f"Basic {METRICS_TOKEN}"},
                {"PRIVATE-TOKEN": METRICS_TOKEN},
                bearer(alice.token),
            ):
                answer = client.get("/metrics", headers=headers)
                assert answer.status_code == 401, headers
                assert answer.headers["WWW-Authenticate"].lower().startswith("bearer")
                assert "web/metrics_token" in answer.json["error"] and METRICS_TOKEN not in answer.text
            answer = client.get("/metrics", headers=bearer(METRICS_TOKEN))
            assert answer.status_code == 200 and answer.mimetype == "text/plain"
            assert "booklab_queue_length" in answer.text
            assert client.get("/health").status_code == 503  # open, without any token (503: no runner)
    finally:
        context.close()
