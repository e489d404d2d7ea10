"""Login with GitLab through the stand-in's OAuth flow, the session cookie, logout, and a
GitLab token that expires or is revoked."""

from __future__ import annotations

import os
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from booklab import config as config_module
from booklab.context import Context
from booklab.state.grants import Pair
from booklab.web import create_app
from booklab.web.auth import safe_next
from booklab.web.logins import GRANT_KEY
from tests.fixtures.web import (
    TEST_CLIENT_CALLBACK,
    csrf_token,
    log_in,
    sign_in_at_gitlab,
)


def cookie_header(response, name: str = "booklab_session") -> str:
    return next(v for k, v in response.headers.items() if k == "Set-Cookie" and v.startswith(f"{name}="))


def login_of(ctx, web_client) -> tuple[str, Pair]:
    """(grant id, token pair) of the client's session's GitLab login."""
    with web_client.session_transaction() as session:
        grant_id = session[GRANT_KEY]
    return grant_id, ctx.grants.get(grant_id)


def expire(ctx, web_client) -> str:
    """Make the session's login look expired to Booklab; its access token."""
    grant_id, pair = login_of(ctx, web_client)
    ctx.grants.put(grant_id, Pair(pair.access_token, pair.refresh_token, time.time() - 5))
    return pair.access_token


def test_login_through_gitlab_shows_my_projects(web_client, ctx, gitlab, alice, plain_project, redis_client):
    landing = web_client.get("/")
    assert landing.status_code == 200 and "Log in with GitLab" in landing.text

    start = web_client.get("/login/gitlab")
    authorize = urlsplit(start.headers["Location"])
    assert f"{authorize.scheme}://{authorize.netloc}{authorize.path}" == f"{gitlab.url}/oauth/authorize"
    query = parse_qs(authorize.query)
    assert query["scope"] == ["api"]
    assert query["redirect_uri"] == [TEST_CLIENT_CALLBACK]
    cookie_before = cookie_header(start).split(";")[0]

    callback = urlsplit(sign_in_at_gitlab(start.headers["Location"], alice))
    done = web_client.get(f"{callback.path}?{callback.query}")
    assert done.status_code == 302 and done.headers["Location"] == "/"
    cookie = cookie_header(done)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert cookie.split(";")[0] != cookie_before  # a new session id at login

    home = web_client.get("/")
    assert "@alice" in home.text and plain_project in home.text
    # the session and the login live in Redis, encrypted: neither the cookie nor Redis shows GitLab's token
    stored = [redis_client.get(key) for key in redis_client.keys("websession:*") + redis_client.keys("grant:*")]
    assert len(stored) == 2 and not any("access_token" in value for value in stored)
    _, pair = login_of(ctx, web_client)
    assert not any(secret in value for secret in (pair.access_token, pair.refresh_token) for value in [cookie, *stored])


def test_a_launch_link_logs_in_first_then_comes_back(web_client, alice, plain_project, redis_client):
    link = "/v2/gl/demo%2Fnotebooks/feature/%C3%A9t%C3%A9?urlpath=tree%2Fhello.ipynb"
    first = web_client.get(link)
    assert first.status_code == 302 and first.headers["Location"] == "/login/gitlab"
    assert log_in(web_client, alice, start="/login/gitlab") == link
    page = web_client.get(link)
    assert page.status_code == 200 and "feature/été" in page.text
    assert redis_client.hgetall("status") == {}  # seeing the page creates nothing by itself


def test_logout_ends_the_session_on_the_server(web_client, alice, plain_project):
    log_in(web_client, alice)
    old_cookie = web_client.get_cookie("booklab_session").value
    refused = web_client.post("/logout")
    assert refused.status_code == 400 and "@alice" in web_client.get("/").text

    out = web_client.post("/logout", data={"csrf_token": csrf_token(web_client)})
    assert out.status_code == 302
    assert "Log in with GitLab" in web_client.get("/").text
    web_client.set_cookie("booklab_session", old_cookie)  # a copy of the old cookie is worth nothing
    assert "Log in with GitLab" in web_client.get("/").text


