"""Save back's states (:mod:`booklab.saveback.protocol`) as plain calls, on a real Redis (the
runners' broker too) with no runner process and no Docker: which runner is asked to save,
which save holds off another, and what the notebook's user is told."""

from __future__ import annotations

import time

import pytest

from booklab import service
from booklab.dispatch.queues import runner_queue
from booklab.errors import (
    BranchNamesTaken,
    CloneError,
    CloneUnavailable,
    DeployKeyNotAccepted,
    DockerUnavailable,
    GitError,
    GitLabRateLimited,
    GitLabUnavailable,
    InsufficientScope,
    NoAccess,
    NotFound,
    SaveError,
    TokenRejected,
)
from booklab.phases import SaveState
from booklab.saveback import protocol, push
from booklab.state import schema
from booklab.state.deployment import Deployment
from tests.fixtures.pipeline import PROJECT, served, tasks_sent

RUNNER = "runner-1@test"
DEP = Deployment(PROJECT, "main", "alice")
TOKEN = "alice's token"
REFUSED = protocol.Failed("GitLab refused the push.", for_good=True)
UNANSWERED = protocol.Failed("GitLab answered 502 while pushing; try again shortly.", for_good=False)


def shown(ctx) -> dict | None:
    """The notebook's last save, as the API shows it to its user."""
    return protocol.describe(ctx, DEP.id, ctx.deployments.record(DEP.id))


def test_save_now_asks_the_runner_serving_the_notebook_once(redis_ctx):
    served(redis_ctx, DEP, RUNNER)
    assert shown(redis_ctx) is None

    assert service.save_now(redis_ctx, DEP.id, TOKEN)
    assert not service.save_now(redis_ctx, DEP.id, TOKEN)  # a second click while it is under way
    assert tasks_sent(redis_ctx, runner_queue(RUNNER)) == [("booklab.save", [DEP.id, "", RUNNER, "", "", False])]
    assert shown(redis_ctx) == {"state": "saving", "message": "Saving your changes to GitLab…"}
    assert protocol.under_way(redis_ctx, DEP.id) and protocol.locked(redis_ctx, DEP.id)


def test_the_notebook_of_a_lost_runner_is_saved_by_the_runner_that_found_it(redis_ctx):
    run = served(redis_ctx, DEP, "runner-2@test")
    claim = redis_ctx.lifecycle.claim_end(run, RUNNER, take_over_from="runner-2@test")
    assert protocol.request(
        redis_ctx,
        DEP.id,
        then_end="The runner serving this notebook was lost.",
        worker=RUNNER,
        run=run,
        claim=claim.token,
        automatic=True,
    )
    assert tasks_sent(redis_ctx, runner_queue("runner-2@test")) == []
    lost = "The runner serving this notebook was lost."
    assert tasks_sent(redis_ctx, runner_queue(RUNNER)) == [
        ("booklab.save", [DEP.id, lost, "runner-2@test", run.id, claim.token, True])
    ]


def test_a_save_no_runner_took_is_shown_failed_after_the_pickup_time(redis_ctx):
    served(redis_ctx, DEP, RUNNER)
    service.set_save_back(redis_ctx, DEP.id, True, TOKEN)
    service.stop(redis_ctx, DEP.id)  # its runner saves it first, and is lost before it takes the save
    assert shown(redis_ctx)["state"] == "saving"

    redis_ctx.deployments.update(DEP.id, save_asked_at=f"{time.time() - protocol.SAVE_PICKUP - 1:.3f}")
    assert shown(redis_ctx) == {
        "state": "failed",
        "message": "The save did not finish (its runner stopped meanwhile): save again.",
    }

    redis_ctx.redis.set(schema.saving(DEP.id), SaveState.SAVING)  # a runner holds it: late, not lost
    assert shown(redis_ctx)["state"] == "saving"


def test_a_failed_save_holds_off_automatic_saves_until_the_user_asks_again(redis_ctx):
    served(redis_ctx, DEP, RUNNER)
    assert service.save_now(redis_ctx, DEP.id, TOKEN)
    protocol.report_failed(redis_ctx, DEP.id, REFUSED)

    assert shown(redis_ctx) == {
        "state": "failed",
        "message": (
            "Your changes could not be saved to GitLab: GitLab refused the push. The notebook keeps running with "
            "your work: save again, or stop and discard your changes."
        ),
    }
    assert protocol.locked(redis_ctx, DEP.id) and not protocol.under_way(redis_ctx, DEP.id)
    assert protocol.RETRY_FIRST / 2 - 5 < redis_ctx.redis.ttl(schema.saving(DEP.id)) <= protocol.RETRY_FIRST
    assert not protocol.request(redis_ctx, DEP.id, then_end="The notebook was idle for more than 60 s.")
    assert len(tasks_sent(redis_ctx, runner_queue(RUNNER))) == 1

    assert service.save_now(redis_ctx, DEP.id, TOKEN)  # forgets the failure
    assert len(tasks_sent(redis_ctx, runner_queue(RUNNER))) == 2
    assert shown(redis_ctx)["state"] == "saving"


def test_a_save_cut_off_by_its_runners_restart_may_start_again_at_once(redis_ctx):
    served(redis_ctx, DEP, RUNNER)
    assert service.save_now(redis_ctx, DEP.id, TOKEN)
    protocol.interrupted(redis_ctx, DEP.id)

    assert shown(redis_ctx) == {
        "state": "failed",
        "message": "The save did not finish (its runner restarted meanwhile): save again.",
    }
    assert not protocol.locked(redis_ctx, DEP.id)
    assert protocol.request(redis_ctx, DEP.id)


