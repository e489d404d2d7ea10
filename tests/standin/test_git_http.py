"""Git over the stand-in's smart HTTP with real git: ``oauth2:<token>`` clones for members,
401 for a bad or missing token, 404 for non-members, and no pushes over HTTP."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import requests

from gitlab_standin.store import DEVELOPER, MAINTAINER
from tests.fixtures.gitlab import create_local_repo


def clone(url: str, token: str, dest: Path) -> subprocess.CompletedProcess:
    with_credentials = url.replace("http://", f"http://oauth2:{token}@", 1)
    return subprocess.run(["git", "clone", with_credentials, str(dest)], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"})


def test_member_clones_with_oauth_token(gitlab, tmp_path):
    alice = gitlab.add_user("alice")
    gitlab.add_project("lab/book", {"alice": DEVELOPER})
    gitlab.push("lab/book", create_local_repo(tmp_path / "src", {
        "main": {"index.ipynb": "{}"}, "feature/x": {"more.txt": "more"}}))
    url = f"{gitlab.url}/lab/book.git"

    done = clone(url, gitlab.issue_oauth_token(alice), tmp_path / "clone")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "clone" / "index.ipynb").read_text() == "{}"
    branches = subprocess.run(["git", "branch", "-r"], cwd=tmp_path / "clone", capture_output=True, text=True).stdout
    assert "origin/feature/x" in branches
    fetches = [(r.method, r.username, r.status) for r in gitlab.request_log() if r.path.endswith("git-upload-pack")]
    assert fetches and set(fetches) == {("POST", "alice", 200)}


def test_bad_token_or_non_member_cannot_clone(gitlab, tmp_path):
    alice, mallory = gitlab.add_user("alice"), gitlab.add_user("mallory")
    gitlab.add_project("lab/book", {"alice": MAINTAINER})
    gitlab.push("lab/book", create_local_repo(tmp_path / "src", {"main": {"a": "a"}}))
    url = f"{gitlab.url}/lab/book.git"

    bad = clone(url, "not-a-token", tmp_path / "bad")
    assert bad.returncode != 0 and "Authentication failed" in bad.stderr
    stranger = clone(url, gitlab.issue_oauth_token(mallory), tmp_path / "stranger")
    assert stranger.returncode != 0 and not (tmp_path / "stranger").exists()
    personal = clone(url, alice.token, tmp_path / "personal")  # GitLab takes a personal access token too
    assert personal.returncode == 0, personal.stderr

    anonymous = requests.get(f"{url}/info/refs", params={"service": "git-upload-pack"}, timeout=10)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Basic")


def test_push_over_http_is_refused(gitlab, tmp_path):
    alice = gitlab.add_user("alice")
    gitlab.add_project("lab/book", {"alice": MAINTAINER})
    response = requests.get(f"{gitlab.url}/lab/book.git/info/refs", params={"service": "git-receive-pack"},
                            auth=("oauth2", gitlab.issue_oauth_token(alice)), timeout=10)
    assert response.status_code == 403
