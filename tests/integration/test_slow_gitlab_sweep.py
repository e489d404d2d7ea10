"""A runner's checks, which beat its heartbeat, wait for GitLab briefly: a GitLab that holds a request of theirs
for longer than a heartbeat lives, even with a long ``gitlab/timeout``, never has the runner taken for lost (its
notebook would be ended). The request is given up, and the deploy key it was to remove goes at a later try."""

from __future__ import annotations

import time

import pytest

from booklab.phases import Phase
from booklab.pipeline import access, key_sweeper
from booklab.runner import recovery
from booklab.state import schema
from booklab.state.deployment import Deployment
from gitlab_standin.store import MAINTAINER
from tests.fixtures.pipeline import taken
from tests.fixtures.services import wait_until

pytestmark = pytest.mark.beside  # it waits out a slow GitLab (tests/lanes.py)

PROJECT = "demo/keys"
#: seconds GitLab holds the request: past a heartbeat's life
HELD = schema.HEARTBEAT_TTL + 10
#: launches wait for GitLab that long; the runner's checks do not
PATIENT = {"BOOKLAB_GITLAB_TIMEOUT": str(HELD + 20)}


@pytest.fixture
def key_on_gitlab(ctx, gitlab, alice):
    """A deploy key on the project: (project, its title)."""
    gitlab.add_project(PROJECT, members={"alice": MAINTAINER})
    gl = ctx.gitlab(alice.token)
    project = gl.project(PROJECT)
    title = access.key_title("alice", "main")
    assert access.add_deploy_key(ctx, gl, project, title)
    return project, title


def alive_while_gitlab_holds_its_request(ctx, gitlab, runner) -> None:
    wait_until(lambda: gitlab.faults_left() == 0, 30, "the runner to ask GitLab")
    held_until = time.monotonic() + HELD - 2
    while time.monotonic() < held_until:
        assert runner.name not in recovery.lost_runners(ctx), "its heartbeat stopped while GitLab held its request"
        time.sleep(1)
    wait_until(lambda: gitlab.deploy_keys(PROJECT) == [], 30, "the key to be removed at a later try")


def test_a_sweep_gitlab_holds_past_a_heartbeats_life_leaves_the_runner_alive(
    ctx, runners, gitlab, alice, key_on_gitlab
):
    project, title = key_on_gitlab
    (runner,) = runners(1, **PATIENT)
    gitlab.fail_next(r"/deploy_keys", status=0, delay=HELD, method="GET")  # the sweep's listing of keys
    key_sweeper.expect(ctx, project.id, title, alice.token, due=time.time())
    alive_while_gitlab_holds_its_request(ctx, gitlab, runner)


def test_a_lost_runners_run_whose_key_gitlab_is_slow_to_remove_leaves_its_reaper_alive(
    ctx, runners, gitlab, alice, key_on_gitlab
):
    project, title = key_on_gitlab
    lost, dep = "runner-lost@elsewhere", Deployment(PROJECT, "main", "alice")
    run = taken(ctx, dep, lost, alice.token)  # it died while it cloned, its key still on the project
    ctx.deployments.update(dep.id, project_id=str(project.id), deploy_key_title=title, deploy_key_added="1")
    ctx.runners.beat(lost)
    ctx.redis.delete(schema.heartbeat(lost))
    gitlab.fail_next(r"/deploy_keys", status=0, delay=HELD, method="GET")  # the reaper's listing of its keys
    (runner,) = runners(1, **PATIENT)
    alive_while_gitlab_holds_its_request(ctx, gitlab, runner)
    assert ctx.lifecycle.current(run.deployment)[0] is Phase.FAILED
