"""``python -m gitlab_standin`` as the demo runs it: ``--repos`` serves each git repository
directly in a directory as a project of the first user, with all its branches and the
default branch its HEAD names; ``--info`` tells addresses and credentials as JSON."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import requests

from tests.fixtures.gitlab import create_local_repo
from tests.fixtures.services import wait_until


@pytest.fixture
def data_dir() -> Path:
    data = Path(tempfile.mkdtemp(prefix="gitlab-standin-main-"))  # sshd's user must reach it
    yield data
    shutil.rmtree(data, ignore_errors=True)


def test_repos_are_served_as_projects_of_the_first_user(tmp_path, data_dir):
    repos = tmp_path / "repos"
    create_local_repo(repos, {"main": {"README.md": "a directory that is itself in a repository\n"}})
    (repos / "notes").mkdir()  # inside that repository, not one itself: skipped
    work = create_local_repo(repos / "work", {"main": {"a.txt": "a\n"}, "topic/x": {"b.txt": "b\n"}})
    subprocess.run(["git", "clone", "--quiet", "--bare", str(work), str(repos / "library.git")], check=True)
    subprocess.run(["git", "-C", str(work), "checkout", "--quiet", "main"], check=True)  # library's stays topic/x
    info_file = tmp_path / "info.json"
    standin = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gitlab_standin",
            "--data",
            str(data_dir),
            "--user",
            "demo",
            "--user",
            "bob",
            "--repos",
            str(repos),
            "--redirect-uri",
            "http://localhost:8000/cb",
            "--info",
            str(info_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: standin.poll() is not None or info_file.exists(), 30, "the stand-in's info file")
        assert standin.poll() is None, standin.stderr.read()
        assert info_file.stat().st_mode & 0o777 == 0o600
        info = json.loads(info_file.read_text())
        assert info["projects"] == {"demo/library": ["main", "topic/x"], "demo/work": ["main", "topic/x"]}
        assert info["oauth"]["client_id"] and info["oauth"]["redirect_uri"] == "http://localhost:8000/cb"
        assert info["known_hosts"].startswith(f"[127.0.0.1]:{info['ssh_port']} ssh-ed25519 ")
        bob = {"PRIVATE-TOKEN": info["users"]["bob"]["token"]}
        for path, default in (("demo%2Fwork", "main"), ("demo%2Flibrary", "topic/x")):
            project = requests.get(f"{info['url']}/api/v4/projects/{path}", headers=bob, timeout=10).json()
            assert (project["namespace"]["path"], project["default_branch"]) == ("demo", default)
            assert project["permissions"]["project_access"]["access_level"] == 40
    finally:
        standin.send_signal(signal.SIGTERM)
        assert standin.wait(15) == 0
        standin.stderr.close()
