"""What the pages are made of: one phase vocabulary from the runner to the page's script,
nothing loaded from outside (the Bangers font is served by Booklab), the badge, the
``urlpath`` a launch link passes on to the notebook, and the choice to save a notebook's
changes back to GitLab (on the launch form, and on the page of a notebook ready already)."""

from __future__ import annotations

import html
import json
import re
import socket
import struct
from pathlib import Path

import pytest

from booklab.phases import Phase, SaveState
from booklab.saveback import protocol, push
from tests.fixtures.pipeline import make_ready, take_run
from tests.fixtures.web import csrf_token

WEB = Path(__file__).resolve().parents[2] / "booklab" / "web"
RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset


def deploy_config(page_html: str) -> dict:
    found = re.search(r'<script type="application/json" id="deploy-config">(.*?)</script>', page_html, re.DOTALL)
    assert found, page_html
    return json.loads(found.group(1))


def test_the_deploy_page_and_its_script_use_the_one_phase_vocabulary(logged_in, plain_project):
    page = logged_in.get("/v2/gl/demo%2Fnotebooks/main")
    config = deploy_config(page.text)
    assert config["phases"] == {p.name: p.value for p in Phase}
    assert set(config["stepOf"]) <= {p.value for p in Phase}
    assert config["final"] == [p.value for p in Phase if p.is_final]
    steps = re.findall(r'<li data-step="(\d)"><span class="dot"></span>(\w+)</li>', page.text)
    assert [label.lower() for _, label in steps] == ["waiting", "fetching", "building", "launching", "ready"]
    assert all(config["stepOf"][label.lower()] == int(i) for i, label in steps)
    # the script names no phase itself: they all come from the server
    script = (WEB / "static" / "deploy.js").read_text()
    literals = set(re.findall(r'"([a-z]+)"|\'([a-z]+)\'', script))
    assert not {value for pair in literals for value in pair} & {p.value for p in Phase}
    assert "P.READY" in script and "P.FAILED" in script and "P.STOPPED" in script


def test_pages_load_nothing_from_outside(logged_in, plain_project):
    for path in ("/", "/projects/demo/notebooks", "/v2/gl/demo%2Fnotebooks/main"):
        page = logged_in.get(path).text
        for attribute in re.findall(r'(?:src|href)="([^"]+)"', page):
            assert not attribute.startswith(("http:", "https:", "//")), (path, attribute)
    sources = [p.read_text() for p in (WEB / "static").glob("*.*") if p.suffix in (".css", ".js")]
    assert not any(re.search(r"url\(\s*['\"]?(https?:)?//", text) or "@import" in text for text in sources)
    with logged_in.get("/static/booklab.css") as css:
        assert 'font-family: "Bangers"' in css.text and "fonts/bangers-latin-400-normal.woff2" in css.text
    with logged_in.get("/static/fonts/bangers-latin-400-normal.woff2") as font:
        assert font.status_code == 200 and font.data[:4] == b"wOF2"
    assert "SIL Open Font License" in (WEB / "static" / "fonts" / "OFL.txt").read_text()


def test_the_badge_is_an_svg_image(web_client):
    badge = web_client.get("/badge.svg")
    assert badge.status_code == 200 and badge.mimetype == "image/svg+xml"
    assert badge.text.startswith("<svg") and "booklab" in badge.text


@pytest.mark.parametrize(
    "urlpath, kept",
    [
        ("lab/tree/hello.ipynb", "lab/tree/hello.ipynb"),
        ("/tree/hello.ipynb", "tree/hello.ipynb"),
        ("https://evil.example/steal", ""),
        ("//evil.example/steal", ""),
        ("tree/../../../etc/passwd", ""),
    ],
)
def test_urlpath_is_passed_on_only_as_a_path_in_the_notebook(logged_in, plain_project, urlpath, kept):
    from urllib.parse import quote

    page = logged_in.get(f"/v2/gl/demo%2Fnotebooks/main?urlpath={quote(urlpath, safe='')}")
    assert deploy_config(page.text)["urlpath"] == kept


