"""The home page (my projects, searchable, paginated as GitLab paginates), the branch
picker, and Launch: a POST with CSRF protection that checks access with my own token
before anything is created."""

from __future__ import annotations

import html
import re

import pytest

from booklab.phases import Phase
from gitlab_standin.store import GUEST, MAINTAINER
from tests.fixtures.web import csrf_token


def project_paths(page_html: str) -> list[str]:
    return [html.unescape(p) for p in re.findall(r'<span class="path">([^<]+)</span>', page_html)]


def next_link(page_html: str) -> str | None:
    found = re.search(r'rel="next" href="([^"]+)"', page_html)
    return html.unescape(found.group(1)) if found else None


def nothing_was_created(redis_client, gitlab) -> None:
    assert redis_client.hgetall("status") == {}
    assert redis_client.zcard("queue") == 0
    assert redis_client.llen("deployments") == 0  # no Celery message for a runner
    assert redis_client.keys("secret:*") == [] and redis_client.keys("deployment:*") == []
    assert [r for r in gitlab.request_log() if "/deploy_keys" in r.path] == []


def test_a_member_of_130_projects_pages_through_all_of_them(logged_in, gitlab, alice):
    bob = gitlab.add_user("bob")
    mine = [f"bulk/project-{i:03d}" for i in range(130)]
    for path in mine:
        gitlab.add_project(path, members={alice.username: MAINTAINER})
    gitlab.add_project("bulk/not-mine", members={bob.username: MAINTAINER})

    page = logged_in.get("/")
    assert "Page 1 of 7" in page.text and "130 projects" in page.text
    seen, pages, link = [], 0, "/"
    while link:
        page = logged_in.get(link)
        assert page.status_code == 200
        seen += project_paths(page.text)
        pages += 1
        link = next_link(page.text)
    assert pages == 7
    assert sorted(seen) == mine  # each one once, and no project of someone else
    assert 'rel="prev"' in page.text and "Page 7 of 7" in page.text


def test_search_finds_my_matching_projects(logged_in, gitlab, alice):
    for path in ("lab/ocean-model", "lab/ocean-data", "lab/forest"):
        gitlab.add_project(path, members={alice.username: MAINTAINER})
    found = logged_in.get("/?search=ocean")
    assert sorted(project_paths(found.text)) == ["lab/ocean-data", "lab/ocean-model"]
    assert "None of your projects matches" in logged_in.get("/?search=desert").text


def test_search_matches_the_group_too(logged_in, gitlab, alice):
    for path in ("oceanlab/model", "oceanlab/data", "forest/ocean-notes", "forest/trees"):
        gitlab.add_project(path, members={alice.username: MAINTAINER})
    found = logged_in.get("/?search=ocean")
    assert sorted(project_paths(found.text)) == ["forest/ocean-notes", "oceanlab/data", "oceanlab/model"]


def test_the_list_shows_only_projects_i_can_launch(logged_in, gitlab, alice):
    gitlab.add_project("lab/current", members={alice.username: MAINTAINER})
    gitlab.add_project("lab/old", members={alice.username: MAINTAINER})
    gitlab.archive("lab/old")
    gitlab.add_project("lab/watched", members={alice.username: GUEST})  # a Guest cannot clone it
    assert project_paths(logged_in.get("/").text) == ["lab/current"]


def test_the_branch_picker_preselects_the_default_branch(logged_in, gitlab, alice, tmp_path):
    from tests.fixtures.gitlab import create_local_repo

    repo = create_local_repo(tmp_path / "repo", {"main": {"a": "1"}, "dev": {"b": "2"}, "feature/été": {"c": "3"}})
    gitlab.add_project("lab/picker", members={alice.username: MAINTAINER}, default_branch="dev")
    gitlab.push("lab/picker", repo)
    page = logged_in.get("/projects/lab/picker")
    assert page.status_code == 200
    options = re.findall(r'<option value="([^"]+)"( selected)?>', page.text)
    assert [html.unescape(name) for name, _ in options] == ["dev", "feature/été", "main"]
    assert [name for name, selected in options if selected] == ["dev"]
    assert 'action="/launch"' in page.text and 'name="csrf_token"' in page.text
    assert "/v2/gl/lab%2Fpicker/dev" in page.text  # the launch link to share


def test_launch_without_the_csrf_token_is_refused_and_creates_nothing(logged_in, plain_project, gitlab, redis_client):
    refused = logged_in.post("/launch", data={"project": plain_project, "ref": "main"})
    assert refused.status_code == 400 and "CSRF" in refused.text
    forged = logged_in.post("/launch", data={"project": plain_project, "ref": "main", "csrf_token": "forged"})
    assert forged.status_code == 400
    nothing_was_created(redis_client, gitlab)


@pytest.mark.parametrize(
    "level, status, says",
    [
        (None, 404, "Project demo/secret was not found on GitLab, or your account cannot read it"),
        (GUEST, 403, "does not let you read its code"),
    ],
)
def test_launch_of_a_project_i_cannot_read_creates_nothing(logged_in, gitlab, alice, redis_client, level, status, says):
    bob = gitlab.add_user("bob")
    gitlab.add_project("demo/secret", members={bob.username: MAINTAINER})
    if level is not None:
        gitlab.set_member("demo/secret", alice.username, level)
    answer = logged_in.post(
        "/launch", data={"project": "demo/secret", "ref": "main", "csrf_token": csrf_token(logged_in)}
    )
    assert answer.status_code == status and says in html.unescape(answer.text)
    nothing_was_created(redis_client, gitlab)


