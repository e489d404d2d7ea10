"""The machine profile picker in a real Chromium: the project page lists the profiles the
user's GitLab groups give them, with memory, CPUs and description; the one picked is the
notebook's, as its log says, and its container's limits are the profile's."""

from __future__ import annotations

import json

import pytest

from gitlab_standin.store import DEVELOPER, GUEST
from tests.browser.conftest import ARTIFACTS
from tests.fixtures.pipeline import messages, phases, run_to_end
from tests.fixtures.web import log_in_with_the_browser, push_notebook_project

PROJECT = "demo/machines"
PROFILES = {
    "small": {"memory": "512m", "cpus": 0.5, "description": "Reading"},
    "big": {"memory": "1g", "cpus": 1.5, "groups": "physics/gpu", "description": "Simulations"},
    "huge": {"memory": "2g", "cpus": 2, "groups": "chemistry"},
}


@pytest.fixture
def booklab_env(booklab_env):
    return {**booklab_env, "BOOKLAB_PROFILES_LIST": json.dumps(PROFILES), "BOOKLAB_PROFILES_DEFAULT": "small"}


def test_the_picker_offers_my_profiles_and_the_one_i_pick_runs_my_notebook(
    browser, web_server, runners, gitlab, alice, base_image, tmp_path, ctx, docker_engine
):
    push_notebook_project(gitlab, tmp_path / "machines", PROJECT, base_image, {alice.username: DEVELOPER})
    gitlab.add_group("physics")
    gitlab.add_group("physics/gpu", {alice.username: GUEST})
    gitlab.add_group("chemistry")
    runners(1)
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(30_000)
    log_in_with_the_browser(page, web_server, alice)

    page.get_by_role("link", name=PROJECT).click()
    picker = page.get_by_label("Machine")
    assert picker.input_value() == "small"  # the default is preselected
    assert picker.locator("option").all_inner_texts() == [
        "small: 512 MiB, 0.5 CPUs · Reading",
        "big: 1 GiB, 1.5 CPUs · Simulations",
    ]  # huge is for chemistry, which alice is not in
    picker.select_option("big")
    page.screenshot(path=ARTIFACTS / "profile-picker.png")
    page.get_by_role("button", name="Launch").click()
    page.wait_for_url(web_server + "/v2/gl/demo%2Fmachines/main")
    page.locator("#log").filter(has_text="Profile big: 1 GiB, 1.5 CPUs").wait_for(timeout=180_000)

    events = run_to_end(ctx, f"{PROJECT}:main:alice")
    assert phases(events)[-1] == "ready", messages(events)
    record = ctx.deployments.record(f"{PROJECT}:main:alice")
    assert record["profile"] == "big"
    host = docker_engine.containers.get(record["container"]).attrs["HostConfig"]
    assert (host["Memory"], host["NanoCpus"]) == (1024**3, 1_500_000_000)
