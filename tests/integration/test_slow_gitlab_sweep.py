"""A runner sweeps deploy keys in its checks, which beat its heartbeat: a GitLab that holds a sweep's request for
longer than a heartbeat lives, even with a long ``gitlab/timeout``, never has the runner taken for lost (its notebook
would be ended); the sweep gives up on that request and removes the key at a later try."""

from __future__ import annotations

import time

import pytest

from booklab.pipeline import access, key_sweeper
from booklab.runner import recovery
from booklab.state import schema
from gitlab_standin.store import MAINTAINER
from tests.fixtures.services import wait_until

pytestmark = pytest.mark.beside  # it waits out a slow GitLab (tests/lanes.py)

PROJECT = "demo/keys"
#: seconds GitLab holds the sweep's request: past a heartbeat's life
HELD = schema.HEARTBEAT_TTL + 10


def test_a_sweep_gitlab_holds_past_a_heartbeats_life_leaves_the_runner_alive(ctx, runners, gitlab, alice):
    gitlab.add_project(PROJECT, members={"alice": MAINTAINER})
    runners(1, BOOKLAB_GITLAB_TIMEOUT=str(HELD + 20))  # launches wait for GitLab that long; sweeps do not
    gl = ctx.gitlab(alice.token)
    project = gl.project(PROJECT)
    title = access.key_title("sweep", "slow")
    assert access.add_deploy_key(ctx, gl, project, title)
    gitlab.fail_next(r"/deploy_keys", status=0, delay=HELD, method="GET")  # the sweep's listing of keys
    key_sweeper.expect(ctx, project.id, title, alice.token, due=time.time())
    wait_until(lambda: gitlab.faults_left() == 0, 30, "the runner to ask GitLab")

    held_until = time.monotonic() + HELD - 2
    while time.monotonic() < held_until:
        assert recovery.lost_runners(ctx) == [], "the runner's heartbeat stopped while GitLab held its sweep"
        time.sleep(1)
    wait_until(lambda: gitlab.deploy_keys(PROJECT) == [], 30, "the sweep to remove the key")
