"""The operator's page in a real Chromium: an operator follows the link to /admin, sees the
runner serving another user's notebook (its host, whom it serves), stops that notebook with
its Stop button, sees the runner free again and the stop in the operators' log, and asks for
the removal of that notebook's image once no notebook uses it. A
screenshot of the page goes to ``test-artifacts/admin.png``."""

from __future__ import annotations

import pytest
import requests

from booklab.phases import Phase
from booklab.pipeline import image_cleaner
from tests.browser.conftest import ARTIFACTS
from tests.fixtures.services import wait_until
from tests.fixtures.web import log_in_with_the_browser, push_notebook_project

PROJECT = "demo/admin"


@pytest.fixture
def booklab_env(booklab_env):
    return {**booklab_env, "BOOKLAB_ADMIN_USERS": "carol"}


def reported(ctx, image: str, in_use: bool) -> bool:
    """Clean the host's images as the runner's next cleaning does (unless its runner is cleaning
    right now), which reports what the host keeps; whether it reports ``image``, ``in_use`` or not."""
    image_cleaner.clean(ctx)
    return any(i.name == image and i.in_use is in_use for i in ctx.images.inventory().get(ctx.docker_host, []))


def test_an_operator_sees_whom_each_runner_serves_and_stops_a_notebook(
    browser, web_server, runners, traefik, gitlab, alice, base_image, tmp_path, ctx
):
    push_notebook_project(gitlab, tmp_path / "admin", PROJECT, base_image, {alice.username: 40})
    carol = gitlab.add_user("carol")
    (runner,) = runners(1, **traefik.runner_env("docker", auth_url=web_server))
    launched = requests.post(
        f"{web_server}/api/deployments",
        json={"project": PROJECT, "ref": "main"},
        headers={"Authorization": f"Bearer {alice.token}"},
        timeout=30,
    )
    deployment_id = launched.json()["id"]
    wait_until(lambda: ctx.deployments.status(deployment_id) is Phase.READY, 240, "alice's notebook to be ready")
    image = ctx.deployments.record(deployment_id)["image"]
    wait_until(lambda: reported(ctx, image, in_use=True), 30, "the host to report the notebook's image")

    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.set_default_timeout(30_000)
    log_in_with_the_browser(page, web_server, carol)
    page.get_by_role("link", name="Operators").click()
    page.wait_for_url(web_server + "/admin")
    row = page.locator(f'tr[data-runner="{runner.name}"]')
    assert row.locator("td").nth(1).inner_text() == ctx.docker_host
    assert row.locator("td").nth(2).inner_text() == "serving"
    assert deployment_id in row.locator("td").nth(4).inner_text() and row.locator("td").nth(5).inner_text() == "alice"
    image_row = page.locator(f'tr[data-image="{ctx.docker_host} {image}"]')
    assert image_row.locator("td").nth(5).inner_text() == "in use"  # no Delete while a notebook uses it
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "admin.png", full_page=True)

    page.get_by_role("button", name=f"Stop {deployment_id}").click()
    page.locator(".flash", has_text=f"Stopping {deployment_id} (it was ready).").wait_for()
    wait_until(lambda: ctx.deployments.status(deployment_id) is Phase.STOPPED, 60, "the notebook to stop")
    page.get_by_role("link", name="Refresh").click()
    assert row.locator("td").nth(2).inner_text() == "free"
    assert f"carol: stop {deployment_id}" in page.locator("#actions").inner_text()
    assert not page.get_by_role("button", name=f"Stop {deployment_id}").is_visible()  # over: nothing to stop

    wait_until(lambda: reported(ctx, image, in_use=False), 30, "the host to report the image unused")
    page.get_by_role("link", name="Refresh").click()
    page.get_by_role("button", name=f"Delete {image} on {ctx.docker_host}").click()
    page.locator(".flash", has_text=f"removes {image} at its next cleaning").wait_for()
    assert image_row.locator("td").nth(5).inner_text() == "removal asked"