def test_a_restart_keeps_a_failed_save_holding_off_automatic_saves(redis_ctx):
    served(redis_ctx, DEP, RUNNER)
    protocol.report_failed(redis_ctx, DEP.id, REFUSED)
    protocol.interrupted(redis_ctx, DEP.id)
    assert protocol.locked(redis_ctx, DEP.id)
    assert shown(redis_ctx)["message"].startswith("Your changes could not be saved to GitLab: GitLab refused")


def test_a_save_that_worked_tells_its_branch_or_that_nothing_changed(redis_ctx):
    served(redis_ctx, DEP, RUNNER)
    saved = push.Saved("booklab/alice/20260101-1200", "0" * 40, "http://gitlab.test/mr")
    protocol.report_saved(redis_ctx, DEP.id, push.Outcome(saved, ("big.bin (larger than 10 MB)",)))
    assert shown(redis_ctx) == {
        "state": "saved",
        "message": (
            "Saved your changes to branch booklab/alice/20260101-1200; open a merge request: http://gitlab.test/mr "
            "Left out: big.bin (larger than 10 MB)."
        ),
    }

    protocol.report_saved(redis_ctx, DEP.id, push.Outcome(None))
    assert shown(redis_ctx) == {
        "state": "unchanged",
        "message": "Nothing to save since the last save: nothing was pushed.",
    }


def test_an_automatic_save_gives_up_at_once_when_gitlab_refuses_it_for_good(redis_ctx):
    served(redis_ctx, DEP, RUNNER)
    protocol.report_failed(redis_ctx, DEP.id, REFUSED)
    assert protocol.gives_up(redis_ctx, DEP.id, REFUSED)
    assert not protocol.gives_up(redis_ctx, DEP.id, UNANSWERED)  # but one GitLab did not answer is tried again


def test_an_automatic_save_gives_up_once_it_failed_for_give_up_after(redis_ctx):
    served(redis_ctx, DEP, RUNNER)
    give_up_after = redis_ctx.config.save_give_up_after
    protocol.report_failed(redis_ctx, DEP.id, UNANSWERED)
    first = float(redis_ctx.deployments.record(DEP.id)["save_failing_since"])
    protocol.report_failed(redis_ctx, DEP.id, UNANSWERED)  # a second failure: the streak began at the first
    assert float(redis_ctx.deployments.record(DEP.id)["save_failing_since"]) == first
    assert not protocol.gives_up(redis_ctx, DEP.id, UNANSWERED)

    redis_ctx.deployments.update(DEP.id, save_failing_since=f"{time.time() - give_up_after - 1:.3f}")
    assert protocol.gives_up(redis_ctx, DEP.id, UNANSWERED)

    protocol.report_saved(redis_ctx, DEP.id, push.Outcome(None))  # a save that works ends the streak
    protocol.report_failed(redis_ctx, DEP.id, UNANSWERED)
    assert not protocol.gives_up(redis_ctx, DEP.id, UNANSWERED)


def test_an_automatic_save_that_failed_waits_longer_after_each_failure(redis_ctx):
    served(redis_ctx, DEP, RUNNER)
    waits = []
    for _ in range(6):
        protocol.report_failed(redis_ctx, DEP.id, UNANSWERED)
        waits.append(redis_ctx.redis.ttl(schema.saving(DEP.id)))
    assert protocol.RETRY_FIRST / 2 - 1 <= waits[0] <= protocol.RETRY_FIRST
    assert protocol.RETRY_AFTER / 2 - 1 <= waits[-1] <= protocol.RETRY_AFTER
    assert waits[-1] > waits[0]

    asked = protocol.Failed("GitLab asked Booklab to slow down.", for_good=False, retry_after=2 * protocol.RETRY_AFTER)
    protocol.report_failed(redis_ctx, DEP.id, asked)  # GitLab's Retry-After, when longer, is honoured
    assert redis_ctx.redis.ttl(schema.saving(DEP.id)) > 2 * protocol.RETRY_AFTER - 5


@pytest.mark.parametrize(
    "error, for_good",
    [
        (CloneError("GitLab refused the push to branch 'b': the project is archived (read-only)."), True),
        (CloneError("GitLab refused the push to branch 'b': remote: GitLab: You are not allowed to create"), True),
        (NoAccess("GitLab refused adding a deploy key: your role does not allow it."), True),
        (InsufficientScope("GitLab refused adding a deploy key: your token lacks the scope api."), True),
        (NotFound("Project lab/gone was not found on GitLab."), True),
        (TokenRejected("GitLab no longer accepts your login: log in again."), True),
        (SaveError("Booklab no longer holds your GitLab login for this notebook."), True),
        (GitLabUnavailable("GitLab answered 502."), False),
        (GitLabRateLimited("GitLab asked Booklab to slow down.", 60), False),
        (CloneUnavailable("git could not reach GitLab."), False),
        (DockerUnavailable("The Docker Engine did not answer."), False),
        (DeployKeyNotAccepted("Permission denied (publickey)"), False),  # GitLab may accept it a minute later
        (BranchNamesTaken("Branches booklab/alice/... to -5 all exist already."), False),
        (GitError("git commit failed on the runner."), False),
        (None, False),  # a bug: tried again, given up after save/give_up_after
    ],
)
def test_only_what_gitlab_refuses_for_good_is_given_up_at_once(error, for_good):
    assert protocol.refused_for_good(error) is for_good
