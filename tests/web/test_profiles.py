"""Machine profiles at launch: each user is offered the profiles their GitLab groups give them
(subgroups included) on the project page, ``GET /api/profiles`` and the CLI; a launch names one
through the form, the API, a launch link's ``?profile=`` or a retry (the last one by default);
a profile for other groups is refused with 403 naming them, an unknown one with 400 listing
those there are. The deployment keeps the pick and the profiles its user may use."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from booklab.cli import main as cli
from gitlab_standin.store import GUEST
from tests.fixtures.web import csrf_token

PROFILES = {
    "small": {"memory": "1g", "cpus": 1, "description": "Reading"},
    "large": {"memory": "4g", "cpus": 2, "groups": "physics/gpu"},
}
CLICKED = {"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-User": "?1"}


@pytest.fixture
def booklab_env(booklab_env):
    return {**booklab_env, "BOOKLAB_PROFILES_LIST": json.dumps(PROFILES), "BOOKLAB_PROFILES_DEFAULT": "small"}


def bearer(user) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}"}


def launch(client, user, project: str, **body):
    return client.post("/api/deployments", headers=bearer(user), json={"project": project, "ref": "main", **body})


def names(client, user) -> list[str]:
    answer = client.get("/api/profiles", headers=bearer(user))
    assert answer.status_code == 200 and answer.json["default"] == "small"
    return [p["name"] for p in answer.json["profiles"]]


def test_a_user_is_offered_and_may_launch_on_the_profiles_of_their_groups_only(
    web_client, gitlab, alice, plain_project, ctx
):
    gitlab.add_group("physics")
    gitlab.add_group("physics/gpu")
    assert names(web_client, alice) == ["small"]
    refused = launch(web_client, alice, plain_project, profile="large")
    assert refused.status_code == 403
    assert refused.json["error"] == (
        "The profile large is for the members of physics/gpu on GitLab: pick another one, or ask to join one of them."
    )
    unknown = launch(web_client, alice, plain_project, profile="huge")
    assert unknown.status_code == 400
    assert unknown.json["error"] == "There is no profile 'huge' here: pick one of small."  # not the others' profiles
    assert ctx.deployments.status(f"{plain_project}:main:alice") is None  # nothing was queued

    gitlab.add_group("physics/gpu/lab", {alice.username: GUEST})  # a subgroup's member is one of the group's
    assert names(web_client, alice) == ["small", "large"]
    launched = launch(web_client, alice, plain_project, profile="large")
    assert launched.status_code == 201 and launched.json["profile"] == "large"
    record = ctx.deployments.record(launched.json["id"])
    assert record["profile_asked"] == "large" and record["profiles_allowed"] == "small,large"


def test_a_launch_that_picks_none_keeps_the_profiles_its_user_may_use_for_the_repositorys_ask(
    web_client, alice, plain_project, ctx
):
    launched = launch(web_client, alice, plain_project)
    assert launched.status_code == 201 and "profile" not in launched.json
    record = ctx.deployments.record(launched.json["id"])
    assert record["profile_asked"] == "" and record["profiles_allowed"] == "small"


def test_a_retry_keeps_the_profile_last_picked_unless_it_names_another(web_client, gitlab, alice, plain_project, ctx):
    gitlab.add_group("physics")
    gitlab.add_group("physics/gpu", {alice.username: GUEST})
    deployment = launch(web_client, alice, plain_project, profile="large").json["id"]
    url = f"/api/deployments/{quote(deployment, safe='')}"
    for expected, body in (("large", {}), ("small", {"profile": "small"})):
        assert web_client.post(f"{url}/stop", headers=bearer(alice)).status_code == 202
        again = web_client.post(f"{url}/retry", headers=bearer(alice), json=body)
        assert again.status_code == 201 and again.json["profile"] == expected
        assert web_client.get(url, headers=bearer(alice)).json["profile"] == expected


def test_the_project_page_offers_a_picker_and_its_launch_picks_the_profile(
    logged_in, gitlab, alice, plain_project, ctx
):
    page = logged_in.get(f"/projects/{plain_project}").get_data(as_text=True)
    assert '<select id="profile" name="profile"' in page
    assert '<option value="small" selected>small: 1 GiB, 1 CPU · Reading</option>' in page
    assert 'value="large"' not in page  # for physics/gpu only
    gitlab.add_group("physics")
    gitlab.add_group("physics/gpu", {alice.username: GUEST})
    page = logged_in.get(f"/projects/{plain_project}").get_data(as_text=True)
    assert '<option value="large">large: 4 GiB, 2 CPUs</option>' in page

    form = {"csrf_token": csrf_token(logged_in), "project": plain_project, "ref": "main", "profile": "large"}
    answer = logged_in.post("/launch", data=form)
    assert answer.status_code == 303
    assert ctx.deployments.record(f"{plain_project}:main:alice")["profile_asked"] == "large"


def test_a_form_asking_for_a_profile_of_other_groups_is_refused_with_a_page_that_says_whose(
    logged_in, alice, plain_project, ctx
):
    form = {"csrf_token": csrf_token(logged_in), "project": plain_project, "ref": "main", "profile": "large"}
    answer = logged_in.post("/launch", data=form)
    assert answer.status_code == 403
    assert "The profile large is for the members of physics/gpu on GitLab" in answer.get_data(as_text=True)
    assert ctx.deployments.status(f"{plain_project}:main:alice") is None


def test_a_launch_links_profile_goes_to_the_stream_that_launches_it(logged_in, alice, plain_project, ctx):
    link = f"/v2/gl/{quote(plain_project, safe='')}/main?profile=small"
    page = logged_in.get(link, headers=CLICKED).get_data(as_text=True)
    assert f'"streamUrl": "http://localhost/build/gl/{quote(plain_project, safe="")}/main?profile=small"' in page
    # opened by another site's script: a Launch button, which keeps the profile
    confirm = logged_in.get(link, headers={"Sec-Fetch-Site": "cross-site"}).get_data(as_text=True)
    assert '<input type="hidden" name="profile" value="small">' in confirm

    stream = logged_in.get(f"/build/gl/{quote(plain_project, safe='')}/main?profile=large")
    failed = json.loads(
        next(line for line in stream.get_data(as_text=True).splitlines() if line.startswith("data:"))[5:]
    )
    assert failed["phase"] == "failed" and "The profile large is for the members of physics/gpu" in failed["message"]
    logged_in.get(f"/build/gl/{quote(plain_project, safe='')}/main?profile=small", buffered=False).close()
    assert ctx.deployments.record(f"{plain_project}:main:alice")["profile_asked"] == "small"


def test_the_cli_lists_the_profiles_and_deploys_on_one(web_server, alice, plain_project, ctx, capsys, monkeypatch):
    monkeypatch.setenv("BOOKLAB_URL", web_server)
    monkeypatch.setenv("BOOKLAB_GITLAB_TOKEN", alice.token)
    assert cli(["profiles"]) == 0
    assert capsys.readouterr().out == "small: 1 GiB, 1 CPU (default)  Reading\n"
    assert cli(["deploy", plain_project, "--ref", "main", "--profile", "large"]) == 1
    assert "The profile large is for the members of physics/gpu" in capsys.readouterr().err
    assert cli(["deploy", plain_project, "--ref", "main", "--profile", "small"]) == 0
    capsys.readouterr()
    assert cli(["status"]) == 0
    assert f"{plain_project}:main:alice  todo  profile small" in capsys.readouterr().out