def test_launch_queues_the_deployment_and_opens_its_page(logged_in, plain_project, ctx, redis_client):
    answer = logged_in.post(
        "/launch", data={"project": plain_project, "ref": "feature/été", "csrf_token": csrf_token(logged_in)}
    )
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/v2/gl/demo%2Fnotebooks/feature/%C3%A9t%C3%A9"
    deployment = f"{plain_project}:feature/été:alice"
    assert ctx.deployments.status(deployment) is Phase.TODO
    assert ctx.deployments.queue_position(deployment) == 1 and redis_client.llen("deployments") == 1
    page = logged_in.get(answer.headers["Location"])
    assert page.status_code == 200 and "feature/été" in page.text
    home = logged_in.get("/")
    assert "Your notebooks" in home.text and "/v2/gl/demo%2Fnotebooks/feature/%C3%A9t%C3%A9" in home.text


def test_a_path_in_another_case_launches_the_deployment_gitlab_names(logged_in, plain_project, ctx):
    """GitLab finds ``Demo/NOTEBOOKS`` at ``demo/notebooks``: one project, so one deployment, named as GitLab
    names the project, whether launched by the form, the API or a launch link."""
    answer = logged_in.post(
        "/launch", data={"project": "Demo/NOTEBOOKS", "ref": "main", "csrf_token": csrf_token(logged_in)}
    )
    assert answer.status_code == 303 and answer.headers["Location"] == "/v2/gl/demo%2Fnotebooks/main"
    deployment = f"{plain_project}:main:alice"
    assert ctx.deployments.status(deployment) is Phase.TODO

    link = logged_in.get("/v2/gl/DEMO%2Fnotebooks/main?urlpath=lab")
    assert link.status_code == 302 and link.headers["Location"] == "/v2/gl/demo%2Fnotebooks/main?urlpath=lab"
    assert [dep.id for dep, _ in ctx.deployments.of_user("alice")] == [deployment]


@pytest.mark.parametrize(
    "link, status, says",
    [
        ("/v2/gl/demo%2Fmissing/main", 404, "Project demo/missing was not found on GitLab"),
        ("/v2/gl/demo%2Fnotebooks/no-such-branch", 404, "Branch 'no-such-branch' does not exist in demo/notebooks"),
        ("/v2/gl/demo/notebooks/main", 404, "with the project path URL-escaped"),
        # malformed links: a clear page, never a crash, nothing created
        ("/v2/gl/demo%2Fnotebooks", 404, "Launch links look like"),
        ("/v2/gl/demo%2Fnotebooks/", 404, "Launch links look like"),
        ("/v2/gl/notebooks/main", 404, "Launch links look like"),
        ("/v2/gl/demo%2Fnotebooks/--upload-pack=touch%20x", 404, "Branch '--upload-pack=touch x' does not exist"),
        ("/v2/gl/demo%2F..%2F..%2Fetc/main", 404, "Project demo/../../etc was not found"),
        ("/v2/gl/demo%2Fnot%FFebooks/main", 404, "was not found on GitLab"),
        ("/v2/gl/demo%2Fnotebooks/ma%ZZin", 404, "Branch 'ma%ZZin' does not exist"),
        ("/v2/gl/%00%2Fx/main", 400, "is not valid"),
        ("/v2/gl/" + "a" * 3000 + "%2Fb/main", 404, "was not found on GitLab"),
    ],
)
def test_a_launch_link_to_an_unknown_project_or_branch_says_which(
    logged_in, plain_project, gitlab, redis_client, link, status, says
):
    page = logged_in.get(link)
    assert page.status_code == status and says in html.unescape(page.text)
    nothing_was_created(redis_client, gitlab)


def test_gitlab_asking_to_slow_down_is_a_503_that_says_when_to_come_back(logged_in, gitlab):
    gitlab.fail_next(r"^/api/v4/projects$", status=429, retry_after=30)
    page = logged_in.get("/")
    assert page.status_code == 503 and page.headers["Retry-After"] == "30"
    assert "slow down" in html.unescape(page.text)
    assert [r.status for r in gitlab.request_log() if r.path == "/api/v4/projects"] == [429]  # asked once, no waiting


def test_booklabs_link_in_a_jupyterhubs_services_menu_leads_to_booklabs_own_address(web_client, web_env):
    """The hub's proxy sends the link here under a host of the hub's (hub mode, without web/url): a relative
    redirect would stay on the hub's host."""
    assert "BOOKLAB_WEB_URL" not in web_env and "BOOKLAB_ROUTES_PORT" not in web_env
    answer = web_client.get("/services/booklab/", headers={"Host": "booklab--service.hub.example.org"})
    assert answer.status_code == 302 and answer.headers["Location"] == "http://booklab.localhost/"
