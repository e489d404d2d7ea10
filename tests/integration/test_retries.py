"""Transient failures are tried again after a backoff: GitLab answering 5xx or too late,
git unable to reach GitLab, a Docker Engine that does not answer. The deployment log and
Flower show each retry; a failure that lasts gives up with a clear message; a failure of
the repository itself is never tried again."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from booklab import service
from booklab.phases import Phase
from tests.fixtures.pipeline import BRANCH_LOOKUP, FAST_RETRIES, events_of, messages, phases, run_to_end
from tests.fixtures.services import ROOT, free_port, wait_until

DEVELOPER = 30


def retry_lines(events: list[dict]) -> list[str]:
    return [e["message"] for e in events if "Trying again" in e["message"]]


def test_gitlab_answering_502_is_tried_again_and_the_log_says_so(ctx, runners, gitlab, alice, project):
    gitlab.fail_next(BRANCH_LOOKUP, status=502, times=2)
    runners(1, **FAST_RETRIES)
    events = run_to_end(ctx, service.request_deployment(ctx, project, "main", alice.token).id)

    assert phases(events)[-1] == "ready", messages(events)
    first, second = retry_lines(events)
    assert "GitLab answered 502" in first and "(try 2 of 4)" in first
    assert "(try 3 of 4)" in second
    assert gitlab.deploy_keys(project) == []


def test_gitlab_asking_to_slow_down_is_tried_again_no_sooner_than_it_says(ctx, runners, gitlab, alice, project):
    gitlab.fail_next(BRANCH_LOOKUP, status=429, times=1, retry_after=3)
    runners(1, **FAST_RETRIES)
    events = run_to_end(ctx, service.request_deployment(ctx, project, "main", alice.token).id)

    assert phases(events)[-1] == "ready", messages(events)
    (retry,) = retry_lines(events)
    assert "GitLab asked Booklab to slow down" in retry and "Trying again in 3.0 s" in retry, retry
    assert [r.status for r in gitlab.request_log() if BRANCH_LOOKUP in r.path][:2] == [429, 200]


def test_a_gitlab_that_answers_too_late_is_tried_again(ctx, runners, gitlab, alice, project):
    gitlab.fail_next(re.escape(f"/api/v4/projects/{project}") + "$", status=0, delay=2.5, times=1)
    runners(1, BOOKLAB_GITLAB_TIMEOUT="1", **FAST_RETRIES)
    events = run_to_end(ctx, service.request_deployment(ctx, project, "main", alice.token).id)

    assert phases(events)[-1] == "ready", messages(events)
    assert "did not answer while looking up project" in retry_lines(events)[0]


def test_a_failure_that_lasts_gives_up_and_frees_the_runner(ctx, runners, gitlab, alice, project):
    gitlab.fail_next(BRANCH_LOOKUP, status=500, times=3)
    (runner,) = runners(1, BOOKLAB_RETRY_ATTEMPTS="3", **FAST_RETRIES)
    events = run_to_end(ctx, service.request_deployment(ctx, project, "main", alice.token).id)

    assert phases(events)[-1] == "failed"
    assert len(retry_lines(events)) == 2
    assert "GitLab answered 500" in events[-1]["message"]
    assert "Gave up after 3 tries" in events[-1]["message"]
    wait_until(lambda: not ctx.runners.held(runner.name), 10, "the runner to be free")
    again = service.request_deployment(ctx, project, "main", alice.token)
    assert phases(run_to_end(ctx, again.id))[-1] == "ready"


def test_git_unable_to_reach_gitlab_is_tried_again(ctx, runners, gitlab, project):
    dave = gitlab.add_user("dave")
    gitlab.set_member(project, "dave", DEVELOPER)  # clones over HTTPS
    gitlab.fail_next(r"\.git/info/refs$", status=502, times=1)
    runners(1, **FAST_RETRIES)
    events = run_to_end(ctx, service.request_deployment(ctx, project, "main", dave.token).id)

    assert phases(events)[-1] == "ready", messages(events)
    (retried,) = retry_lines(events)
    assert "git could not reach GitLab" in retried and "502" in retried


def test_a_docker_engine_that_does_not_answer_is_waited_for(ctx, runners, alice, project, tmp_path):
    socket = tmp_path / "docker.sock"  # nothing there yet: like a daemon that is restarting
    (runner,) = runners(1, DOCKER_HOST=f"unix://{socket}")
    wait_until(lambda: "takes no deployment until its Docker Engine answers" in runner.output(), 30, "the runner")
    request = service.request_deployment(ctx, project, "main", alice.token)
    assert ctx.deployments.status(request.id) is Phase.TODO
    told = [e.data["message"] for e in events_of(ctx, request.id)]
    assert told == ["Waiting for a free runner: position 1 in the queue.\n"]

    socket.symlink_to("/var/run/docker.sock")  # the daemon is back
    events = run_to_end(ctx, request.id)
    assert phases(events)[-1] == "ready", messages(events)


def test_a_repository_that_fails_to_build_is_not_tried_again(ctx, runners, gitlab, alice, project):
    runners(1, **FAST_RETRIES)
    events = run_to_end(ctx, service.request_deployment(ctx, project, "broken", alice.token).id)

    assert phases(events)[-1] == "failed"
    assert retry_lines(events) == []


@pytest.fixture
def flower(redis_url, tmp_path):
    """A real Flower watching the test's broker: ``(url, auth)``."""
    port, auth = free_port(), ("flower", "test-password")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FLOWER_BASIC_AUTH": ":".join(auth)}
    with (tmp_path / "flower.log").open("w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "booklab.dispatch.app",
                "--broker",
                redis_url,
                "flower",
                "--address=127.0.0.1",
                f"--port={port}",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return requests.get(f"{url}/api/workers", auth=auth, timeout=2).status_code == 200
        except requests.ConnectionError:
            return proc.poll() is not None

    wait_until(answers, 60, "Flower")
    assert proc.poll() is None, Path(tmp_path / "flower.log").read_text()
    yield url, auth
    proc.terminate()
    proc.wait(10)


def test_flower_shows_the_retried_step(ctx, runners, gitlab, alice, project, flower):
    url, auth = flower
    gitlab.fail_next(BRANCH_LOOKUP, status=503, times=1)
    runners(1, **FAST_RETRIES)
    events = run_to_end(ctx, service.request_deployment(ctx, project, "main", alice.token).id)
    assert phases(events)[-1] == "ready", messages(events)

    def retried() -> list[dict]:
        tasks = requests.get(f"{url}/api/tasks", auth=auth, timeout=5).json().values()
        return [t for t in tasks if t["name"] == "booklab.provision_key" and t.get("retries")]

    (task,) = wait_until(retried, 30, "Flower to show the retried task")
    assert task["retries"] == 1
