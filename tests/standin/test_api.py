"""The stand-in's REST API v4 through python-gitlab and raw requests: authentication, the
current user (with its commit email), membership listing with GitLab's pagination,
projects by id or encoded path, privacy of non-member projects, and branches read from
the real bare repository."""

from __future__ import annotations

import subprocess
from urllib.parse import parse_qs, urlsplit

import gitlab as python_gitlab
import pytest
import requests

from gitlab_standin.store import DEVELOPER, GUEST, MAINTAINER, REPORTER
from tests.fixtures.gitlab import create_local_repo


def client(server, **auth) -> python_gitlab.Gitlab:
    return python_gitlab.Gitlab(server.url, **auth)


def test_current_user_with_personal_or_oauth_token(gitlab):
    alice = gitlab.add_user("alice", name="Alice Liddell", email="alice@wonder.land")
    for auth in ({"private_token": alice.token}, {"oauth_token": gitlab.issue_oauth_token(alice)}):
        with client(gitlab, **auth) as gl:
            gl.auth()
            assert (gl.user.id, gl.user.username, gl.user.name, gl.user.email, gl.user.state) == (
                alice.id,
                "alice",
                "Alice Liddell",
                "alice@wonder.land",
                "active",
            )
            assert gl.user.web_url == f"{gitlab.url}/alice"
            assert gl.user.commit_email == "alice@wonder.land"  # the email, as GitLab when none is set


