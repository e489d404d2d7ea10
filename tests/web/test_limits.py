"""The operator's limits (``limits/*``) as a user meets them: a launch past the limit is
refused with one sentence, as HTTP 429 from the API, as the failed event of the page's
event stream, and as the CLI's error; nothing is queued."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests

from tests.web.test_stream import Stream

REFUSAL = "You have 1 notebook running or queued, the limit is 1: stop one first."


@pytest.fixture
def booklab_env(booklab_env):
    return {**booklab_env, "BOOKLAB_LIMITS_NOTEBOOKS_PER_USER": "1"}


def test_a_launch_past_the_limit_is_refused_by_the_api_the_page_and_the_cli(web_server, ctx, alice, plain_project):
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {alice.token}"
    first = api.post(f"{web_server}/api/deployments", json={"project": plain_project, "ref": "main"}, timeout=10)
    assert first.status_code == 201, first.text

    refused = api.post(f"{web_server}/api/deployments", json={"project": plain_project, "ref": "dev"}, timeout=10)
    assert refused.status_code == 429 and refused.json()["error"] == REFUSAL

    stream = Stream(f"{web_server}/build/gl/{plain_project.replace('/', '%2F')}/dev", alice.token)
    _, event = stream.next_event()
    stream.close()
    assert event == {"phase": "failed", "message": REFUSAL + "\n"}

    cli = subprocess.run(
        [sys.executable, "-m", "booklab.cli", "deploy", plain_project, "--ref", "dev"],
        env={**os.environ, "BOOKLAB_URL": web_server, "BOOKLAB_GITLAB_TOKEN": alice.token},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli.returncode != 0 and REFUSAL in cli.stderr, cli.stdout + cli.stderr
    assert [dep.ref for dep, _ in ctx.deployments.of_user(alice.username)] == ["main"]
    assert api.post(f"{web_server}/api/deployments", json={"project": plain_project, "ref": "main"}, timeout=10).ok