def test_the_home_page_is_readable_without_login(web_client):
    page = web_client.get("/")
    assert page.status_code == 200
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page.text
    assert html.unescape(page.text).count("Booklab") >= 2


def test_launch_asks_to_save_back_and_a_ready_notebooks_page_shows_its_controls(logged_in, plain_project, ctx):
    project_page = logged_in.get("/projects/demo/notebooks").text
    assert '<input type="checkbox" id="save_back" name="save_back" value="1"' in project_page
    assert '<label class="check" for="save_back">' in project_page
    assert "Save my changes to GitLab when I stop" in project_page
    token = csrf_token(logged_in)
    for ref, ticked in (("main", "1"), ("dev", None)):
        form = {"project": plain_project, "ref": ref, "csrf_token": token, **({"save_back": ticked} if ticked else {})}
        assert logged_in.post("/launch", data=form).status_code == 303
    chosen, plain = f"{plain_project}:main:alice", f"{plain_project}:dev:alice"
    assert ctx.deployments.record(chosen)["save_back"] == "1" and not ctx.deployments.record(plain).get("save_back")

    # being prepared: the page goes to the notebook once it is ready
    queued = logged_in.get("/v2/gl/demo%2Fnotebooks/main").text
    assert deploy_config(queued)["readyAtLoad"] is False

    # ready already (the user came back): the page shows its controls instead
    make_ready(ctx, take_run(ctx, chosen), "http://notebooks-main-alice.booklab.localhost/")
    ready = logged_in.get("/v2/gl/demo%2Fnotebooks/main").text
    assert deploy_config(ready)["readyAtLoad"] is True
    assert '<input type="checkbox" id="save-back" checked>' in ready
    assert '<p class="save-status" id="save-status" role="status" aria-live="polite">' in ready
    assert ">Save now</button>" in ready and ">Stop and discard my changes</button>" in ready
    assert not re.search(r"<[^>]+\son[a-z]+=", ready)  # no inline handlers (CSP)

    answer = logged_in.post(
        f"/api/deployments/{chosen}/save_back", json={"enabled": False}, headers={"X-CSRF-Token": token}
    )
    assert answer.status_code == 200 and answer.json["save_back"] is False
    assert '<input type="checkbox" id="save-back">' in logged_in.get("/v2/gl/demo%2Fnotebooks/main").text


def test_the_deploy_page_knows_the_save_states_save_back_writes(logged_in, plain_project, ctx):
    states = deploy_config(logged_in.get("/v2/gl/demo%2Fnotebooks/main").text)["saveStates"]
    deployment = f"{plain_project}:main:alice"
    written = set()
    for saved in (None, push.Saved("booklab/alice/20260101-1200", "0" * 40, "http://mr")):
        protocol.report_saved(ctx, deployment, push.Outcome(saved))
        written.add(ctx.deployments.record(deployment)["save_state"])
    protocol.report_failed(ctx, deployment, protocol.Failed("No.", for_good=True))
    written.add(ctx.deployments.record(deployment)["save_state"])
    assert set(states.values()) <= written | {SaveState.SAVING.value}
    assert (states["SAVING"], states["SAVED"], states["FAILED"]) == ("saving", "saved", "failed")
    script = (WEB / "static" / "deploy.js").read_text()
    assert all(f"S.{name}" in script for name in states)


def test_a_client_resetting_after_a_static_file_leaves_no_file_open(web_server):
    """A browser cancels the favicon when it navigates on: the served file must be closed (an
    unclosed one is a ResourceWarning, which fails the test at its end)."""
    host, port = web_server.removeprefix("http://").split(":")
    for _ in range(10):
        with socket.create_connection((host, int(port))) as client:
            client.sendall(b"GET /static/favicon.svg HTTP/1.1\r\nHost: booklab\r\n\r\n")
            assert client.recv(100).startswith(b"HTTP/1.1 200")
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
