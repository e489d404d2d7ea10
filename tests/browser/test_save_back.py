"""Saving a notebook's work back to GitLab from the pages, in a real headless Chromium: launch
with "Save my changes to GitLab when I stop" ticked, let the page open the notebook, change
files in it, come back to the deploy page (which, the notebook being ready already, shows its
controls instead of opening it), Save now, then Stop: refused by GitLab first (the notebook
stays, with "Stop and discard my changes"), then allowed. The page names the branch and links
its merge request, and the branch on the GitLab stand-in holds both changes. One deployment,
a real runner, Traefik with forward-auth.

Screenshots of the project page and of the deploy page (saved, save failed, stopped) are
saved in ``test-artifacts/``.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path
from urllib.parse import urlsplit

import requests

from booklab.phases import Phase
from booklab.pipeline import teardown
from booklab.saveback import kept
from booklab.state.deployment import Deployment
from tests.browser.conftest import ARTIFACTS
from tests.fixtures.pipeline import MAINTAINER, served
from tests.fixtures.web import log_in_with_the_browser, push_notebook_project
from tests.integration.test_save_back import EDITED, REPORTER, branches, stand_in_git

PROJECT = "demo/saveback"
DEPLOY_PAGE = "/v2/gl/demo%2Fsaveback/main"
SAVE_BACK = "Save my changes to GitLab when I stop"
RUNNER = "runner-1@test"


def bearer(user) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}"}


def put_content(traefik, notebook_url: str, jupyter_token: str, owner, path: str, body: dict) -> None:
    """Write a file through the notebook's Jupyter contents API, reached through Traefik as
    its owner's scripts reach it (their GitLab token for forward-auth, Jupyter's token)."""
    where = urlsplit(notebook_url)
    response = requests.put(
        f"{traefik.entrypoint_url}{where.path}api/contents/{path}",
        json=body,
        timeout=10,
        headers={"Host": where.hostname, "PRIVATE-TOKEN": owner.token, "Authorization": f"token {jupyter_token}"},
    )
    assert response.ok, response.text


def test_save_now_and_stop_from_the_deploy_page_push_to_a_new_branch(
    browser, web_server, runners, traefik, gitlab, alice, base_image, tmp_path, ctx
):
    push_notebook_project(gitlab, tmp_path / "saveback", PROJECT, base_image, {alice.username: MAINTAINER})
    runners(1, **traefik.runner_env("docker", auth_url=web_server))
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    deployment = f"{PROJECT}:main:{alice.username}"

    log_in_with_the_browser(page, web_server, alice)
    page.get_by_role("link", name=PROJECT).click()
    page.get_by_label(SAVE_BACK).check()
    page.screenshot(path=ARTIFACTS / "project-page.png")
    page.get_by_role("button", name="Launch").click()
    page.wait_for_url(web_server + DEPLOY_PAGE)
    # the page saw it being prepared: it opens the notebook once it is ready
    page.wait_for_url(re.compile(rf"^http://[a-z0-9-]+\.booklab\.localhost:{traefik.port}/lab"), timeout=180_000)
    record = ctx.deployments.record(deployment)
    assert record["save_back"] == "1"
    notebook_url, jupyter_token = record["url"], ctx.vault.notebook_token(deployment)
    put_content(traefik, notebook_url, jupyter_token, alice, "hello.ipynb", {"type": "notebook", "content": EDITED})

    # back to the deploy page, as from "Your notebooks": it stays, with the notebook's controls
    page.goto(web_server + DEPLOY_PAGE)
    page.get_by_role("link", name="Open the notebook").wait_for()
    assert page.get_by_label(SAVE_BACK).is_checked()
    assert page.locator("#status").inner_text() == "Your notebook is ready."
    page.get_by_role("button", name="Save now").click()
    save_status = page.get_by_role("status").filter(has=page.get_by_role("link", name="Open a merge request"))
    save_status.wait_for(timeout=90_000)
    record = ctx.deployments.record(deployment)
    branch = record["saved_branch"]
    assert re.fullmatch(rf"booklab/{alice.username}/\d{{8}}-\d{{4}}", branch), branch
    assert branch in save_status.inner_text()
    link = save_status.get_by_role("link", name="Open a merge request")
    assert link.get_attribute("href") == record["merge_request_url"] and link.get_attribute("rel") == "noopener"
    assert page.url == web_server + DEPLOY_PAGE  # never sent to the notebook
    assert ctx.deployments.status(deployment) is Phase.READY  # Save now keeps it running
    assert not page.get_by_role("button", name="Stop and discard my changes").is_visible()  # no save failed
    page.screenshot(path=ARTIFACTS / "deploy-page-saved.png", full_page=True)

    # another change; alice may no longer push: Stop's save fails and the notebook stays
    put_content(
        traefik,
        notebook_url,
        jupyter_token,
        alice,
        "results.txt",
        {"type": "file", "format": "text", "content": "42\n"},
    )
    gitlab.set_member(PROJECT, alice.username, REPORTER)
    stop = page.get_by_role("button", name="Stop", exact=True)
    stop.click()
    status = page.locator("#status")
    status.filter(has_text="Your notebook keeps running").wait_for(timeout=90_000)
    page.get_by_role("button", name="Stop and discard my changes").wait_for()
    assert "could not be saved" in page.locator("#save-status").inner_text()
    assert ctx.deployments.status(deployment) is Phase.READY
    page.screenshot(path=ARTIFACTS / "deploy-page-save-failed.png", full_page=True)

    # allowed again: Stop saves on the same branch, then ends the notebook
    gitlab.set_member(PROJECT, alice.username, MAINTAINER)
    stop.click()
    status.filter(has_text="Stopped").wait_for(timeout=90_000)
    assert branch in status.inner_text(), status.inner_text()
    page.get_by_role("button", name="Launch again").wait_for()
    assert page.get_by_role("button", name="Rebuild").is_visible()
    whole_log = page.get_by_role("link", name="Download the whole log")
    log_text = requests.get(web_server + whole_log.get_attribute("href"), headers=bearer(alice), timeout=10).text
    assert "Saved your changes to branch" in log_text and alice.token not in log_text
    assert not page.get_by_role("link", name="Open the notebook").is_visible()
    assert not page.get_by_label(SAVE_BACK).is_visible()
    assert ctx.deployments.status(deployment) is Phase.STOPPED
    assert page.url == web_server + DEPLOY_PAGE
    page.screenshot(path=ARTIFACTS / "deploy-page-stopped.png", full_page=True)
    context.close()

    assert branch in branches(gitlab, PROJECT)
    saved = json.loads(stand_in_git(gitlab, PROJECT, "show", f"{branch}:hello.ipynb"))
    assert saved["cells"][0]["source"] == EDITED["cells"][0]["source"]
    assert stand_in_git(gitlab, PROJECT, "show", f"{branch}:results.txt") == "42\n"
    # Save now's commit, then Stop's on top of it, on top of the launched commit
    first_parent = stand_in_git(gitlab, PROJECT, "rev-parse", f"{branch}~2").strip()
    assert first_parent == stand_in_git(gitlab, PROJECT, "rev-parse", "main").strip()


def test_changes_kept_of_a_save_given_up_are_downloaded_from_the_home_page(browser, web_server, gitlab, alice, ctx):
    """A notebook culled while GitLab refused its save ended with its changes kept (as its
    runner leaves them: :mod:`booklab.saveback.kept`); its owner finds them on the home page."""
    dep = Deployment(PROJECT, "main", alice.username)
    run = served(ctx, dep, RUNNER)
    claim = ctx.lifecycle.claim_end(run, RUNNER)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        body = b"work that GitLab refused\n"
        member = tarfile.TarInfo("saveback-main-run1-changes/draft.md")
        member.size = len(body)
        tar.addfile(member, io.BytesIO(body))
    reason = "GitLab refused the push to branch booklab/alice/x: the project is archived (read-only)."
    changes = kept.store(ctx, run, archive.getvalue(), 1, reason)
    assert teardown.release(ctx, run, RUNNER, claim.token, Phase.STOPPED, "The notebook was idle for too long.")
    page = browser.new_page()
    page.set_default_timeout(30_000)

    log_in_with_the_browser(page, web_server, alice)
    section = page.locator("section").filter(has=page.get_by_role("heading", name="Changes kept for you"))
    assert "the project is archived" in section.inner_text()
    with page.expect_download() as download:
        section.get_by_role("link", name=f"{PROJECT} main (run 1)").click()
    assert download.value.suggested_filename == changes.filename(dep.id) == "saveback-main-run1-changes.tar.gz"
    assert Path(download.value.path()).read_bytes() == archive.getvalue()
    page.close()
