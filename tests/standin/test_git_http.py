"""Git over the stand-in's smart HTTP with real git: ``oauth2:<token>`` clones for members,
401 for a bad or missing token, 403 for an OAuth token without the scope, 404 for
non-members; pushes from Developers (Maintainers for protected branches, refused in the
pre-receive hook as GitLab does) that leave the repository pushable over SSH; archived
projects; and the new merge request page a pushed branch links to."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from gitlab_standin.store import DEVELOPER, MAINTAINER, REPORTER
from tests.fixtures.gitlab import GIT_IDENTITY, create_local_repo


def git(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, **GIT_IDENTITY, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", **env},
    )


def with_token(url: str, token: str) -> str:
    return url.replace("http://", f"http://oauth2:{token}@", 1)


def clone(url: str, token: str, dest: Path) -> subprocess.CompletedProcess:
    return git("clone", with_token(url, token), str(dest))


def commit_on(repo: Path, branch: str, name: str, content: str) -> str:
    """Check out ``branch`` (made from HEAD when new), commit one file; returns the commit id."""
    exists = git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", cwd=repo).returncode == 0
    assert git("checkout", "--quiet", *([] if exists else ["-b"]), branch, cwd=repo).returncode == 0
    (repo / name).write_text(content)
    assert git("add", name, cwd=repo).returncode == 0
    assert git("commit", "--quiet", "-m", f"Edit {name}", cwd=repo).returncode == 0
    return git("rev-parse", "HEAD", cwd=repo).stdout.strip()


def push(url: str, token: str, repo: Path, branch: str) -> subprocess.CompletedProcess:
    return git("push", with_token(url, token), f"refs/heads/{branch}:refs/heads/{branch}", cwd=repo)


def branch_heads(gitlab, project: str, token: str) -> dict[str, str]:
    response = requests.get(
        f"{gitlab.url}/api/v4/projects/{quote(project, safe='')}/repository/branches",
        headers={"PRIVATE-TOKEN": token},
        timeout=10,
    )
    return {branch["name"]: branch["commit"]["id"] for branch in response.json()}


@pytest.fixture
def book(gitlab, tmp_path) -> Path:
    """lab/book with a main branch; returns a local repository holding it."""
    gitlab.add_project("lab/book")
    source = create_local_repo(tmp_path / "src", {"main": {"index.ipynb": "{}"}})
    gitlab.push("lab/book", source)
    return source


def test_member_clones_with_oauth_token(gitlab, tmp_path):
    alice = gitlab.add_user("alice")
    gitlab.add_project("lab/book", {"alice": DEVELOPER})
    gitlab.push(
        "lab/book",
        create_local_repo(tmp_path / "src", {"main": {"index.ipynb": "{}"}, "feature/x": {"more.txt": "more"}}),
    )
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


def test_oauth_token_scopes_limit_git(gitlab, book, tmp_path):
    mary = gitlab.add_user("mary")
    gitlab.set_member("lab/book", "mary", MAINTAINER)
    commit_on(book, "booklab/edit", "notes.txt", "notes")
    url = f"{gitlab.url}/lab/book.git"

    profile = gitlab.issue_oauth_token(mary, scope="read_user openid profile")
    cannot_read = clone(url, profile, tmp_path / "profile")
    assert cannot_read.returncode != 0 and "remote: You are not allowed to download code." in cannot_read.stderr
    cannot_push = push(url, profile, book, "booklab/edit")
    assert cannot_push.returncode != 0 and "remote: You are not allowed to upload code." in cannot_push.stderr
    read_api = gitlab.issue_oauth_token(mary, scope="read_api")
    cloned = clone(url, read_api, tmp_path / "read_api")  # as GitLab: read_api gives download_code
    assert cloned.returncode == 0, cloned.stderr
    cannot_push = push(url, read_api, book, "booklab/edit")
    assert cannot_push.returncode != 0 and "remote: You are not allowed to upload code." in cannot_push.stderr
    assert "booklab/edit" not in branch_heads(gitlab, "lab/book", mary.token)
    pushed = push(url, gitlab.issue_oauth_token(mary, scope="api"), book, "booklab/edit")
    assert pushed.returncode == 0, pushed.stderr


def test_developer_pushes_a_new_branch(gitlab, book):
    dave = gitlab.add_user("dave")
    gitlab.set_member("lab/book", "dave", DEVELOPER)
    pushed = commit_on(book, "booklab/edit", "index.ipynb", '{"cells": []}')

    done = push(f"{gitlab.url}/lab/book.git", gitlab.issue_oauth_token(dave), book, "booklab/edit")
    assert done.returncode == 0, done.stderr
    assert branch_heads(gitlab, "lab/book", dave.token)["booklab/edit"] == pushed
    pushes = [(r.method, r.username, r.status) for r in gitlab.request_log() if r.path.endswith("git-receive-pack")]
    assert pushes == [("POST", "dave", 200)]

    page = requests.get(
        f"{gitlab.url}/lab/book/-/merge_requests/new",
        timeout=10,
        params={"merge_request[source_branch]": "booklab/edit", "merge_request[target_branch]": "main"},
    )
    assert page.status_code == 200 and "<title>New merge request" in page.text
    assert ">booklab/edit</code>" in page.text and ">main</code>" in page.text and "1 commit." in page.text


def test_reporter_or_stranger_cannot_push(gitlab, book):
    reporter, stranger = gitlab.add_user("rita"), gitlab.add_user("mallory")
    gitlab.set_member("lab/book", "rita", REPORTER)
    commit_on(book, "booklab/edit", "notes.txt", "notes")
    url = f"{gitlab.url}/lab/book.git"

    refused = push(url, reporter.token, book, "booklab/edit")
    assert refused.returncode != 0 and "You are not allowed to push code to this project." in refused.stderr
    assert push(url, gitlab.issue_oauth_token(stranger), book, "booklab/edit").returncode != 0
    bad = push(url, "not-a-token", book, "booklab/edit")
    assert bad.returncode != 0 and "Authentication failed" in bad.stderr
    assert "booklab/edit" not in branch_heads(gitlab, "lab/book", reporter.token)

    def advertisement(auth):
        return requests.get(f"{url}/info/refs", params={"service": "git-receive-pack"}, auth=auth, timeout=10)

    assert advertisement(("oauth2", reporter.token)).status_code == 403
    assert advertisement(("oauth2", stranger.token)).status_code == 404
    anonymous = advertisement(None)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Basic")


def test_default_branch_needs_maintainer(gitlab, book):
    dave, mary = gitlab.add_user("dave"), gitlab.add_user("mary")
    gitlab.set_member("lab/book", "dave", DEVELOPER)
    gitlab.set_member("lab/book", "mary", MAINTAINER)
    before = branch_heads(gitlab, "lab/book", mary.token)["main"]
    pushed = commit_on(book, "main", "index.ipynb", '{"cells": []}')
    url = f"{gitlab.url}/lab/book.git"

    refused = push(url, dave.token, book, "main")
    assert refused.returncode != 0
    assert "remote: GitLab: You are not allowed to push code to protected branches on this project." in refused.stderr
    assert "! [remote rejected] main -> main (pre-receive hook declined)" in refused.stderr
    assert branch_heads(gitlab, "lab/book", mary.token)["main"] == before
    pushes = [(r.method, r.username, r.status) for r in gitlab.request_log() if r.path.endswith("git-receive-pack")]
    assert pushes == [("POST", "dave", 200)]  # as GitLab: refused in the hook, told in git's report
    done = push(url, mary.token, book, "main")
    assert done.returncode == 0, done.stderr
    assert branch_heads(gitlab, "lab/book", mary.token)["main"] == pushed


def test_wildcard_protected_branches_need_maintainer(gitlab, book):
    dave, mary = gitlab.add_user("dave"), gitlab.add_user("mary")
    gitlab.set_member("lab/book", "dave", DEVELOPER)
    gitlab.set_member("lab/book", "mary", MAINTAINER)
    gitlab.protect_branches("lab/book", "booklab/*")
    pushed = commit_on(book, "booklab/x/y", "notes.txt", "notes")
    url = f"{gitlab.url}/lab/book.git"

    refused = push(url, dave.token, book, "booklab/x/y")
    assert refused.returncode != 0
    assert "remote: GitLab: You are not allowed to create protected branches on this project." in refused.stderr
    assert "! [remote rejected] booklab/x/y -> booklab/x/y (pre-receive hook declined)" in refused.stderr
    assert "booklab/x/y" not in branch_heads(gitlab, "lab/book", dave.token)
    done = push(url, mary.token, book, "booklab/x/y")
    assert done.returncode == 0, done.stderr
    assert branch_heads(gitlab, "lab/book", dave.token)["booklab/x/y"] == pushed
    branches = requests.get(
        f"{gitlab.url}/api/v4/projects/lab%2Fbook/repository/branches",
        headers={"PRIVATE-TOKEN": dave.token},
        timeout=10,
    ).json()
    assert {b["name"]: (b["protected"], b["can_push"]) for b in branches} == {
        "booklab/x/y": (True, False),
        "main": (True, False),
    }


def test_protected_branches_are_not_force_pushed_or_deleted_with_git(gitlab, book):
    mary = gitlab.add_user("mary")
    gitlab.set_member("lab/book", "mary", MAINTAINER)
    gitlab.protect_branches("lab/book", "booklab/*")
    commit_on(book, "booklab/kept", "notes.txt", "notes")
    url = f"{gitlab.url}/lab/book.git"
    assert push(url, mary.token, book, "booklab/kept").returncode == 0
    assert git("commit", "--quiet", "--amend", "-m", "Rewritten", cwd=book).returncode == 0

    def refusal(refspec: str) -> str:
        done = git("push", "--force", with_token(url, mary.token), refspec, cwd=book)
        assert done.returncode != 0 and "(pre-receive hook declined)" in done.stderr
        return next(line.rstrip() for line in done.stderr.splitlines() if line.startswith("remote: GitLab: "))

    forced = refusal("booklab/kept:booklab/kept")
    assert forced == "remote: GitLab: You are not allowed to force push code to a protected branch on this project."
    deleted = refusal(":booklab/kept")
    assert deleted == "remote: GitLab: You can only delete protected branches using the web interface."
    assert refusal(":main") == "remote: GitLab: The default branch of a project cannot be deleted."
    assert set(branch_heads(gitlab, "lab/book", mary.token)) == {"booklab/kept", "main"}


def test_archived_project_refuses_pushes_but_serves_clones(gitlab, book, tmp_path):
    mary = gitlab.add_user("mary")
    gitlab.set_member("lab/book", "mary", MAINTAINER)
    gitlab.archive("lab/book")
    commit_on(book, "booklab/edit", "notes.txt", "notes")
    url = f"{gitlab.url}/lab/book.git"

    refused = push(url, mary.token, book, "booklab/edit")
    assert refused.returncode != 0
    assert "remote: You can't push code to an archived project." in refused.stderr
    assert "booklab/edit" not in branch_heads(gitlab, "lab/book", mary.token)
    raw = requests.post(f"{url}/git-receive-pack", data=b"0000", auth=("oauth2", mary.token), timeout=10)
    assert (raw.status_code, raw.text) == (403, "You can't push code to an archived project.\n")
    assert raw.headers["Content-Type"].startswith("text/plain")
    cloned = clone(url, mary.token, tmp_path / "clone")
    assert cloned.returncode == 0, cloned.stderr
    api = f"{gitlab.url}/api/v4/projects/lab%2Fbook"
    assert requests.get(api, headers={"PRIVATE-TOKEN": mary.token}, timeout=10).json()["archived"] is True


def test_ssh_push_still_works_after_an_http_push(gitlab, book, tmp_path):
    mary = gitlab.add_user("mary")
    gitlab.set_member("lab/book", "mary", MAINTAINER)
    commit_on(book, "booklab/edit", "a.txt", "over HTTP")
    assert push(f"{gitlab.url}/lab/book.git", mary.token, book, "booklab/edit").returncode == 0
    repo, account = gitlab.repos.path("lab/book"), gitlab.ssh.account
    owners = {(path.stat().st_uid, path.stat().st_gid) for path in [repo, *repo.rglob("*")]}
    assert owners == {(account.pw_uid, account.pw_gid)}  # the SSH login user's, as before

    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    added = requests.post(
        f"{gitlab.url}/api/v4/projects/lab%2Fbook/deploy_keys",
        headers={"PRIVATE-TOKEN": mary.token},
        json={"title": "booklab", "key": key.with_suffix(".pub").read_text(), "can_push": True},
        timeout=10,
    )
    assert added.status_code == 201
    (tmp_path / "known_hosts").write_text(gitlab.known_hosts_line + "\n")
    pushed = commit_on(book, "booklab/edit", "b.txt", "over SSH")
    ssh = (
        f"ssh -F /dev/null -i {key} -o IdentitiesOnly=yes -o BatchMode=yes "
        f"-o UserKnownHostsFile={tmp_path / 'known_hosts'}"
    )
    done = git("push", gitlab.ssh_url("lab/book"), "booklab/edit", cwd=book, GIT_SSH_COMMAND=ssh)
    assert done.returncode == 0, done.stderr
    assert branch_heads(gitlab, "lab/book", mary.token)["booklab/edit"] == pushed


def test_new_merge_request_page_needs_the_project_and_branch(gitlab, book):
    def page(project: str, source: str) -> int:
        return requests.get(
            f"{gitlab.url}/{project}/-/merge_requests/new", timeout=10, params={"merge_request[source_branch]": source}
        ).status_code

    assert page("lab/book", "main") == 200  # target: the default branch
    assert page("lab/book", "absent") == 404
    assert page("lab/other", "main") == 404
