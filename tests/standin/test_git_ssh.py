"""Git over the stand-in's real OpenSSH server with freshly generated ed25519 keys: a deploy
key clones exactly while it is enabled, only its own project, pushes only with can_push and
never to a protected branch or an archived project, and the host key matches the advertised
known_hosts line (strict checking)."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import gitlab as python_gitlab
import pytest

from gitlab_standin.store import MAINTAINER
from tests.fixtures.gitlab import GIT_IDENTITY, create_local_repo


@pytest.fixture
def key(tmp_path) -> Path:
    path = tmp_path / "keys" / "id_ed25519"
    path.parent.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


@pytest.fixture
def lab(gitlab, tmp_path):
    """alice maintains lab/a and lab/b, each with a README naming it; returns her client."""
    alice = gitlab.add_user("alice")
    for name in ("a", "b"):
        gitlab.add_project(f"lab/{name}", {"alice": MAINTAINER})
        gitlab.push(f"lab/{name}", create_local_repo(tmp_path / f"src-{name}", {"main": {"README.md": name}}))
    with python_gitlab.Gitlab(gitlab.url, private_token=alice.token) as gl:
        yield gl


def git(gitlab, key: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    known_hosts = key.parent / "known_hosts"
    known_hosts.write_text(gitlab.known_hosts_line + "\n")
    ssh = (
        f"ssh -F /dev/null -i {key} -o IdentitiesOnly=yes -o BatchMode=yes "
        f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={known_hosts}"
    )
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **GIT_IDENTITY, "GIT_SSH_COMMAND": ssh},
    )


def add_key(gl, project: str, key: Path, **extra) -> int:
    return (
        gl.projects.get(project)
        .keys.create({"title": "booklab", "key": key.with_suffix(".pub").read_text(), **extra})
        .id
    )


def test_clone_works_exactly_while_the_key_is_enabled(gitlab, lab, key, tmp_path):
    url = lab.projects.get("lab/a").ssh_url_to_repo
    assert url == gitlab.ssh_url("lab/a")
    assert git(gitlab, key, "clone", url, str(tmp_path / "before")).returncode != 0

    key_id = add_key(lab, "lab/a", key)
    cloned = git(gitlab, key, "clone", "--branch", "main", url, str(tmp_path / "clone"))
    assert cloned.returncode == 0, cloned.stderr
    assert (tmp_path / "clone" / "README.md").read_text() == "a"

    lab.projects.get("lab/a").keys.delete(key_id)
    refused = git(gitlab, key, "clone", url, str(tmp_path / "after"))
    assert refused.returncode != 0 and not (tmp_path / "after").exists()
    assert "Permission denied (publickey)" in refused.stderr


def test_key_of_project_a_cannot_clone_project_b(gitlab, lab, key, tmp_path):
    add_key(lab, "lab/a", key)
    refused = git(gitlab, key, "clone", gitlab.ssh_url("lab/b"), str(tmp_path / "b"))
    assert refused.returncode != 0
    assert "could not be found or you don't have permission" in refused.stderr
    escaped = git(gitlab, key, "clone", gitlab.ssh_url("lab/a/../b"), str(tmp_path / "escape"))
    assert escaped.returncode != 0


def test_only_git_commands_run(gitlab, lab, key):
    add_key(lab, "lab/a", key)
    known_hosts = key.parent / "known_hosts"
    known_hosts.write_text(gitlab.known_hosts_line + "\n")
    shell = subprocess.run(
        [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-p",
            str(gitlab.ssh_port),
            "git@127.0.0.1",
            "cat /etc/passwd",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert shell.returncode == 1
    assert "Disallowed command" in shell.stderr and "root:" not in shell.stdout


def test_push_needs_can_push(gitlab, lab, key, tmp_path):
    add_key(lab, "lab/a", key)
    assert git(gitlab, key, "clone", gitlab.ssh_url("lab/a"), str(tmp_path / "clone")).returncode == 0
    (tmp_path / "clone" / "new.txt").write_text("new")
    assert git(gitlab, key, "add", "new.txt", cwd=tmp_path / "clone").returncode == 0
    assert git(gitlab, key, "commit", "-q", "-m", "new", cwd=tmp_path / "clone").returncode == 0

    read_only = git(gitlab, key, "push", "origin", "HEAD:refs/heads/pushed", cwd=tmp_path / "clone")
    assert read_only.returncode != 0 and "does not have write access" in read_only.stderr

    writer = key.parent / "writer"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(writer)], check=True)
    add_key(lab, "lab/a", writer, can_push=True)
    pushed = git(gitlab, writer, "push", gitlab.ssh_url("lab/a"), "HEAD:refs/heads/pushed", cwd=tmp_path / "clone")
    assert pushed.returncode == 0, pushed.stderr
    assert "pushed" in [b.name for b in lab.projects.get("lab/a").branches.list(get_all=True)]


def test_deploy_key_cannot_push_protected_branches(gitlab, lab, key, tmp_path):
    add_key(lab, "lab/a", key, can_push=True)
    gitlab.protect_branches("lab/a", "booklab/*")
    clone = tmp_path / "clone"
    assert git(gitlab, key, "clone", gitlab.ssh_url("lab/a"), str(clone)).returncode == 0
    (clone / "new.txt").write_text("new")
    assert git(gitlab, key, "add", "new.txt", cwd=clone).returncode == 0
    assert git(gitlab, key, "commit", "-q", "-m", "new", cwd=clone).returncode == 0

    created = git(gitlab, key, "push", "origin", "HEAD:refs/heads/booklab/x/y", cwd=clone)
    assert created.returncode != 0
    assert "remote: GitLab: You are not allowed to create protected branches on this project." in created.stderr
    assert "! [remote rejected] HEAD -> booklab/x/y (pre-receive hook declined)" in created.stderr
    updated = git(gitlab, key, "push", "origin", "HEAD:main", cwd=clone)
    assert updated.returncode != 0
    assert "remote: GitLab: You are not allowed to push code to protected branches on this project." in updated.stderr
    assert "! [remote rejected] HEAD -> main (pre-receive hook declined)" in updated.stderr
    assert [b.name for b in lab.projects.get("lab/a").branches.list(get_all=True)] == ["main"]
    other = git(gitlab, key, "push", "origin", "HEAD:refs/heads/booklab-x", cwd=clone)
    assert other.returncode == 0, other.stderr


def test_archived_project_refuses_pushes_but_serves_clones(gitlab, lab, key, tmp_path):
    add_key(lab, "lab/a", key, can_push=True)
    gitlab.archive("lab/a")

    cloned = git(gitlab, key, "clone", gitlab.ssh_url("lab/a"), str(tmp_path / "clone"))
    assert cloned.returncode == 0, cloned.stderr
    refused = git(gitlab, key, "push", "origin", "HEAD:refs/heads/pushed", cwd=tmp_path / "clone")
    assert refused.returncode != 0
    assert "ERROR: You can't push code to an archived project." in refused.stderr
    assert "pushed" not in [b.name for b in lab.projects.get("lab/a").branches.list(get_all=True)]
    reader = key.parent / "reader"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(reader)], check=True)
    add_key(lab, "lab/a", reader)  # GitLab lets Maintainers add deploy keys to an archived project
    assert git(gitlab, reader, "clone", gitlab.ssh_url("lab/a"), str(tmp_path / "read")).returncode == 0


def test_removed_project_is_not_found(gitlab, lab, key, tmp_path):
    add_key(lab, "lab/a", key)
    add_key(lab, "lab/b", key)  # the key outlives lab/a
    solo = key.parent / "solo"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(solo)], check=True)
    add_key(lab, "lab/a", solo)
    gitlab.remove_project("lab/a")

    with pytest.raises(python_gitlab.GitlabGetError) as gone:
        lab.projects.get("lab/a")
    assert (gone.value.response_code, gone.value.error_message) == (404, "404 Project Not Found")
    http_url = gitlab.url.replace("http://", f"http://oauth2:{lab.private_token}@") + "/lab/a.git"
    over_http = git(gitlab, key, "clone", http_url, str(tmp_path / "http"))
    assert over_http.returncode != 0 and "could not be found or you don't have permission" in over_http.stderr
    over_ssh = git(gitlab, key, "clone", gitlab.ssh_url("lab/a"), str(tmp_path / "ssh"))
    assert over_ssh.returncode != 0 and "could not be found or you don't have permission" in over_ssh.stderr
    orphan = git(gitlab, solo, "clone", gitlab.ssh_url("lab/a"), str(tmp_path / "solo"))
    assert orphan.returncode != 0 and "Permission denied (publickey)" in orphan.stderr
    assert git(gitlab, key, "clone", gitlab.ssh_url("lab/b"), str(tmp_path / "b")).returncode == 0


def test_expired_key_is_refused(gitlab, lab, key, tmp_path):
    yesterday = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat()
    add_key(lab, "lab/a", key, expires_at=yesterday)
    refused = git(gitlab, key, "clone", gitlab.ssh_url("lab/a"), str(tmp_path / "clone"))
    assert refused.returncode != 0 and "Permission denied (publickey)" in refused.stderr
