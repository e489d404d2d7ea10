"""Stop means stopped, with real runners, Redis, Docker and the GitLab stand-in: a launch
right after a Stop is a new run (its own log, a working URL), never the run being
stopped; and a notebook whose container exits while it is launched fails with the
launch's reason, whichever of the runner's checks sees the exit first; a rebuild builds the image
again, every layer, and replaces it."""

from __future__ import annotations

import secrets

import pytest
import requests

from booklab import service
from booklab.phases import Phase
from booklab.pipeline.launcher import api_status
from booklab.state.deployment import Deployment
from booklab.state.lifecycle import Outcome
from tests.fixtures.gitlab import create_local_repo
from tests.fixtures.pipeline import MAINTAINER, events_of, messages, phases, run_to_end
from tests.fixtures.services import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.beside]

#: rounds of each loop: a smoke check of the real thing (the interleavings themselves are explored
#: by tests/integration/test_interleavings.py); each round waits for Jupyter's start (about 3 s)
ROUNDS = 5


def test_a_launch_right_after_a_stop_is_a_new_run_with_its_own_log_and_url(ctx, runners, alice, project, docker_engine):
    (runner,) = runners(1)
    request = service.request_deployment(ctx, project, "main", alice.token)
    ready = run_to_end(ctx, request.run)[-1]
    assert ready["phase"] == "ready"
    for _ in range(ROUNDS):
        previous, old = request.run, ready
        assert service.stop(ctx, request.id) is Phase.READY
        request = service.request_deployment(ctx, project, "main", alice.token)  # at once: within 0.5 s
        assert request.started and request.run.number == previous.number + 1  # never joined

        events = run_to_end(ctx, request.run)
        ready = events[-1]
        assert phases(events)[0] == "waiting" and phases(events)[-1] == "ready", messages(events)
        assert "Building image" not in messages(events) and "Stopping" not in messages(events)
        assert ready["token"] != old["token"] and api_status(ready["url"], ready["token"]) is not None
        assert api_status(ready["url"], old["token"]) is None
        # the run that was stopped ended as stopped, in its own log, and its container is gone
        assert [e.data["phase"] for e in ctx.events.read(previous.id)][-2:] == ["stopping", "stopped"]
        assert (
            len(
                docker_engine.api.containers(
                    all=True,
                    filters={  # one call: nothing inspected after
                        "label": [f"booklab.deployment={request.id}", f"booklab.runner={runner.name}"]
                    },
                )
            )
            == 1
        )
    service.stop(ctx, request.id)


@pytest.mark.parametrize(
    "steps, allow_root, reason",
    [
        # the container starts, and exits a moment later, before Jupyter could answer
        (
            'ENTRYPOINT ["sh", "-c", "sleep 0.7; echo this notebook gives up; exit 3"]\n',
            "false",
            ["exit code 3", "this notebook gives up"],
        ),
        # an operator allows root: Jupyter itself refuses to run as root, and exits
        ("USER root\n", "true", ["exit code 1", "non-root user", "Running as root is not recommended"]),
    ],
    ids=["exits", "jupyter-refuses-root"],
)
def test_a_notebook_that_exits_while_it_launches_always_fails_with_the_launch_reason(
    ctx, runners, gitlab, alice, base_image, tmp_path, steps, allow_root, reason
):
    (runner,) = runners(1, BOOKLAB_NOTEBOOK_ALLOW_ROOT=allow_root)
    path = f"odd/exits-{allow_root}"
    repo = create_local_repo(tmp_path / "exits", {"main": {"Dockerfile": f"FROM {base_image}\n{steps}"}})
    gitlab.add_project(path, members={"alice": MAINTAINER})
    gitlab.push(path, repo)
    for _ in range(ROUNDS):
        request = service.request_deployment(ctx, path, "main", alice.token)
        events = run_to_end(ctx, request.run)
        assert phases(events)[-1] == "failed", messages(events)
        assert all(part in events[-1]["message"] for part in reason), events[-1]["message"]
        assert [e for e in phases(events) if e in ("stopped", "failed")] == ["failed"]
        wait_until(lambda: not ctx.runners.held(runner.name), 10, "the runner to be free")
    assert len(events_of(ctx, f"{path}:main:alice")) == len(events)  # the last run's log is its own


