"""``booklab deploy/status/stop`` against the web tier served on a loopback port, with
real runners, Redis, Docker and the GitLab stand-in."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import requests

from booklab.phases import Phase
from booklab.pipeline.launcher import api_status
from tests.fixtures.web import push_notebook_project

PROJECT = "demo/x"


@pytest.fixture
def cli_project(gitlab, alice, base_image, tmp_path) -> str:
    """demo/x: main builds (the same commit in every test: built once a session), broken fails."""
    return push_notebook_project(
        gitlab,
        tmp_path / "x",
        PROJECT,
        base_image,
        {alice.username: 40},
        branches={"main": "", "broken": "RUN echo about-to-fail && false\n"},
    )


def booklab(server: str, token: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "BOOKLAB_URL": server, "BOOKLAB_GITLAB_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "booklab.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_deploy_follow_prints_the_phases_and_the_notebook_url(web_server, runners, ctx, alice, cli_project):
    runners(1)
    done = booklab(web_server, alice.token, "deploy", cli_project, "--ref", "main", "--follow")
    assert done.returncode == 0, done.stdout + done.stderr
    headers = re.findall(r"^==> (\w+)$", done.stdout, re.MULTILINE)
    assert headers[0] == "waiting" and headers[-1] == "ready"
    assert {"fetching", "launching"} <= set(headers) and {"building", "built"} & set(headers)
    link = re.search(r"^Your notebook is ready: (http://127\.0\.0\.1:\d+/)lab\?token=(\S+)$", done.stdout, re.MULTILINE)
    assert link, done.stdout
    contents = requests.get(
        link.group(1) + "api/contents", timeout=10, headers={"Authorization": f"token {link.group(2)}"}
    )
    assert "hello.ipynb" in [item["name"] for item in contents.json()["content"]]

    deployment = f"{cli_project}:main:alice"
    status = booklab(web_server, alice.token, "status")
    assert status.returncode == 0 and f"{deployment}  ready  {link.group(1)}" in status.stdout
    stopped = booklab(web_server, alice.token, "stop", deployment)
    assert stopped.returncode == 0 and f"Stopping {deployment} (it was ready)." in stopped.stdout
    # it waited until the notebook was gone
    assert f"Stopped {deployment}." in stopped.stdout and ctx.deployments.status(deployment) is Phase.STOPPED
    assert api_status(link.group(1), link.group(2)) is None

    # launched again at once: a new run, with a log of its own and a new token
    again = booklab(web_server, alice.token, "deploy", cli_project, "--ref", "main", "--follow")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Building image" not in again.stdout
    assert re.findall(r"^==> (\w+)$", again.stdout, re.MULTILINE)[0] == "waiting"
    relink = re.search(
        r"^Your notebook is ready: (http://127\.0\.0\.1:\d+/)lab\?token=(\S+)$", again.stdout, re.MULTILINE
    )
    assert relink and relink.group(2) != link.group(2), again.stdout
    no_wait = booklab(web_server, alice.token, "stop", "--no-wait", deployment)
    assert no_wait.returncode == 0 and "Stopped" not in no_wait.stdout


def test_deploy_json_prints_one_event_per_line_ending_with_ready(web_server, runners, alice, cli_project):
    runners(1)
    done = booklab(web_server, alice.token, "deploy", cli_project, "--ref", "main", "--follow", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert all(set(e) >= {"phase", "message"} for e in events)
    assert events[0]["phase"] == "waiting" and [e["phase"] for e in events].count("ready") == 1
    last = events[-1]
    assert last["phase"] == "ready" and last["url"].startswith("http://127.0.0.1:") and last["token"]
    assert last["deployment"] == f"{cli_project}:main:alice"


def test_a_failed_deployment_exits_non_zero_and_says_why(web_server, runners, alice, cli_project):
    runners(1)
    done = booklab(web_server, alice.token, "deploy", cli_project, "--ref", "broken", "--follow")
    assert done.returncode == 1
    assert "==> failed" in done.stdout and "about-to-fail" in done.stdout + done.stderr
    assert "the deployment failed" in done.stderr

    again = booklab(web_server, alice.token, "retry", f"{cli_project}:broken:alice", "--follow")
    assert again.returncode == 1 and "about-to-fail" in again.stdout  # it ran again, and failed again


def test_bad_token_unknown_branch_and_missing_settings_are_refused(web_server, alice, cli_project):
    bad = booklab(web_server, "glpat-wrong", "status")
    assert bad.returncode == 1 and "GitLab did not accept this token" in bad.stderr
    unknown = booklab(web_server, alice.token, "deploy", cli_project, "--ref", "no-such-branch", "--follow")
    assert unknown.returncode == 1 and "Branch 'no-such-branch' does not exist" in unknown.stderr
    missing = booklab("", alice.token, "status")
    assert missing.returncode == 2 and "BOOKLAB_URL" in missing.stderr


def test_config_lists_every_setting_and_hides_the_secrets(tmp_path):
    from booklab.config import SECRETS, Config

    secrets = {
        f"BOOKLAB_{f.metadata['path'].upper().replace('/', '_')}": f"s3cret-{f.name}"
        for f in Config.settings()
        if f.name in SECRETS
    }
    out = subprocess.run(
        [sys.executable, "-m", "booklab.cli", "config"],
        env={
            **os.environ,
            **secrets,
            "BOOKLAB_IMAGES_REGISTRY_USERNAME": "runner",  # whose password is a secret
            "BOOKLAB_REDIS_URL": "redis://:r3dis-password@redis.example.org:6379/0",
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert all(f"{f.metadata['path']} = " in out for f in Config.settings())
    assert out.count("'<set>'") == len(SECRETS) == 6
    assert not any(value in out for value in secrets.values())
    assert "r3dis-password" not in out and "redis://:[secret removed]@redis.example.org:6379/0" in out


def test_save_pushes_the_changes_and_prints_the_branch_and_merge_request_link(
    web_server, runners, ctx, alice, cli_project, gitlab
):
    from tests.fixtures.services import wait_until
    from tests.integration.test_save_back import stand_in_git

    runners(1)
    done = booklab(web_server, alice.token, "deploy", cli_project, "--ref", "main", "--save-back", "--follow")
    assert done.returncode == 0, done.stdout + done.stderr
    url, token = re.search(r"^Your notebook is ready: (\S+/)lab\?token=(\S+)$", done.stdout, re.MULTILINE).groups()
    requests.put(
        url + "api/contents/notes.md",
        json={"type": "file", "format": "text", "content": "from the CLI\n"},
        headers={"Authorization": f"token {token}"},
        timeout=10,
    ).raise_for_status()
    deployment = f"{cli_project}:main:alice"

    saved = booklab(web_server, alice.token, "save", deployment)

    assert saved.returncode == 0, saved.stdout + saved.stderr
    found = re.search(
        r"Saved your changes to branch (booklab/alice/\d{8}-\d{4}); open a merge request: "
        r"(http\S+/demo/x/-/merge_requests/new\?\S+)$",
        saved.stdout,
        re.MULTILINE,
    )
    assert found, saved.stdout
    assert stand_in_git(gitlab, cli_project, "show", f"{found.group(1)}:notes.md") == "from the CLI\n"
    status = booklab(web_server, alice.token, "status", deployment)
    assert found.group(1) in status.stdout and "merge_requests/new" in status.stdout
    again = booklab(web_server, alice.token, "save", deployment)
    assert again.returncode == 0 and "nothing was pushed" in again.stdout, again.stdout + again.stderr

    stopped = booklab(web_server, alice.token, "stop", deployment)
    assert "Saving your changes to GitLab first..." in stopped.stdout, stopped.stdout
    assert stopped.returncode == 0 and "nothing was pushed" in stopped.stdout, stopped.stdout
    wait_until(lambda: ctx.deployments.status(deployment) is Phase.STOPPED, 30, "the notebook to stop")


def test_save_of_a_deployment_that_does_not_run_is_refused(web_server, ctx, alice, cli_project):
    done = booklab(web_server, alice.token, "save", f"{cli_project}:main:alice")
    assert done.returncode != 0 and "no deployment" in done.stderr.lower(), done.stderr
