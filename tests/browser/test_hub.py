"""Hub mode in a real headless Chromium: alice launches from Booklab's page and lands, through the hub's
GitLab login, in her own server of the site's JupyterHub, listing the repository's files; bob, logged in to
the same hub, cannot open it.

Screenshots of alice's server and of bob's refusal are saved in ``test-artifacts/``.
"""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS
from tests.fixtures.pipeline import MAINTAINER
from tests.fixtures.web import log_in_with_the_browser, push_notebook_project, sign_in_on_the_page

PROJECT = "demo/hubbed"


def test_a_launch_lands_in_the_users_own_hub_server_which_another_user_cannot_open(
    browser, web_server, hub, runners, gitlab, alice, base_image, tmp_path
):
    bob = gitlab.add_user("bob")
    push_notebook_project(gitlab, tmp_path / "hubbed", PROJECT, base_image, {alice.username: MAINTAINER})
    runners(1, **hub.booklab_env())
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(30_000)

    log_in_with_the_browser(page, web_server, alice)
    page.get_by_role("link", name=PROJECT).click()
    page.get_by_role("button", name="Launch").click()
    # the hub's login, straight to GitLab's sign-in (the hub's own OAuth application), then her server
    page.wait_for_url(re.compile(rf"^{gitlab.url}/oauth/authorize"), timeout=180_000)
    sign_in_on_the_page(page, alice)
    server = re.compile(rf"^{hub.user_host('alice')}/user/alice/bk-[0-9a-f]+/lab")
    page.wait_for_url(server)
    page.locator(".jp-DirListing-item", has_text="hello.ipynb").wait_for(timeout=90_000)
    page.screenshot(path=ARTIFACTS / "hub-server.png")
    own_server = page.url

    # bob, a user of the same hub, is refused at alice's server
    hub.client().create_user("bob")
    other = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    other.set_default_timeout(30_000)
    other.goto(own_server)
    other.wait_for_url(re.compile(rf"^{gitlab.url}/oauth/authorize"))
    with other.expect_response(lambda r: r.status >= 400) as refused:
        sign_in_on_the_page(other, bob)
    assert refused.value.status == 403 and refused.value.url.startswith(f"{hub.url}/hub/api/oauth2/authorize")
    # the refusal's page is read once it has rendered (the 403's headers can come before its body is drawn)
    expect(other.locator("body")).to_contain_text("You do not have permission to access Server at /user/alice/")
    assert other.locator(".jp-DirListing-item").count() == 0
    other.screenshot(path=ARTIFACTS / "hub-server-refused.png")
