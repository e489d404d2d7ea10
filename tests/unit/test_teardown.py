"""The end of a run (:mod:`booklab.pipeline.teardown`) as plain calls, on a real Redis and the
GitLab stand-in, with no runner process and no Docker: nothing of the run is left behind, its
runner is free, and the run its user queued behind that end starts."""

from __future__ import annotations

import pytest

from booklab import service
from booklab.dispatch.queues import DEPLOYMENTS_QUEUE
from booklab.phases import Phase
from booklab.pipeline import access, teardown
from booklab.pipeline.routes.names import kv_pairs
from booklab.pipeline.steps import checkout_dir
from booklab.state.deployment import Deployment
from booklab.state.lifecycle import Outcome
from booklab.state.vault import DEPLOY_KEY, GITLAB_TOKEN, NOTEBOOK_TOKEN, SAVE_TOKEN
from tests.fixtures.pipeline import MAINTAINER, PROJECT, make_ready, taken, tasks_sent, told

RUNNER = "runner-1@test"
DEP = Deployment(PROJECT, "main", "alice")
URL = "http://127.0.0.1:1/"


@pytest.fixture
def booklab_env(booklab_env):
    """Routes kept in Redis, for Traefik's Redis provider: an end must take them down."""
    return {**booklab_env, "BOOKLAB_ROUTES_PUBLISHER": "redis", "BOOKLAB_ROUTES_AUTH_URL": "http://127.0.0.1:1"}


def test_an_end_leaves_nothing_behind_and_starts_the_run_queued_behind_it(redis_ctx, gitlab, alice):
    gitlab.add_project(PROJECT, members={"alice": MAINTAINER})
    run = taken(redis_ctx, DEP, RUNNER, token=alice.token)
    # what its steps leave: a deploy key on GitLab, a checkout, secrets, a route
    gl = redis_ctx.gitlab(alice.token)
    project, title = gl.project(PROJECT), access.key_title("clone", DEP.id)
    keys = access.add_deploy_key(redis_ctx, gl, project, title)
    redis_ctx.deployments.update(DEP.id, project_id=str(project.id), deploy_key_title=title, deploy_key_added="1")
    redis_ctx.vault.put(DEP.id, DEPLOY_KEY, keys.private_openssh)
    checkout = checkout_dir(redis_ctx, DEP.id)
    (checkout / ".git").mkdir(parents=True)
    slug = redis_ctx.slug(DEP.id)
    route = kv_pairs(redis_ctx.config, slug, URL)
    redis_ctx.route_tree.mset(route)
    redis_ctx.vault.put(DEP.id, NOTEBOOK_TOKEN, b"the notebook's token")
    redis_ctx.vault.put(DEP.id, SAVE_TOKEN, alice.token.encode())
    make_ready(redis_ctx, run, URL)
    # the user stops it and launches it again at once: the new run waits for this end
    service.stop(redis_ctx, DEP.id)
    outcome, behind = redis_ctx.lifecycle.request(DEP, slug, {}, redis_ctx.vault.seal(b"the second launch's token"), 60)
    assert outcome is Outcome.BEHIND

    claim = redis_ctx.lifecycle.claim_end(run, RUNNER)
    assert teardown.release(redis_ctx, run, RUNNER, claim.token, Phase.STOPPED, "Stopped on request.")

    assert told(redis_ctx, run) == ("stopped", "Stopped on request.")
    assert gitlab.deploy_keys(PROJECT) == []
    assert not checkout.exists()
    assert redis_ctx.route_tree.exists(*route) == 0
    assert redis_ctx.runners.held(RUNNER) == {}
    for secret in (DEPLOY_KEY, NOTEBOOK_TOKEN, SAVE_TOKEN):
        assert redis_ctx.vault.find(DEP.id, secret) is None
    # the run behind is queued now, with its own token, and its steps are sent to the runners
    assert redis_ctx.lifecycle.current(DEP.id) == (Phase.TODO, behind, "")
    assert redis_ctx.vault.find(DEP.id, GITLAB_TOKEN) == b"the second launch's token"
    assert told(redis_ctx, behind) == ("waiting", "Waiting for a free runner: position 1 in the queue.")
    assert tasks_sent(redis_ctx, DEPLOYMENTS_QUEUE) == [("booklab.provision_key", [behind.id])]


def test_an_end_whose_claim_was_taken_over_touches_nothing(redis_ctx):
    run = taken(redis_ctx, DEP, RUNNER)
    redis_ctx.vault.put(DEP.id, NOTEBOOK_TOKEN, b"the notebook's token")
    stale = redis_ctx.lifecycle.claim_end(run, RUNNER)
    # its runner was found lost meanwhile: another one took its claim over
    fresh = redis_ctx.lifecycle.claim_end(run, "runner-2@test", take_over_from=RUNNER)

    assert not teardown.release(redis_ctx, run, RUNNER, stale.token, Phase.FAILED, "Too late.")
    assert redis_ctx.vault.notebook_token(DEP.id) == "the notebook's token"
    assert redis_ctx.runners.held(RUNNER)["deployment"] == DEP.id
    assert redis_ctx.deployments.status(DEP.id) is Phase.STOPPING

    assert teardown.release(redis_ctx, run, "runner-2@test", fresh.token, Phase.FAILED, "Ended by its new claimant.")
    assert told(redis_ctx, run) == ("failed", "Ended by its new claimant.")
    assert redis_ctx.vault.notebook_token(DEP.id) is None
