"""What a newcomer meets, in a real headless Chromium: the demo's sample project, built on
the local base image, opens in JupyterLab at its own host through Traefik (forward-auth,
then Jupyter's token); the sample notebook opens from JupyterLab's file browser and its code
cell runs on a kernel, which takes Jupyter Server's XSRF check and the kernel's websocket,
both through Traefik.

A screenshot of JupyterLab with the cell's output is saved in ``test-artifacts/``.
"""

from __future__ import annotations

import re

from booklab.demo import samples
from tests.browser.conftest import ARTIFACTS
from tests.fixtures.pipeline import MAINTAINER
from tests.fixtures.web import log_in_with_the_browser

PROJECT = f"demo/{samples.NAME}"


def test_the_demo_sample_opens_in_jupyterlab_and_runs_a_cell(
    browser, web_server, runners, traefik, gitlab, alice, base_image, tmp_path
):
    gitlab.add_project(PROJECT, members={alice.username: MAINTAINER})
    gitlab.push(PROJECT, samples.create_sample(tmp_path, base_image))
    runners(1, **traefik.runner_env("docker", auth_url=web_server))
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    # what JupyterLab was refused or complained of, told when a step fails (seen once: an empty file browser)
    troubles: list[str] = []
    page.on("response", lambda r: r.status >= 400 and troubles.append(f"{r.status} {r.url.split('?')[0]}"))
    page.on("console", lambda m: m.type == "error" and troubles.append(f"console: {m.text}"))

    log_in_with_the_browser(page, web_server, alice)
    page.get_by_role("link", name=PROJECT).click()
    page.get_by_role("button", name="Launch").click()
    page.wait_for_url(re.compile(rf"^http://[a-z0-9-]+\.booklab\.localhost:{traefik.port}/lab"), timeout=180_000)
    page.locator("#jp-main-dock-panel").wait_for(timeout=90_000)  # JupyterLab's shell, once its scripts ran

    try:
        page.locator(".jp-DirListing-item", has_text="hello.ipynb").dblclick(timeout=60_000)
    except Exception as e:
        page.screenshot(path=ARTIFACTS / "jupyterlab-without-the-notebook.png")
        raise AssertionError(f"hello.ipynb is not in JupyterLab's file browser; the page saw: {troubles}") from e
    # its kernel starts without asking which (the status bar says Idle once it is connected)
    page.locator("#jp-main-statusbar").filter(has_text="Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)
    assert not page.locator(".jp-Dialog").is_visible()
    notebook = page.locator(".jp-NotebookPanel:visible")
    code = notebook.locator(".jp-CodeCell").first
    code.locator(".cm-content").click()
    page.keyboard.press("Shift+Enter")
    output = code.locator(".jp-OutputArea-output")
    try:
        output.filter(has_text="Python 3.").wait_for(timeout=60_000)
    except Exception as e:
        page.screenshot(path=ARTIFACTS / "jupyterlab-without-output.png")
        raise AssertionError(f"the cell printed nothing; the page saw: {troubles}") from e
    assert re.fullmatch(r"Python 3\.\d+\.\d+ on \w+\s*", output.inner_text()), output.inner_text()
    assert code.locator(".jp-InputArea-prompt").inner_text().strip() == "[1]:"
    page.screenshot(path=ARTIFACTS / "jupyterlab.png")
    context.close()
