"""The JSON API: a GitLab personal access token or the session authenticates; 401 JSON
without or with a bad token; each user sees and acts on their own deployments only."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from booklab.phases import Phase
from gitlab_standin.store import GUEST, MAINTAINER
from tests.fixtures.pipeline import make_ready, take_run
from tests.fixtures.web import csrf_token


def bearer(user) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}"}


def url_of(deployment_id: str) -> str:
    return f"/api/deployments/{quote(deployment_id, safe='')}"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer glpat-not-a-token"},
        {"PRIVATE-TOKEN": "glpat-not-a-token"},
        {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
    ],
)
@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/api/deployments"),
        ("POST", "/api/deployments"),
        ("GET", "/api/user"),
        ("GET", "/build/gl/demo%2Fnotebooks/main"),
    ],
)
def test_without_or_with_a_bad_token_the_api_answers_401_json(web_client, redis_client, headers, method, path):
    answer = web_client.open(path, method=method, headers=headers, json={"project": "demo/x", "ref": "main"})
    assert answer.status_code == 401
    assert answer.is_json and answer.json["error"]
    assert answer.headers["WWW-Authenticate"].lower().startswith("bearer")
    assert redis_client.hgetall("status") == {}


def test_a_personal_access_token_launches_joins_and_lists(web_client, gitlab, alice, plain_project, ctx):
    first = web_client.post("/api/deployments", headers=bearer(alice), json={"project": plain_project, "ref": "main"})
    assert first.status_code == 201, first.json
    assert first.json["id"] == f"{plain_project}:main:alice" and first.json["started"] is True
    assert first.json["status"] == "todo" and first.json["position"] == 1
    assert first.json["events"].endswith("/build/gl/demo%2Fnotebooks/main")
    again = web_client.post(
        "/api/deployments", headers={"PRIVATE-TOKEN": alice.token}, json={"project": plain_project, "ref": "main"}
    )
    assert again.status_code == 200 and again.json["started"] is False

    checks_before = len([r for r in gitlab.request_log() if r.path == "/api/v4/user"])
    for _ in range(3):
        listed = web_client.get("/api/deployments", headers=bearer(alice))
        assert [d["id"] for d in listed.json["deployments"]] == [first.json["id"]]
    checks = len([r for r in gitlab.request_log() if r.path == "/api/v4/user"])
    assert checks == checks_before  # GitLab's answer about the token is cached briefly
    assert web_client.get("/api/user", headers=bearer(alice)).json["username"] == "alice"
    assert "token" not in listed.json["deployments"][0]


def test_a_launch_of_the_path_in_another_case_joins_the_deployment_gitlab_names(web_client, alice, plain_project, ctx):
    first = web_client.post("/api/deployments", headers=bearer(alice), json={"project": plain_project, "ref": "main"})
    again = web_client.post(
        "/api/deployments", headers=bearer(alice), json={"project": plain_project.upper(), "ref": "main"}
    )
    assert again.status_code == 200 and again.json["started"] is False
    assert again.json["id"] == first.json["id"] == f"{plain_project}:main:alice"
    stream = web_client.get("/build/gl/DEMO%2Fnotebooks/dev", headers=bearer(alice), buffered=False)
    stream.close()  # its launch is made before its first event
    assert ctx.deployments.status(f"{plain_project}:dev:alice") is Phase.TODO
    assert len(ctx.deployments.of_user("alice")) == 2
    # its client reconnects to the link it knows: it follows that run still (a 204 would tell it to stop)
    resumed = web_client.get(
        "/build/gl/DEMO%2Fnotebooks/dev", headers={**bearer(alice), "Last-Event-ID": "1.0"}, buffered=False
    )
    assert resumed.status_code == 200
    resumed.close()


def test_nobody_sees_or_acts_on_another_users_deployment(web_client, gitlab, alice, plain_project, ctx):
    bob = gitlab.add_user("bob")
    gitlab.set_member(plain_project, "bob", MAINTAINER)
    bobs = web_client.post("/api/deployments", headers=bearer(bob), json={"project": plain_project, "ref": "dev"})
    assert bobs.status_code == 201
    bobs_id = bobs.json["id"]

    assert web_client.get("/api/deployments", headers=bearer(alice)).json == {"deployments": []}
    for method, suffix in (("GET", ""), ("POST", "/stop"), ("POST", "/retry")):
        answer = web_client.open(url_of(bobs_id) + suffix, method=method, headers=bearer(alice))
        assert answer.status_code == 404 and "no deployment" in answer.json["error"]
    assert ctx.deployments.status(bobs_id) is Phase.TODO
    assert ctx.deployments.queue_position(bobs_id) == 1
    assert [d["id"] for d in web_client.get("/api/deployments", headers=bearer(bob)).json["deployments"]] == [bobs_id]


def test_stop_and_retry_my_deployment(web_client, alice, plain_project, ctx, redis_client):
    created = web_client.post(
        "/api/deployments", headers=bearer(alice), json={"project": plain_project, "ref": "feature/été"}
    ).json
    stopped = web_client.post(url_of(created["id"]) + "/stop", headers=bearer(alice))
    assert stopped.status_code == 202 and stopped.json["was"] == "todo" and stopped.json["status"] == "stopped"
    assert ctx.deployments.status(created["id"]) is Phase.STOPPED
    assert ctx.deployments.queue_position(created["id"]) is None

    retried = web_client.post(url_of(created["id"]) + "/retry", headers=bearer(alice))
    assert retried.status_code == 201 and retried.json["started"] is True
    assert ctx.deployments.status(created["id"]) is Phase.TODO
    shown = web_client.get(url_of(created["id"]), headers=bearer(alice))
    assert shown.json["status"] == "todo" and shown.json["ref"] == "feature/été"


def test_a_stop_of_a_ready_notebook_answers_stopping_and_a_launch_meanwhile_queues_behind_it(
    web_client, alice, plain_project, ctx
):
    created = web_client.post(
        "/api/deployments", headers=bearer(alice), json={"project": plain_project, "ref": "main"}
    ).json
    make_ready(ctx, take_run(ctx, created["id"]), "http://127.0.0.1:1/")
    stopped = web_client.post(url_of(created["id"]) + "/stop", headers=bearer(alice))
    assert stopped.status_code == 202 and stopped.json["was"] == "ready" and stopped.json["status"] == "stopping"
    assert "url" not in stopped.json  # no longer offered while it goes

    again = web_client.post("/api/deployments", headers=bearer(alice), json={"project": plain_project, "ref": "main"})
    assert again.status_code == 201 and again.json["started"] is True  # not joined to the run being stopped
    assert again.json["requested_run"] == created["run"] + 1 == again.json["next_run"]
    assert again.json["status"] == "stopping" and again.json["run"] == created["run"]
    behind = ctx.events.read(f"{created['id']}#{again.json['requested_run']}")
    assert [e.data["message"] for e in behind] == ["Waiting for the notebook's previous run to end.\n"]


@pytest.mark.parametrize("level, status", [(None, 404), (GUEST, 403)])
def test_the_api_checks_access_before_creating_anything(web_client, gitlab, alice, redis_client, level, status):
    bob = gitlab.add_user("bob")
    gitlab.add_project("demo/secret", members={bob.username: MAINTAINER})
    if level is not None:
        gitlab.set_member("demo/secret", alice.username, level)
    answer = web_client.post("/api/deployments", headers=bearer(alice), json={"project": "demo/secret", "ref": "main"})
    assert answer.status_code == status and answer.is_json
    assert redis_client.hgetall("status") == {} and redis_client.llen("deployments") == 0
    assert [r for r in gitlab.request_log() if "/deploy_keys" in r.path] == []


def test_session_calls_need_the_csrf_header(logged_in, plain_project, ctx):
    csrf = csrf_token(logged_in)
    refused = logged_in.post("/api/deployments", json={"project": plain_project, "ref": "main"})
    assert refused.status_code == 400 and refused.is_json
    created = logged_in.post(
        "/api/deployments", json={"project": plain_project, "ref": "main"}, headers={"X-CSRF-Token": csrf}
    )
    assert created.status_code == 201
    assert logged_in.get("/api/deployments").json["deployments"][0]["id"] == created.json["id"]
    refused = logged_in.post(url_of(created.json["id"]) + "/stop")
    assert refused.status_code == 400 and ctx.deployments.status(created.json["id"]) is Phase.TODO