def test_an_expired_token_is_refreshed_without_asking(web_client, ctx, gitlab, alice, plain_project):
    log_in(web_client, alice)
    old = expire(ctx, web_client)
    home = web_client.get("/")
    assert home.status_code == 200 and plain_project in home.text
    assert login_of(ctx, web_client)[1].access_token != old
    assert [r.status for r in gitlab.request_log() if r.path == "/oauth/token"][-1] == 200


def test_gitlab_failing_to_refresh_a_login_keeps_me_logged_in(web_client, ctx, gitlab, alice, plain_project):
    log_in(web_client, alice)
    expire(ctx, web_client)
    gitlab.fail_next(r"^/oauth/token$", status=502)
    home = web_client.get("/")
    assert home.status_code == 200 and "@alice" in home.text and plain_project in home.text
    assert [r.status for r in gitlab.request_log() if r.path == "/oauth/token"][-1] == 502


def revoke(gitlab, web_env, refresh_token: str) -> None:
    """Rotate the token out of band (as another client of the app would): GitLab then
    refuses both the old access token and the old refresh token."""
    answer = requests.post(
        f"{gitlab.url}/oauth/token",
        timeout=10,
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": web_env["BOOKLAB_GITLAB_CONSUMER_KEY"],
            "client_secret": web_env["BOOKLAB_GITLAB_CONSUMER_SECRET"],
        },
    )
    assert answer.status_code == 200


def test_a_revoked_token_sends_me_to_log_in_again(web_client, ctx, gitlab, web_env, alice, plain_project):
    log_in(web_client, alice)
    revoke(gitlab, web_env, login_of(ctx, web_client)[1].refresh_token)
    page = web_client.get("/projects/demo/notebooks")
    assert page.status_code == 302 and page.headers["Location"] == "/login/gitlab"
    assert log_in(web_client, alice, start="/login/gitlab") == "/projects/demo/notebooks"
    assert web_client.get("/projects/demo/notebooks").status_code == 200


def test_an_expired_token_that_cannot_be_refreshed_sends_me_to_log_in(
    web_client, ctx, gitlab, web_env, alice, plain_project
):
    log_in(web_client, alice)
    revoke(gitlab, web_env, login_of(ctx, web_client)[1].refresh_token)
    expire(ctx, web_client)
    home = web_client.get("/")
    assert "Log in with GitLab" in home.text and "log in again" in home.text
    launch = web_client.get("/v2/gl/demo%2Fnotebooks/main")
    assert launch.status_code == 302 and launch.headers["Location"] == "/login/gitlab"


def test_under_https_the_cookie_is_secure_and_the_callback_uses_the_public_url(ctx, web_env):
    env = {**web_env, "BOOKLAB_WEB_URL": "https://booklab.example.org"}
    context = Context(config_module.load(os.devnull, environ=env))
    try:
        with create_app(context=context).test_client() as client:
            start = client.get("/login/gitlab")
    finally:
        context.close()
    assert "Secure" in cookie_header(start, "__Host-booklab_session")
    query = parse_qs(urlsplit(start.headers["Location"]).query)
    assert query["redirect_uri"] == ["https://booklab.example.org/login/gitlab/authorized"]


@pytest.mark.parametrize(
    "url, safe",
    [
        ("/v2/gl/g%2Fp/main?urlpath=lab", "/v2/gl/g%2Fp/main?urlpath=lab"),
        ("/", "/"),
        ("//evil.example/steal", None),
        ("/\\evil.example/steal", None),
        ("https://evil.example/", None),
        ("", None),
        (None, None),
        (["/"], None),
    ],
)
def test_only_a_path_on_this_site_is_a_place_to_go_back_to(url, safe):
    assert safe_next(url) == safe