def test_a_stop_while_the_image_builds_ends_the_build_and_a_relaunch_waits_for_that_end(
    ctx, runners, gitlab, alice, base_image, tmp_path
):
    runners(1)
    path = "odd/slow-build"
    # a step of its own: a cached one (an earlier run cut off leaves its layers on the Docker Engine) builds at once
    ticks = f"RUN echo {secrets.token_hex(8)}; for i in $(seq 1 40); do echo tick $i; sleep 0.5; done\n"
    repo = create_local_repo(tmp_path / "slow", {"main": {"Dockerfile": f"FROM {base_image}\n{ticks}"}})
    gitlab.add_project(path, members={"alice": MAINTAINER})
    gitlab.push(path, repo)
    first = service.request_deployment(ctx, path, "main", alice.token)
    wait_until(lambda: "tick 2" in messages([e.data for e in ctx.events.read(first.run.id)]), 120, "the build")
    assert service.stop(ctx, first.id) is Phase.BUILDING
    second = service.request_deployment(ctx, path, "main", alice.token)
    assert second.run.number == first.run.number + 1
    first_events = run_to_end(ctx, first.run, timeout=60)
    assert phases(first_events)[-1] == "stopped" and "tick 40" not in messages(first_events)
    # the second run builds from a checkout of its own: the first one's end removed its own
    second_events = run_to_end(ctx, second.run, timeout=240)
    assert phases(second_events)[-1] == "ready", messages(second_events)
    assert "tick 40" in messages(second_events)
    assert (
        requests.get(
            second_events[-1]["url"] + "api/status",
            timeout=10,
            headers={"Authorization": f"token {second_events[-1]['token']}"},
        ).status_code
        == 200
    )
    service.stop(ctx, second.id)


def test_a_queued_run_whose_chain_was_never_sent_is_served_all_the_same(ctx, runners, alice, project):
    """As when the process that ended a run died right after the script that queued the run
    waiting behind it: the run is first in the queue, and no message of its chain exists."""
    (runner,) = runners(1)
    dep = Deployment(project, "main", alice.username)
    outcome, run = ctx.lifecycle.request(dep, ctx.slug(dep.id), {}, ctx.vault.seal(alice.token.encode()), 600)
    assert outcome is Outcome.STARTED and ctx.deployments.queue_position(dep.id) == 1
    events = run_to_end(ctx, run, timeout=120)  # a free runner notices within CHAIN_GAP seconds
    assert phases(events)[-1] == "ready", messages(events)
    assert "sending it again" in runner.output()
    service.stop(ctx, dep.id)


def test_a_rebuild_builds_every_layer_again_and_replaces_the_image(ctx, runners, alice, project, docker_engine):
    runners(1)
    request = service.request_deployment(ctx, project, "main", alice.token)
    assert phases(run_to_end(ctx, request.run))[-1] == "ready"
    image = ctx.deployments.record(request.id)["image"]
    before = docker_engine.images.get(image).id
    service.stop(ctx, request.id)

    rebuilt = service.request_deployment(ctx, project, "main", alice.token, rebuild=True)
    events = run_to_end(ctx, rebuilt.run)

    assert phases(events)[-1] == "ready", messages(events)
    assert "Rebuilding image" in messages(events) and "Found built image" not in messages(events)
    assert " ---> Using cache" not in messages(events)  # every layer again
    assert docker_engine.images.get(image).id != before  # the commit's image is the new one
    assert not docker_engine.images.list(name=image.rsplit(":", 1)[0] + ":*-rebuild-*")  # no name left behind
    service.stop(ctx, rebuilt.id)
    again = service.request_deployment(ctx, project, "main", alice.token)  # later launches reuse it
    assert "Found built image" in messages(run_to_end(ctx, again.run))
