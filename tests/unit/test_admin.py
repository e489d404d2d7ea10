"""The operator's view (:mod:`booklab.admin`) on a real Redis with the GitLab stand-in and
runners played by the test: who is an operator, runners with their host and whom they serve,
the queue in order, the deployments, the quotas in use, and a stop by an operator that its
owner's log tells and the operators' log keeps."""

from __future__ import annotations

import os

import pytest

from booklab import admin, service
from booklab import config as config_module
from booklab.context import Context
from booklab.errors import UnknownDeployment
from booklab.phases import Phase
from booklab.state import schema
from tests.fixtures.pipeline import PROJECT, make_ready, take_run

RUNNER, IDLE = "runner-1@test", "runner-2@test"


@pytest.fixture
def operated(booklab_env, redis_ctx):
    """A context as the web tier has it, with carol an operator, 2 notebooks per user and 10 in the queue."""
    environ = {
        **booklab_env,
        "BOOKLAB_ADMIN_USERS": "carol, dora",
        "BOOKLAB_LIMITS_NOTEBOOKS_PER_USER": "2",
        "BOOKLAB_LIMITS_QUEUE_LENGTH": "10",
    }
    ctx = Context(config_module.load(os.devnull, environ=environ))
    yield ctx
    ctx.close()


def test_operators_are_the_users_named_and_the_gitlab_administrators(operated, gitlab, alice):
    erin = gitlab.add_user("erin")
    assert admin.is_operator(operated, "carol") and admin.is_operator(operated, "dora")
    with operated.gitlab(alice.token) as gl:
        assert not admin.is_operator(operated, "alice", gl)
    gitlab.set_admin("erin")
    with operated.gitlab(erin.token) as gl:
        assert admin.is_operator(operated, "erin", gl)
    gitlab.set_admin("erin", False)  # GitLab is asked each time
    with operated.gitlab(erin.token) as gl:
        assert not admin.is_operator(operated, "erin", gl)


def test_the_operator_sees_runners_the_queue_deployments_and_quotas(operated, gitlab, alice):
    ctx = operated
    bob = gitlab.add_user("bob")
    served = service.request_deployment(ctx, PROJECT, "main", alice.token)
    service.request_deployment(ctx, PROJECT, "dev", alice.token)
    service.request_deployment(ctx, "lab/other", "main", bob.token)
    ctx.runners.beat(RUNNER, "host-a")
    ctx.runners.beat(IDLE, "host-b")
    run = take_run(ctx, served.id, RUNNER)
    make_ready(ctx, run, "http://nb.example")
    ctx.runners.beat("runner-3@gone")
    ctx.redis.delete(schema.heartbeat("runner-3@gone"))  # its heartbeat expired

    rows = {row.name: row for row in admin.runners(ctx)}
    assert (rows[RUNNER].host, rows[RUNNER].state, rows[RUNNER].deployment, rows[RUNNER].user) == (
        "host-a",
        "serving",
        served.id,
        "alice",
    )
    assert rows[RUNNER].phase == "ready" and rows[RUNNER].since is not None and rows[RUNNER].last_beat is not None
    assert (rows[IDLE].state, rows[IDLE].deployment, rows[IDLE].spare) == ("free", "", "")
    ctx.spares.begin(IDLE, "s1", "booklab/lab:" + "a" * 40, f"{PROJECT}@main", 1)
    assert {row.name: row for row in admin.runners(ctx)}[IDLE].spare == f"{PROJECT}@main (starting)"
    assert (rows["runner-3@gone"].state, rows["runner-3@gone"].last_beat) == ("lost", None)

    assert [(q.position, q.deployment) for q in admin.queue(ctx)] == [
        (1, f"{PROJECT}:dev:alice"),
        (2, "lab/other:main:bob"),
    ]
    phases = {row.id: row.phase for row in admin.deployments(ctx)}
    assert phases == {served.id: "ready", f"{PROJECT}:dev:alice": "todo", "lab/other:main:bob": "todo"}
    quotas = {(q.kind, q.name): (q.in_use, q.limit) for q in admin.quotas(ctx)}
    assert quotas[("user", "alice")] == (2, 2) and quotas[("user", "bob")] == (1, 2)
    assert quotas[("project", PROJECT)] == (2, 0) and quotas[("queue", "waiting for a runner")] == (2, 10)


def test_an_operators_stop_is_said_in_the_owners_log_and_kept_in_the_operators_log(operated, alice):
    ctx = operated
    queued = service.request_deployment(ctx, PROJECT, "main", alice.token)
    served = service.request_deployment(ctx, PROJECT, "dev", alice.token)
    make_ready(ctx, take_run(ctx, served.id, RUNNER), "http://nb.example")

    assert admin.stop(ctx, queued.id, "carol") is Phase.TODO
    assert admin.stop(ctx, served.id, "carol") is Phase.READY
    assert ctx.deployments.status(queued.id) is Phase.STOPPED
    assert ctx.deployments.status(served.id) is Phase.STOPPING  # its runner ends it
    said = [event.data["message"].strip() for event in ctx.events.read(queued.run.id)]
    assert "Stopped before a runner took it (the operator carol asked)." in said
    said = [event.data["message"].strip() for event in ctx.events.read(served.run.id)]
    assert "Stopping the notebook (the operator carol asked)..." in said
    assert [(a.operator, a.action, a.target) for a in ctx.audit.recent()] == [
        ("carol", "stop", served.id),
        ("carol", "stop", queued.id),
    ]
    with pytest.raises(UnknownDeployment):
        admin.stop(ctx, "not-a-deployment", "carol")
    assert len(ctx.audit.recent()) == 2
