"""The operator's page and API: only operators (``admin/users``, or GitLab's administrators
as GitLab says at each request) see them; an operator sees everyone's notebooks, stops any of
them (the page's form needs its CSRF token), and the stop is kept in the operators' log."""

from __future__ import annotations

import pytest

from booklab import service
from booklab.phases import Phase
from tests.fixtures.web import csrf_token, log_in


@pytest.fixture
def booklab_env(booklab_env):
    return {**booklab_env, "BOOKLAB_ADMIN_USERS": "carol"}


def bearer(user) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}"}


def test_only_operators_see_the_page_and_the_api(web_app, web_client, gitlab, alice):
    log_in(web_client, alice)
    assert 'href="/admin"' not in web_client.get("/").get_data(as_text=True)
    refused = web_client.get("/admin")
    assert refused.status_code == 403 and "named in the setting admin/users" in refused.get_data(as_text=True)
    answer = web_client.get("/api/admin", headers=bearer(alice))
    assert answer.status_code == 403 and "admin/users" in answer.json["error"]
    assert web_client.post(f"/api/admin/deployments/{'demo/x:main:bob'}/stop", headers=bearer(alice)).status_code == 403

    erin = gitlab.add_user("erin")
    gitlab.set_admin("erin")  # an administrator of the GitLab server
    assert web_app.test_client().get("/api/admin/runners", headers=bearer(erin)).status_code == 200
    gitlab.set_admin("erin", False)  # asked again at each request
    assert web_app.test_client().get("/api/admin/runners", headers=bearer(erin)).status_code == 403


def test_an_operator_sees_everyones_notebooks_and_stops_one(web_app, web_client, gitlab, alice, plain_project):
    carol = gitlab.add_user("carol")
    launched = web_client.post("/api/deployments", json={"project": plain_project, "ref": "dev"}, headers=bearer(alice))
    assert launched.status_code == 201
    deployment_id = launched.json["id"]

    log_in(web_client, carol)
    assert 'href="/admin"' in web_client.get("/").get_data(as_text=True)
    page = web_client.get("/admin").get_data(as_text=True)
    assert f'data-deployment="{deployment_id}"' in page and "Nothing waits" not in page
    overview = web_client.get("/api/admin", headers=bearer(carol)).json
    assert [q["deployment"] for q in overview["queue"]] == [deployment_id]
    assert {"kind": "user", "name": "alice", "in_use": 1, "limit": 0} in overview["quotas"]

    forged = web_client.post("/admin/stop", data={"deployment": deployment_id})
    assert forged.status_code == 400  # no CSRF token: not from Booklab's page
    done = web_client.post(
        "/admin/stop", data={"deployment": deployment_id, "csrf_token": csrf_token(web_client)}, follow_redirects=True
    )
    assert f"Stopping {deployment_id} (it was todo)." in done.get_data(as_text=True)
    assert web_app.extensions["booklab"].deployments.status(deployment_id) is Phase.STOPPED
    actions = web_client.get("/api/admin/actions", headers=bearer(carol)).json["actions"]
    assert [(a["operator"], a["action"], a["target"]) for a in actions] == [("carol", "stop", deployment_id)]

    missing = web_client.post("/api/admin/deployments/demo%2Fnone:main:bob/stop", headers=bearer(carol))
    assert missing.status_code == 404 and "no deployment" in missing.json["error"]


def test_a_hostile_branch_name_is_shown_as_text_on_the_operators_page(web_app, web_client, gitlab, alice):
    carol = gitlab.add_user("carol")
    hostile = 'x"><img/src=x/onerror=alert(1)>'
    service.request_deployment(web_app.extensions["booklab"], "demo/notebooks", hostile, alice.token)
    log_in(web_client, carol)
    page = web_client.get("/admin").get_data(as_text=True)
    assert "<img" not in page and "&lt;img/src=x/onerror=alert(1)&gt;" in page
