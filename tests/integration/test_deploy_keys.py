"""No deploy key outlives its clone: one GitLab added while its answer was lost is removed
by its title, one GitLab adds only after its title's keys were removed is swept once more later, and one GitLab
failed to remove is swept by the runners later."""

from __future__ import annotations

import pytest

from booklab import service
from booklab.pipeline import steps
from booklab.state import schema
from tests.fixtures.pipeline import messages, phases, run_to_end
from tests.fixtures.services import wait_until

DEPLOY_KEYS = r"/deploy_keys$"


def requests_to(gitlab, method: str) -> list:
    return [r for r in gitlab.request_log() if r.method == method and "/deploy_keys" in r.path]


def test_a_key_added_while_gitlabs_answer_was_lost_is_removed(ctx, runners, gitlab, alice, project):
    # the first POST outlives the client's timeout, but GitLab adds the key all the same, before the try again
    # (3 s + 3 s); a timeout that leaves GitLab's other answers room on a loaded machine (one of them timing out
    # would be one try more)
    gitlab.fail_next(DEPLOY_KEYS, status=0, delay=4, method="POST")
    runners(1, BOOKLAB_GITLAB_TIMEOUT="3", BOOKLAB_RETRY_FIRST_DELAY="3")
    events = run_to_end(ctx, service.request_deployment(ctx, project, "main", alice.token).id)

    assert phases(events)[-1] == "ready", messages(events)
    assert len(requests_to(gitlab, "POST")) == 2
    assert len(requests_to(gitlab, "DELETE")) == 2
    assert gitlab.deploy_keys(project) == []


def test_a_key_gitlab_failed_to_remove_is_swept_later(ctx, runners, gitlab, alice, project):
    gitlab.fail_next(DEPLOY_KEYS, status=502, method="GET")  # the removal's listing
    runners(1, BOOKLAB_RETRY_MAX_DELAY="2")
    deployment_id = service.request_deployment(ctx, project, "main", alice.token).id
    events = run_to_end(ctx, deployment_id)
    assert phases(events)[-1] == "ready", messages(events)

    wait_until(lambda: gitlab.deploy_keys(project) == [], 15, "the sweeper to remove the key")
    assert [r.status for r in requests_to(gitlab, "GET")] == [502, 200]
    assert ctx.redis.zcard(schema.KEY_SWEEP) == 0
    # the user's token kept for the sweep is gone too: only the notebook's own Jupyter token is left, sealed
    assert ctx.redis.keys("secret:*") == [schema.secret(deployment_id, steps.NOTEBOOK_TOKEN)]


LATE = {"BOOKLAB_GITLAB_TIMEOUT": "3", "BOOKLAB_RETRY_MAX_DELAY": "2", "BOOKLAB_KEYS_LATE_SWEEP": "12"}


@pytest.mark.parametrize(
    "delay, tries, end",
    [
        (8, "4", "ready"),  # added 8 s after it was asked: after the try again (at 4 s) removed its title's keys
        (6, "1", "failed"),  # the only try: added after the failed run's end removed its title's keys
    ],
    ids=["after-the-try-again", "after-the-run-failed"],
)
def test_a_key_gitlab_adds_after_its_title_was_removed_is_swept_later(
    ctx, runners, gitlab, alice, project, delay, tries, end
):
    gitlab.fail_next(DEPLOY_KEYS, status=0, delay=delay, method="POST")  # its answer lost
    runners(1, **LATE, BOOKLAB_RETRY_FIRST_DELAY="1", BOOKLAB_RETRY_ATTEMPTS=tries)
    events = run_to_end(ctx, service.request_deployment(ctx, project, "main", alice.token).id)
    assert phases(events)[-1] == end, messages(events)
    # GitLab adds the lost key (the stand-in logs a request once it answered it), after the run removed its
    # title's keys; the late sweep removes it
    # (the stand-in may log the lost request before the key is in its list: the sweep's DELETE is waited for)
    posts = 2 if end == "ready" else 1
    wait_until(lambda: len(requests_to(gitlab, "POST")) == posts, 30, "GitLab to add the key, late")
    # each key removed once: the try again's after its clone, the late one by the late sweep
    wait_until(lambda: len(requests_to(gitlab, "DELETE")) == posts, 60, "the late key to be swept")
    assert gitlab.deploy_keys(project) == []
