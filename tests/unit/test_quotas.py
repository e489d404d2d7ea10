"""The operator's limits (``limits/*``) as a new run is requested, on a real Redis with the
GitLab stand-in and no runner: a user, a project and the queue each have their most, a run
joined is never refused, and 50 requests racing one another never get past a limit."""

from __future__ import annotations

import os
import threading

import pytest

from booklab import config as config_module
from booklab import service
from booklab.context import Context
from booklab.errors import LimitReached
from booklab.phases import Phase
from booklab.pipeline import teardown
from tests.fixtures.pipeline import PROJECT, take_run

RUNNER = "runner-1@test"


@pytest.fixture
def limited(booklab_env, redis_ctx):
    """A context with these limits (``limits/<name>``), as the web tier has them (its messages to the
    runners go where ``redis_ctx`` sends them)."""
    made = []

    def make(**limits: int) -> Context:
        environ = {**booklab_env, **{f"BOOKLAB_LIMITS_{k.upper()}": str(v) for k, v in limits.items()}}
        made.append(Context(config_module.load(os.devnull, environ=environ)))
        return made[-1]

    yield make
    for ctx in made:
        ctx.close()


def launch(ctx, user, ref: str, project: str = PROJECT):
    return service.request_deployment(ctx, project, ref, user.token)


def test_a_user_at_the_limit_is_told_to_stop_one_first(limited, gitlab, alice):
    ctx = limited(notebooks_per_user=2)
    first, _ = launch(ctx, alice, "one"), launch(ctx, alice, "two")

    with pytest.raises(
        LimitReached, match=r"^You have 2 notebooks running or queued, the limit is 2: stop one first\."
    ):
        launch(ctx, alice, "three")
    assert not launch(ctx, alice, "one").started  # joining one of them is no new notebook
    assert ctx.deployments.status(f"{PROJECT}:three:alice") is None  # nothing was queued

    run = take_run(ctx, first.id, RUNNER)
    claim = ctx.lifecycle.claim_end(run, RUNNER)
    assert teardown.release(ctx, run, RUNNER, claim.token, Phase.STOPPED, "Stopped on request.")
    assert launch(ctx, alice, "three").started


def test_a_project_and_the_queue_have_their_limits_too(limited, gitlab, alice):
    bob = gitlab.add_user("bob")
    ctx = limited(notebooks_per_user=0, notebooks_per_project=1, queue_length=2)
    launch(ctx, alice, "main")
    with pytest.raises(LimitReached, match=rf"^{PROJECT} has 1 notebook running or queued, the limit is 1 per"):
        launch(ctx, bob, "main")
    launch(ctx, bob, "main", project="lab/other")
    with pytest.raises(LimitReached, match=r"^2 notebooks are waiting for a runner already, the limit is 2"):
        launch(ctx, bob, "main", project="lab/third")


def test_a_projects_limit_counts_its_path_in_any_case(limited, gitlab, alice):
    """GitLab finds a project by its path in any case: another spelling is the same project."""
    bob = gitlab.add_user("bob")
    ctx = limited(notebooks_per_project=1)
    launch(ctx, alice, "main")
    with pytest.raises(LimitReached, match=r"the limit is 1 per"):
        launch(ctx, bob, "main", project=PROJECT.upper())


def test_fifty_requests_at_once_never_get_past_a_users_limit(limited, gitlab, alice):
    ctx = limited(notebooks_per_user=2)
    start = threading.Barrier(50)
    started, refused = [], []

    def request(n: int) -> None:
        start.wait()
        try:
            started.append(launch(ctx, alice, f"branch-{n}"))
        except LimitReached:
            refused.append(n)

    threads = [threading.Thread(target=request, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert (len(started), len(refused)) == (2, 48)
    active = [dep for dep, status in ctx.deployments.of_user("alice") if status.is_active]
    assert sorted(dep.id for dep in active) == sorted(request.id for request in started)
