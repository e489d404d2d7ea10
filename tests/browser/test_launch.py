"""A person's first launch, in a real headless Chromium driven by Playwright: log in
through GitLab's sign-in page, pick a project and a branch, click Launch, watch the build
log arrive, and land in JupyterLab with the sample notebook, at the notebook's own host
through Traefik, whose forward-auth lets the logged-in owner's browser through.

Screenshots of the deploy page (desktop and phone) and of the notebook are saved in
``test-artifacts/``.
"""

from __future__ import annotations

import re

from tests.browser.conftest import ARTIFACTS
from tests.fixtures.pipeline import events_of
from tests.fixtures.web import log_in_with_the_browser, push_notebook_project, sign_in_on_the_page

PROJECT = "demo/browser"
#: a build step that writes a line a second, so the log visibly arrives while it runs
SLOW_STEP = 'RUN for i in 1 2 3 4 5 6; do echo "counting sheep $i"; sleep 1; done\n'


def test_login_pick_launch_and_land_on_the_notebook(
    browser, web_server, runners, traefik, gitlab, alice, base_image, tmp_path, ctx
):
    push_notebook_project(
        gitlab,
        tmp_path / "browser",
        PROJECT,
        base_image,
        {alice.username: 40},
        branches={"main": "", "slow": SLOW_STEP},
        fixed_dates=False,
    )
    runners(1, **traefik.runner_env("docker", auth_url=web_server))
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)

    log_in_with_the_browser(page, web_server, alice)
    assert page.locator(".user").inner_text().endswith("@alice")

    page.get_by_role("link", name=PROJECT).click()
    assert page.locator("#ref").input_value() == "main"  # the default branch is preselected
    page.select_option("#ref", "slow")
    page.get_by_role("button", name="Launch").click()
    page.wait_for_url(web_server + "/v2/gl/demo%2Fbrowser/slow")

    log = page.locator("#log")
    log.filter(has_text="counting sheep 2").wait_for(timeout=180_000)
    assert "counting sheep 6" not in log.inner_text()  # the log arrives while the build runs
    assert page.url.startswith(web_server)
    page.screenshot(path=ARTIFACTS / "deploy-page.png", full_page=True)

    phone = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        storage_state=context.storage_state(),
    )
    phone_page = phone.new_page()
    phone_page.goto(web_server + "/v2/gl/demo%2Fbrowser/slow")  # the same deployment, joined
    phone_page.locator("#log").filter(has_text="counting sheep").wait_for()
    phone_page.screenshot(path=ARTIFACTS / "deploy-page-phone.png")
    phone.close()

    page.wait_for_url(re.compile(rf"^http://[a-z0-9-]+\.booklab\.localhost:{traefik.port}/lab"), timeout=180_000)
    try:  # JupyterLab lists the files once its scripts loaded (slower on a cold first start)
        page.locator(".jp-DirListing-item", has_text="hello.ipynb").wait_for(timeout=90_000)
    except Exception:
        page.screenshot(path=ARTIFACTS / "notebook-without-its-files.png")
        raise
    page.screenshot(path=ARTIFACTS / "notebook.png")

    # back on its page: Stop says "Stopping…" until the notebook is gone, then offers Launch
    # again, which is a new run with a log of its own and opens the notebook again
    first_run = ctx.lifecycle.current(f"{PROJECT}:slow:alice")[1]
    page.goto(web_server + "/v2/gl/demo%2Fbrowser/slow")
    page.get_by_role("button", name="Stop", exact=True).click()
    status = page.locator("#status")
    status.filter(has_text="Stopping").wait_for()
    page.get_by_role("button", name="Launch again").wait_for(timeout=60_000)
    assert "Stopped" in status.inner_text()
    page.get_by_role("button", name="Launch again").click()
    page.wait_for_url(re.compile(rf"^http://[a-z0-9-]+\.booklab\.localhost:{traefik.port}/lab"), timeout=120_000)
    assert ctx.lifecycle.current(f"{PROJECT}:slow:alice")[1].number == first_run.number + 1
    context.close()

    events = events_of(ctx, f"{PROJECT}:slow:alice")
    phases = [event.data["phase"] for event in events]
    assert phases.count("waiting") == 1 and phases.count("launching") == 1 and phases[-1] == "ready"

    # the notebook's link with its Jupyter token, leaked to another GitLab user: they are
    # asked to log in, then told whose notebook it is; they never reach it
    leaked = f"{events[-1].data['url']}?token={ctx.vault.notebook_token(f'{PROJECT}:slow:alice')}"
    bob = gitlab.add_user("bob")
    stranger = browser.new_context()
    other = stranger.new_page()
    other.set_default_timeout(30_000)
    other.goto(leaked)
    sign_in_on_the_page(other, bob)
    other.get_by_text("belongs to the GitLab user alice, and you are logged in as bob").wait_for()
    assert other.url.startswith(web_server + "/auth/notebook/grant/")
    other.screenshot(path=ARTIFACTS / "notebook-refused.png")
    stranger.close()
