"""The Docker daemon restarted while a notebook runs: its container stopped with the daemon,
so the deployment ends (status ``stopped``, with the reason), nothing is left behind, and
the runner serves the next deployment on the restarted daemon."""

from __future__ import annotations

import pytest

from booklab import service
from booklab.phases import Phase
from tests.fixtures.pipeline import BRANCH_WITH_SLASH, events_of, notebook_containers, phases, run_to_end
from tests.fixtures.services import wait_until

pytestmark = pytest.mark.alone  # it stops the Docker Engine that other test sessions may be using


def test_after_a_docker_restart_the_status_reflects_reality(ctx, runners, docker_daemon, docker_engine, alice, project):
    (runner,) = runners(1)
    first = service.request_deployment(ctx, project, "main", alice.token)
    assert phases(run_to_end(ctx, first.id))[-1] == "ready"

    docker_daemon.restart()
    wait_until(lambda: ctx.deployments.status(first.id) is Phase.STOPPED, 60, "the deployment to end")
    assert "The notebook server ended (container exited)" in events_of(ctx, first.id)[-1].data["message"]
    assert notebook_containers(ctx, docker_engine, first.id) == []
    wait_until(lambda: not ctx.runners.held(runner.name), 10, "the runner to be free")

    second = service.request_deployment(ctx, project, BRANCH_WITH_SLASH, alice.token)
    assert phases(run_to_end(ctx, second.id))[-1] == "ready"