@pytest.mark.parametrize("headers", [{}, {"PRIVATE-TOKEN": "glpat-wrong"}, {"Authorization": "Bearer wrong"}])
def test_missing_or_bad_token_is_401(gitlab, headers):
    gitlab.add_user("alice")
    response = requests.get(f"{gitlab.url}/api/v4/user", headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.json() == {"message": "401 Unauthorized"}


def test_membership_listing_walks_every_page(gitlab):
    alice = gitlab.add_user("alice")
    gitlab.add_user("bob")
    for number in range(101):
        gitlab.add_project(f"lab/p{number:03}", {"alice": DEVELOPER})
    gitlab.add_project("bob/secret", {"bob": MAINTAINER})
    with client(gitlab, private_token=alice.token) as gl:
        listed = [p.path_with_namespace for p in gl.projects.list(membership=True, iterator=True)]
    assert sorted(listed) == [f"lab/p{number:03}" for number in range(101)]


def test_pagination_headers_are_gitlabs(gitlab):
    alice = gitlab.add_user("alice")
    for number in range(45):
        gitlab.add_project(f"lab/p{number:02}", {"alice": REPORTER})
    response = requests.get(
        f"{gitlab.url}/api/v4/projects",
        params={"membership": "true", "page": 2},
        headers={"PRIVATE-TOKEN": alice.token},
        timeout=10,
    )
    assert len(response.json()) == 20
    headers = response.headers
    assert (
        headers["X-Total"],
        headers["X-Total-Pages"],
        headers["X-Page"],
        headers["X-Per-Page"],
        headers["X-Prev-Page"],
        headers["X-Next-Page"],
    ) == ("45", "3", "2", "20", "1", "3")
    pages = {rel: parse_qs(urlsplit(link["url"]).query) for rel, link in response.links.items()}
    assert {rel: query["page"] for rel, query in pages.items()} == {
        "prev": ["1"],
        "next": ["3"],
        "first": ["1"],
        "last": ["3"],
    }
    assert pages["next"]["per_page"] == ["20"] and pages["next"]["membership"] == ["true"]
    assert response.links["next"]["url"].startswith(f"{gitlab.url}/api/v4/projects?")

    last = requests.get(
        f"{gitlab.url}/api/v4/projects",
        params={"page": 3, "per_page": 500},
        headers={"PRIVATE-TOKEN": alice.token},
        timeout=10,
    )
    assert last.headers["X-Per-Page"] == "100" and last.headers["X-Next-Page"] == ""
    assert last.json() == [] and "next" not in last.links


def test_search_and_simple_listing(gitlab):
    alice = gitlab.add_user("alice")
    gitlab.add_project("lab/climate-notebooks", {"alice": DEVELOPER})
    gitlab.add_project("lab/other", {"alice": DEVELOPER})
    response = requests.get(
        f"{gitlab.url}/api/v4/projects",
        params={"membership": "true", "simple": "true", "search": "Climate"},
        headers={"Authorization": f"Bearer {alice.token}"},
        timeout=10,
    )
    [project] = response.json()
    assert project["path_with_namespace"] == "lab/climate-notebooks"
    assert "permissions" not in project and project["namespace"]["full_path"] == "lab"


def test_project_by_encoded_path_and_by_id(gitlab):
    alice = gitlab.add_user("alice")
    created = gitlab.add_project("group/sub/notebooks", {"alice": DEVELOPER}, default_branch="trunk")
    with client(gitlab, private_token=alice.token) as gl:
        by_path = gl.projects.get("group/sub/notebooks")
        by_id = gl.projects.get(created.id)
    assert by_path.id == by_id.id == created.id
    assert (by_path.name, by_path.path, by_path.name_with_namespace) == (
        "notebooks",
        "notebooks",
        "group / sub / notebooks",
    )
    assert by_path.default_branch == "trunk" and by_path.visibility == "private"
    assert by_path.ssh_url_to_repo == f"ssh://git@127.0.0.1:{gitlab.ssh_port}/group/sub/notebooks.git"
    assert by_path.http_url_to_repo == f"{gitlab.url}/group/sub/notebooks.git"
    assert by_path.web_url == f"{gitlab.url}/group/sub/notebooks"
    assert by_path.namespace["kind"] == "group" and by_path.namespace["full_path"] == "group/sub"
    assert by_path.permissions == {
        "project_access": {"access_level": DEVELOPER, "notification_level": 3},
        "group_access": None,
    }


def test_user_namespace_project(gitlab):
    alice = gitlab.add_user("alice", name="Alice Liddell")
    gitlab.add_project("alice/diary", {"alice": MAINTAINER})
    with client(gitlab, private_token=alice.token) as gl:
        project = gl.projects.get("alice/diary")
    assert project.name_with_namespace == "Alice Liddell / diary"
    assert project.namespace["kind"] == "user" and project.namespace["web_url"] == f"{gitlab.url}/alice"


def test_private_project_is_invisible_to_non_members(gitlab):
    alice, mallory = gitlab.add_user("alice"), gitlab.add_user("mallory")
    project = gitlab.add_project("lab/secret", {"alice": MAINTAINER})
    for ref in ("lab%2Fsecret", str(project.id), "lab%2Fmissing"):
        response = requests.get(
            f"{gitlab.url}/api/v4/projects/{ref}", headers={"PRIVATE-TOKEN": mallory.token}, timeout=10
        )
        assert response.status_code == 404
        assert response.json() == {"message": "404 Project Not Found"}
    with client(gitlab, private_token=mallory.token) as gl:
        assert gl.projects.list(membership=True, get_all=True) == []
    gitlab.set_member("lab/secret", "mallory", REPORTER)
    with client(gitlab, private_token=mallory.token) as gl:
        assert gl.projects.get("lab/secret").id == project.id
    gitlab.set_member("lab/secret", "alice", None)
    with client(gitlab, private_token=alice.token) as gl, pytest.raises(python_gitlab.GitlabGetError) as lost:
        gl.projects.get("lab/secret")
    assert lost.value.response_code == 404


def test_branches_come_from_the_repository(gitlab, tmp_path):
    alice = gitlab.add_user("alice")
    gitlab.add_project("lab/book", {"alice": DEVELOPER})
    source = create_local_repo(
        tmp_path / "book",
        {
            "main": {"README.md": "# Book\n"},
            "feature/été": {"chapitre.ipynb": "{}"},
            "docs": {"index.md": "docs\n"},
        },
    )
    subprocess.run(["git", "checkout", "--quiet", "main"], cwd=source, check=True)
    subprocess.run(["git", "merge", "--quiet", "--ff-only", "docs"], cwd=source, check=True)
    gitlab.push("lab/book", source)
    head = subprocess.run(
        ["git", "rev-parse", "feature/été"], cwd=source, check=True, capture_output=True, text=True
    ).stdout.strip()

    with client(gitlab, private_token=alice.token) as gl:
        project = gl.projects.get("lab/book")
        branches = {b.name: b for b in project.branches.list(get_all=True)}
        feature = project.branches.get("feature/été")
        assert [b.name for b in project.branches.list(search="^feat", get_all=True)] == ["feature/été"]
        with pytest.raises(python_gitlab.GitlabGetError) as missing:
            project.branches.get("feature/absent")

    assert sorted(branches) == ["docs", "feature/été", "main"]
    assert (branches["main"].default, branches["main"].protected, branches["main"].can_push) == (True, True, False)
    assert (branches["docs"].merged, branches["feature/été"].merged) == (True, False)
    assert branches["feature/été"].can_push is True
    assert feature.commit["id"] == head and feature.commit["short_id"] == head[:8]
    assert feature.commit["title"] == "Add chapitre.ipynb on feature/été"
    assert feature.commit["author_name"] == "Ada Lovelace"
    assert feature.commit["parent_ids"] == branches["docs"].commit["parent_ids"] != []
    assert missing.value.response_code == 404
    assert missing.value.error_message == "404 Branch Not Found"


def test_guest_cannot_read_branches(gitlab):
    guest = gitlab.add_user("guest")
    gitlab.add_project("lab/book", {"guest": GUEST})
    response = requests.get(
        f"{gitlab.url}/api/v4/projects/lab%2Fbook/repository/branches",
        headers={"PRIVATE-TOKEN": guest.token},
        timeout=10,
    )
    assert response.status_code == 403 and response.json() == {"message": "403 Forbidden"}


def test_injected_faults_answer_their_status_then_stop(gitlab):
    alice = gitlab.add_user("alice")
    gitlab.fail_next(r"^/api/v4/user$", status=502, times=2)
    headers = {"PRIVATE-TOKEN": alice.token}
    statuses = [requests.get(f"{gitlab.url}/api/v4/user", headers=headers, timeout=10) for _ in range(3)]
    assert [r.status_code for r in statuses] == [502, 502, 200]
    assert statuses[0].json() == {"message": "502 Bad Gateway"}


def test_a_slow_fault_answers_late_but_normally(gitlab):
    alice = gitlab.add_user("alice")
    gitlab.fail_next(r"^/api/v4/user$", status=0, delay=1.5)
    with pytest.raises(requests.Timeout):
        requests.get(f"{gitlab.url}/api/v4/user", headers={"PRIVATE-TOKEN": alice.token}, timeout=0.5)
    assert (
        requests.get(f"{gitlab.url}/api/v4/user", headers={"PRIVATE-TOKEN": alice.token}, timeout=10).json()["username"]
        == "alice"
    )


def test_a_project_is_found_by_its_path_in_any_case_and_named_as_it_was_created(gitlab):
    alice = gitlab.add_user("alice")
    gitlab.add_project("Course/Lab", members={"alice": REPORTER})
    answer = requests.get(f"{gitlab.url}/api/v4/projects/course%2FLAB", headers={"PRIVATE-TOKEN": alice.token})
    assert answer.status_code == 200 and answer.json()["path_with_namespace"] == "Course/Lab"
    with pytest.raises(ValueError, match="exists"):  # GitLab: "has already been taken"
        gitlab.add_project("course/lab", members={})
