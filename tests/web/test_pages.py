"""What the pages are made of: one phase vocabulary from the runner to the page's script,
nothing loaded from outside (the Bangers font is served by Booklab), the badge, and the
``urlpath`` a launch link passes on to the notebook."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from booklab.phases import Phase

WEB = Path(__file__).resolve().parents[2] / "booklab" / "web"


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


@pytest.mark.parametrize("urlpath, kept", [
    ("lab/tree/hello.ipynb", "lab/tree/hello.ipynb"),
    ("/tree/hello.ipynb", "tree/hello.ipynb"),
    ("https://evil.example/steal", ""),
    ("//evil.example/steal", ""),
])
def test_urlpath_is_passed_on_only_as_a_path_in_the_notebook(logged_in, plain_project, urlpath, kept):
    from urllib.parse import quote

    page = logged_in.get(f"/v2/gl/demo%2Fnotebooks/main?urlpath={quote(urlpath, safe='')}")
    assert deploy_config(page.text)["urlpath"] == kept


def test_the_home_page_is_readable_without_login(web_client):
    page = web_client.get("/")
    assert page.status_code == 200
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page.text
    assert html.unescape(page.text).count("Booklab") >= 2
