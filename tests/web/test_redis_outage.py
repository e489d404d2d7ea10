"""Redis down: the web tier answers 503 with a message (JSON for the API and event
streams) to pages and API calls while its own redis-server is stopped, keeps the user's
session cookie (no logout, no login loop), and serves everything again, still logged in,
once a redis-server answers on the same port: no restart of the web tier."""

from __future__ import annotations

import os

import pytest

from booklab import config as config_module
from booklab.context import Context
from booklab.web import create_app, outage
from tests.fixtures.web import csrf_token, log_in

SESSION_COOKIE = "booklab_session"


@pytest.fixture
def outage_app(web_env, own_redis):
    context = Context(config_module.load(os.devnull, environ={**web_env, "BOOKLAB_REDIS_URL": own_redis.url}))
    app = create_app(context=context)
    yield app
    context.close()


def sets_the_session_cookie(answer) -> bool:
    return any(header.startswith(f"{SESSION_COOKIE}=") for header in answer.headers.getlist("Set-Cookie"))


def test_while_redis_is_down_pages_and_api_answer_503_then_recover_by_themselves(
    outage_app, own_redis, alice, plain_project
):
    browser = outage_app.test_client()  # a logged-in person: the session cookie
    log_in(browser, alice)
    token = csrf_token(browser)
    script = outage_app.test_client()  # the CLI: a GitLab token, no cookie
    auth = {"Authorization": f"Bearer {alice.token}"}
    assert browser.get("/api/user").json["username"] == alice.username
    assert script.get("/api/deployments", headers=auth).status_code == 200

    requests = [  # (who, method, path, keyword arguments, JSON?, status once Redis is back)
        (browser, "GET", "/", {}, False, 200),
        (browser, "GET", "/projects/demo/notebooks", {}, False, 200),
        (browser, "GET", "/v2/gl/demo%2Fnotebooks/main", {}, False, 200),
        (browser, "GET", "/no/such/page", {}, False, 404),
        (browser, "GET", "/api/deployments", {}, True, 200),
        (
            browser,
            "POST",
            "/launch",
            {"data": {"project": plain_project, "ref": "main", "csrf_token": token}},
            False,
            303,
        ),
        (script, "GET", "/api/deployments", {"headers": auth}, True, 200),
        (
            script,
            "POST",
            "/api/deployments",
            {"headers": auth, "json": {"project": plain_project, "ref": "dev"}},
            True,
            201,
        ),
        (script, "GET", "/build/gl/demo%2Fmissing/main", {"headers": auth}, True, 200),
    ]

    own_redis.stop()
    for who, method, path, kwargs, is_json, _ in requests:
        answer = who.open(path, method=method, **kwargs)
        assert answer.status_code == 503, (method, path, answer.status_code, answer.get_data(as_text=True))
        assert answer.headers["Retry-After"] == str(outage.RETRY_AFTER)
        if is_json:
            assert answer.is_json and answer.json == {"error": outage.MESSAGE}, (method, path)
        else:
            assert answer.mimetype == "text/html" and outage.MESSAGE.replace("'", "&#39;") in answer.text, path
        assert not sets_the_session_cookie(answer), (method, path, "changed or cleared the session cookie")
        assert answer.headers["X-Content-Type-Options"] == "nosniff"  # security headers on the 503 too
    # logging in needs Redis for the OAuth state: 503 rather than a login that cannot end
    answer = outage_app.test_client().get("/login/gitlab")
    assert answer.status_code == 503 and "Location" not in answer.headers
    assert "Set-Cookie" not in answer.headers
    # what needs no Redis is still served: static files (even with the cookie), /health's own answer
    with browser.get("/static/booklab.css") as css:
        assert css.status_code == 200
    health = browser.get("/health")
    assert health.status_code == 503 and health.json["reason"] == "Redis does not answer."

    own_redis.start()  # the same port: the web tier was not restarted
    for who, method, path, kwargs, is_json, status in requests:
        answer = who.open(path, method=method, **kwargs)
        assert answer.status_code == status, (method, path, answer.status_code, answer.get_data(as_text=True))
        assert answer.is_json == is_json or path.startswith("/build/"), (method, path)
    assert "@" + alice.username in browser.get("/").text  # still logged in: the session outlived the outage
    assert browser.get("/api/user").json["username"] == alice.username
    assert sorted(d["ref"] for d in browser.get("/api/deployments").json["deployments"]) == ["dev", "main"]
