"""Launch links opened from another site, in a real Chromium (its own Sec-Fetch-* headers):
a link the user clicks launches, as BinderHub's do; a page's script that sends the window
to a launch link without a click launches nothing and gets the Launch button instead."""

from __future__ import annotations

from booklab.state.deployment import Deployment
from tests.fixtures.services import wait_until
from tests.fixtures.web import log_in_with_the_browser

LAUNCH = "/v2/gl/demo%2Fnotebooks/main"
#: another site (Playwright answers for it): a README with a launch link, say
OTHER_SITE = "http://elsewhere.localhost:8999/"
#: a page of it whose script sends the window to the launch link as soon as it loads
SCRIPTED = OTHER_SITE + "scripted"


def test_a_launch_link_launches_on_a_click_only(browser, web_server, alice, plain_project, ctx):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    link = f'<a id="launch" href="{web_server}{LAUNCH}">Launch on Booklab</a>'
    context.route(OTHER_SITE + "readme", lambda route: route.fulfill(content_type="text/html", body=link))
    context.route(
        SCRIPTED,
        lambda route: route.fulfill(
            content_type="text/html", body=(f"<script>window.location.href = {web_server + LAUNCH!r};</script>")
        ),
    )
    log_in_with_the_browser(page, web_server, alice)
    deployment_id = Deployment(plain_project, "main", alice.username).id

    def status():
        return ctx.deployments.status(deployment_id)

    page.goto(SCRIPTED)  # no click of the user's (Playwright's evaluate() would count as one)
    page.get_by_text("nothing was launched").wait_for()
    assert page.url == web_server + LAUNCH and status() is None

    page.goto(OTHER_SITE + "readme")
    page.get_by_role("link", name="Launch on Booklab").click()
    page.wait_for_url(web_server + LAUNCH)
    wait_until(status, 15, "the clicked launch link to start the deployment")
    assert page.get_by_text("nothing was launched").count() == 0
    context.close()
