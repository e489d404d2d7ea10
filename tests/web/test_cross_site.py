"""Cookie tossing and cross-site launches (issue 12, attack 6): a notebook host is the same
site as the web tier, so a notebook page's script sends the user's Booklab cookie with its
requests, and can plant cookies for the parent domain. The session cookie alone starts a
deployment only from a Booklab page or a launch link the user clicked, and over https the
session cookie is a ``__Host-`` cookie that no other host can plant."""

from __future__ import annotations

import html
import json
import os

import pytest

from booklab import config as config_module
from booklab.context import Context
from booklab.state.deployment import Deployment
from booklab.web import create_app
from tests.fixtures.web import csrf_token, log_in

LAUNCH = "/v2/gl/demo%2Fnotebooks/main"
STREAM = "/build/gl/demo%2Fnotebooks/main"
#: what a notebook page's fetch() sends (with the user's cookies: same site)
NOTEBOOK_FETCH = {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}
#: a notebook page's script sending the whole window to a launch link, no click of the user's
SCRIPTED_NAVIGATION = {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
#: the user clicking a launch link in a README on another site
CLICKED_LINK = {**SCRIPTED_NAVIGATION, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-User": "?1"}


def first_event(client, url: str, headers: dict[str, str] | None = None) -> dict:
    """The first event of the stream at ``url`` (then the stream is closed)."""
    with client.get(url, headers=headers, buffered=False) as answer:
        assert answer.status_code == 200
        for chunk in answer.response:
            for line in chunk.decode().splitlines():
                if line.startswith("data: "):
                    return json.loads(line[len("data: ") :])
    raise AssertionError(f"{url} sent no event")


def deployment_status(ctx, alice):
    return ctx.deployments.status(Deployment("demo/notebooks", "main", alice.username).id)


def stream_url(page_html: str) -> str | None:
    """The event stream the deploy page opens (None: the page is not the deploy page)."""
    start = page_html.find('id="deploy-config">')
    if start < 0:
        return None
    body = page_html[start + len('id="deploy-config">') : page_html.index("</script>", start)]
    return json.loads(html.unescape(body))["streamUrl"]


@pytest.mark.parametrize(
    "headers", [NOTEBOOK_FETCH, {"Sec-Fetch-Site": "cross-site"}], ids=["notebook page fetch", "other site"]
)
def test_a_request_from_elsewhere_starts_no_deployment_from_the_cookie(logged_in, alice, plain_project, ctx, headers):
    failed = first_event(logged_in, STREAM, headers)
    assert failed["phase"] == "failed" and "came from another page than Booklab's" in failed["message"]
    assert deployment_status(ctx, alice) is None


def test_a_cookie_without_fetch_metadata_starts_nothing(web_app, alice, plain_project, ctx):
    with web_app.test_client() as old_browser:  # no Sec-Fetch-* headers at all
        log_in(old_browser, alice)
        failed = first_event(old_browser, STREAM)
        assert failed["phase"] == "failed" and "did not say where from" in failed["message"]
        page = old_browser.get(LAUNCH)
        assert stream_url(page.text) is None and "nothing was launched" in page.text
    assert deployment_status(ctx, alice) is None


@pytest.mark.parametrize(
    "headers", [SCRIPTED_NAVIGATION, {**CLICKED_LINK, "Sec-Fetch-Dest": "iframe"}], ids=["scripted navigation", "frame"]
)
def test_a_launch_link_no_click_opened_asks_for_one(logged_in, alice, plain_project, ctx, headers):
    page = logged_in.get(LAUNCH, headers=headers)
    assert page.status_code == 200
    assert stream_url(page.text) is None  # no event stream that would start it
    assert "nothing was launched" in page.text and 'action="/launch"' in page.text
    assert 'name="csrf_token"' in page.text and 'name="project" value="demo/notebooks"' in page.text
    assert deployment_status(ctx, alice) is None


def test_a_clicked_launch_link_from_another_site_still_launches(logged_in, alice, plain_project, ctx):
    page = logged_in.get(LAUNCH, headers=CLICKED_LINK)
    url = stream_url(page.text)
    assert url is not None and url.endswith(STREAM)  # the stream that starts it
    with logged_in.get(STREAM, buffered=False) as stream:  # the page's own EventSource: same-origin
        assert stream.status_code == 200
    assert deployment_status(ctx, alice) is not None


def test_over_https_the_session_cookie_is_host_only_and_cannot_be_planted(web_env, logged_in, alice):
    planted = logged_in.get_cookie("booklab_session").value  # a valid session: the attacker's, say
    context = Context(
        config_module.load(os.devnull, environ={**web_env, "BOOKLAB_WEB_URL": "https://booklab.example.org"})
    )
    try:
        with create_app(context=context).test_client() as client:
            start = client.get("/login/gitlab")  # the session now holds OAuth's state: a cookie is set
            (cookie,) = start.headers.getlist("Set-Cookie")
            attributes = [part.strip() for part in cookie.split(";")]
            assert attributes[0].startswith("__Host-booklab_session=")
            assert {"Secure", "HttpOnly", "Path=/", "SameSite=Lax"} <= set(attributes)
            assert not any(a.lower().startswith("domain=") for a in attributes)

            # a notebook host tossed "booklab_session=<id>; Domain=example.org": not a session here
            client.delete_cookie("__Host-booklab_session")
            client.set_cookie("booklab_session", planted, domain="example.org")
            assert client.get("/api/user").status_code == 401
    finally:
        context.close()


def test_the_launch_button_keeps_the_links_urlpath(logged_in, alice, plain_project, ctx):
    page = logged_in.get(f"{LAUNCH}?urlpath=tree/docs", headers=SCRIPTED_NAVIGATION)
    assert 'name="urlpath" value="tree/docs"' in page.text
    launched = logged_in.post(
        "/launch",
        data={"csrf_token": csrf_token(logged_in), "project": "demo/notebooks", "ref": "main", "urlpath": "tree/docs"},
    )
    assert launched.status_code == 303 and launched.headers["Location"] == f"{LAUNCH}?urlpath=tree%2Fdocs"
    assert deployment_status(ctx, alice) is not None
    hostile = logged_in.post(
        "/launch",
        data={
            "csrf_token": csrf_token(logged_in),
            "project": "demo/notebooks",
            "ref": "main",
            "urlpath": "//elsewhere.example/x",
        },
    )
    assert hostile.headers["Location"] == LAUNCH  # not a path inside the notebook: dropped
