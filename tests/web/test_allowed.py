"""``access/*``: only the members of the allowed groups (their subgroups' too) log in and
launch, checked again at each launch; only the allowed projects launch. A refused user is
told which group to join. GitLab's groups are the stand-in's, read through its API."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from gitlab_standin.store import DEVELOPER, GUEST
from tests.fixtures.web import sign_in_at_gitlab


@pytest.fixture
def booklab_env(booklab_env):
    return {**booklab_env, "BOOKLAB_ACCESS_ALLOWED_GROUPS": "dept/lab", "BOOKLAB_ACCESS_ALLOWED_PROJECTS": "demo"}


def logging_in(client, user):
    """Booklab's answer to GitLab's redirect back, after ``user`` signed in there."""
    response = client.get("/login/gitlab")
    while response.status_code == 302 and not response.headers["Location"].startswith("http"):
        response = client.get(response.headers["Location"])
    callback = urlsplit(sign_in_at_gitlab(response.headers["Location"], user))
    return client.get(f"{callback.path}?{callback.query}")


def launch(client, user, project: str, ref: str = "main"):
    headers = {"Authorization": f"Bearer {user.token}"}
    return client.post("/api/deployments", json={"project": project, "ref": ref}, headers=headers)


def test_only_members_of_an_allowed_group_log_in_and_launch_and_only_allowed_projects(
    web_client, web_app, gitlab, alice, plain_project
):
    gitlab.add_group("dept")
    gitlab.add_group("dept/lab")
    gitlab.add_group("dept/lab/course", {alice.username: GUEST})  # a subgroup's member is in
    bob = gitlab.add_user("bob")
    gitlab.set_member(plain_project, "bob", DEVELOPER)
    gitlab.add_group("dept/other", {"bob": DEVELOPER})  # a sibling group's is not

    assert logging_in(web_client, alice).status_code == 302
    assert launch(web_client, alice, plain_project).status_code == 201

    with web_app.test_client() as other:
        refused = logging_in(other, bob)
        assert refused.status_code == 403
        assert "for the members of dept/lab on GitLab: ask to join" in refused.get_data(as_text=True)
        assert other.get("/api/user").status_code == 401  # no session was made
    answer = launch(web_client, bob, plain_project)
    assert answer.status_code == 403 and "ask to join" in answer.json["error"]

    gitlab.set_group_member("dept/lab/course", alice.username, None)  # checked again at each launch
    answer = launch(web_client, alice, plain_project, "dev")
    assert answer.status_code == 403 and "ask to join" in answer.json["error"]

    gitlab.set_group_member("dept/lab/course", alice.username, GUEST)
    gitlab.add_project("lab/other", {alice.username: DEVELOPER})
    answer = launch(web_client, alice, "lab/other")
    assert answer.status_code == 403 and answer.json["error"] == (
        "This Booklab launches the projects of demo only, and lab/other is not one."
    )


def test_the_home_page_lists_only_the_projects_that_may_be_launched(web_client, gitlab, alice, plain_project):
    gitlab.add_group("dept")
    gitlab.add_group("dept/lab", {alice.username: GUEST})
    gitlab.add_project("lab/other", {alice.username: DEVELOPER})
    assert logging_in(web_client, alice).status_code == 302
    page = web_client.get("/").get_data(as_text=True)
    assert plain_project in page and "lab/other" not in page
    assert "This Booklab launches the projects of demo only: 1 other of yours on this page is not listed." in page
