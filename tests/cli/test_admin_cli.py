"""``booklab admin``: an operator lists the runners, the queue, everyone's deployments and
the quotas, and stops another user's notebook; anyone else is refused with the reason."""

from __future__ import annotations

import json

import pytest

from booklab.phases import Phase
from tests.cli.test_cli import booklab


@pytest.fixture
def booklab_env(booklab_env):
    return {**booklab_env, "BOOKLAB_ADMIN_USERS": "carol"}


def test_an_operator_lists_everything_and_stops_another_users_notebook(web_server, ctx, gitlab, alice, plain_project):
    carol = gitlab.add_user("carol")
    ctx.runners.beat("runner-1@test", "host-a")
    launched = booklab(web_server, alice.token, "deploy", plain_project, "--ref", "dev", "--json")
    deployment_id = json.loads(launched.stdout)["id"]

    refused = booklab(web_server, alice.token, "admin")
    assert refused.returncode == 1 and "named in the setting admin/users" in refused.stderr

    shown = booklab(web_server, carol.token, "admin")
    assert shown.returncode == 0, shown.stderr
    assert "runner-1@test  host-a  free  beat " in shown.stdout
    assert f"Queue:\n  1. {deployment_id}  waiting since " in shown.stdout
    assert "user alice: 1 of no limit" in shown.stdout
    queue = json.loads(booklab(web_server, carol.token, "admin", "queue", "--json").stdout)
    assert [q["deployment"] for q in queue["queue"]] == [deployment_id] and "runners" not in queue

    stopped = booklab(web_server, carol.token, "admin", "stop", deployment_id)
    assert stopped.stdout == f"Stopping {deployment_id} (it was todo).\n"
    assert ctx.deployments.status(deployment_id) is Phase.STOPPED
    actions = booklab(web_server, carol.token, "admin", "actions").stdout
    assert f"carol: stop {deployment_id}" in actions
