"""The deployment pipeline end to end: real runner processes, Redis, Docker, repo2docker,
git over a real OpenSSH server, and the GitLab stand-in."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import requests

from booklab import service
from booklab.phases import Phase
from booklab.pipeline import steps
from booklab.pipeline.access import generate_keypair
from booklab.state import schema
from tests.fixtures.gitlab import create_local_repo
from tests.fixtures.pipeline import (
    BRANCH_WITH_SLASH,
    IMAGE_PREFIX,
    MAINTAINER,
    PROJECT,
    events_of,
    messages,
    notebook_containers,
    notebook_repo_files,
    phases,
    run_to_end,
)
from tests.fixtures.services import wait_until

DEVELOPER = 30


def deploy_key_requests(gitlab, method: str) -> list:
    return [r for r in gitlab.request_log() if r.method == method and "/deploy_keys" in r.path]


def api_status(ready: dict, token: str | None) -> int:
    headers = {"Authorization": f"token {token}"} if token else {}
    return requests.get(ready["url"] + "api/status", headers=headers, timeout=10).status_code


def test_a_deployment_reaches_ready_and_its_notebook_needs_the_token(ctx, runners, gitlab, alice, project):
    (runner,) = runners(1)
    request = service.request_deployment(ctx, project, "main", alice.token)
    assert request.started and request.id == f"{project}:main:alice"
    events = run_to_end(ctx, request.id)

    assert phases(events)[0] == "waiting" and "position 1" in events[0]["message"]
    assert {"fetching", "building", "launching"} <= set(phases(events))
    assert phases(events)[-1] == "ready", messages(events)
    ready = events[-1]
    assert ready["image"].startswith(f"{IMAGE_PREFIX}/") and ready["token"]
    assert api_status(ready, ready["token"]) == 200
    assert api_status(ready, None) in (401, 403)
    assert api_status(ready, "not-the-token") in (401, 403)
    contents = requests.get(
        ready["url"] + "api/contents", timeout=10, headers={"Authorization": f"token {ready['token']}"}
    ).json()
    assert "hello.ipynb" in [item["name"] for item in contents["content"]]
    assert ctx.deployments.status(request.id) is Phase.READY
    assert ctx.runners.held(runner.name)["deployment"] == request.id


def test_the_deploy_key_lives_only_for_the_clone(ctx, runners, gitlab, alice, project):
    runners(1)
    request = service.request_deployment(ctx, project, "main", alice.token)
    events = run_to_end(ctx, request.id)
    assert phases(events)[-1] == "ready", messages(events)

    # the clone went over SSH, which the stand-in allows only with a key added through its API
    assert "Added a read-only deploy key" in messages(events)
    assert [r.status for r in deploy_key_requests(gitlab, "POST")] == [201]
    assert [r.status for r in deploy_key_requests(gitlab, "DELETE")] == [204]
    assert len(gitlab.ssh_logins()) == 1  # git really logged in over SSH with the deploy key
    assert gitlab.deploy_keys(project) == []
    # of the secrets, only the running notebook's own Jupyter token is left, sealed
    assert ctx.redis.keys("secret:*") == [schema.secret(request.id, steps.NOTEBOOK_TOKEN)]


def test_a_second_deployment_of_the_same_commit_is_a_cache_hit(ctx, runners, gitlab, alice, project):
    bob = gitlab.add_user("bob")
    gitlab.set_member(project, "bob", MAINTAINER)
    runners(2)
    first = service.request_deployment(ctx, project, "main", alice.token)
    assert phases(run_to_end(ctx, first.id))[-1] == "ready"
    keys_added = len(deploy_key_requests(gitlab, "POST"))

    second = service.request_deployment(ctx, project, "main", bob.token)
    events = run_to_end(ctx, second.id)
    assert phases(events)[-1] == "ready", messages(events)
    assert "building" not in phases(events)
    assert {"phase": "built", "message": "Found built image, launching...\n"} in events
    assert len(deploy_key_requests(gitlab, "POST")) == keys_added
    assert events[-1]["image"] == run_to_end(ctx, first.id)[-1]["image"]
    assert events[-1]["url"] != run_to_end(ctx, first.id)[-1]["url"]  # two users, two notebooks


def test_a_request_for_a_queued_or_running_deployment_joins_it(ctx, runners, alice, project):
    first = service.request_deployment(ctx, project, "main", alice.token)
    again = service.request_deployment(ctx, project, "main", alice.token)
    assert first.started and not again.started and again.id == first.id
    runners(1)
    events = run_to_end(ctx, first.id)
    assert phases(events).count("waiting") == 1 and phases(events).count("launching") == 1
    after_ready = service.request_deployment(ctx, project, "main", alice.token)
    assert not after_ready.started
    assert [e for _, e in service.follow(ctx, first.run, timeout=5)][-1]["url"] == events[-1]["url"]


def test_with_two_runners_a_third_deployment_waits_for_a_notebook_to_stop(ctx, runners, gitlab, alice, project):
    bob = gitlab.add_user("bob")
    gitlab.set_member(project, "bob", MAINTAINER)
    runners(2)
    first = service.request_deployment(ctx, project, "main", alice.token)
    second = service.request_deployment(ctx, project, BRANCH_WITH_SLASH, alice.token)
    for request in (first, second):
        assert phases(run_to_end(ctx, request.id))[-1] == "ready"
    third = service.request_deployment(ctx, project, "main", bob.token)

    for _ in range(6):  # it stays queued while both runners serve a notebook
        assert ctx.deployments.status(third.id) is Phase.TODO
        assert ctx.deployments.queue_position(third.id) == 1
        time.sleep(0.5)

    service.stop(ctx, first.id)
    events = run_to_end(ctx, third.id)
    assert phases(events)[-1] == "ready", messages(events)
    assert ctx.deployments.status(first.id) is Phase.STOPPED
    assert ctx.deployments.record(third.id)["runner"] == ctx.deployments.record(first.id)["runner"]


@pytest.mark.parametrize(
    "project_path, branch, expected",
    [
        ("demo/missing", "main", "Project demo/missing was not found"),
        (PROJECT, "no-such-branch", "Branch 'no-such-branch' does not exist"),
        (PROJECT, "--upload-pack=touch /tmp/booklab-pwned", "is not a valid branch name"),
        (PROJECT, "broken", "about-to-fail"),
    ],
)
def test_bad_input_fails_with_what_to_do_and_frees_the_runner(
    ctx, runners, alice, project, project_path, branch, expected
):
    (runner,) = runners(1)
    request = service.request_deployment(ctx, project_path, branch, alice.token)
    events = run_to_end(ctx, request.id)
    assert phases(events)[-1] == "failed"
    assert expected in events[-1]["message"], events[-1]["message"]
    assert not Path("/tmp/booklab-pwned").exists()
    wait_until(lambda: not ctx.runners.held(runner.name), 10, "the runner to be free")
    assert phases(run_to_end(ctx, service.request_deployment(ctx, project, "main", alice.token).id))[-1] == "ready"


def test_a_developer_clones_over_https_with_their_own_token(ctx, runners, gitlab, project):
    dave = gitlab.add_user("dave")
    gitlab.set_member(project, "dave", DEVELOPER)
    runners(1)
    events = run_to_end(ctx, service.request_deployment(ctx, project, "main", dave.token).id)
    assert phases(events)[-1] == "ready", messages(events)
    assert "cloning over HTTPS with your own token" in messages(events)
    assert gitlab.deploy_keys(project) == []


def test_no_secret_reaches_a_log(ctx, runners, gitlab, alice, project):
    (runner,) = runners(1)
    request = service.request_deployment(ctx, project, "main", alice.token)
    events = run_to_end(ctx, request.id)
    token = events[-1]["token"]
    service.stop(ctx, request.id)
    wait_until(lambda: ctx.deployments.status(request.id) is Phase.STOPPED, 15, "the stop")

    logs = runner.output() + "".join(item for key in ctx.redis.keys("log:*") for item in ctx.redis.lrange(key, 0, -1))
    for secret in (token, alice.token, "PRIVATE KEY", "Authorization"):
        assert secret not in logs


def test_stop_frees_the_runner_for_the_next_deployment(ctx, runners, docker_engine, alice, project):
    (runner,) = runners(1)
    first = service.request_deployment(ctx, project, "main", alice.token)
    assert phases(run_to_end(ctx, first.id))[-1] == "ready"
    second = service.request_deployment(ctx, project, BRANCH_WITH_SLASH, alice.token)
    assert ctx.deployments.status(second.id) is Phase.TODO

    service.stop(ctx, first.id)
    wait_until(
        lambda: ctx.deployments.status(second.id) is not Phase.TODO, 30, "the runner to take the next deployment"
    )
    assert notebook_containers(ctx, docker_engine, first.id) == []
    events = run_to_end(ctx, second.id)
    assert phases(events)[-1] == "ready" and "building-the-branch-with-accents" in messages(events)


@pytest.mark.parametrize(
    "limit, reason",
    [
        ({"BOOKLAB_NOTEBOOK_IDLE_TIMEOUT": "3"}, "idle for more than 3 s"),
        ({"BOOKLAB_NOTEBOOK_MAX_LIFETIME": "4"}, "maximum lifetime of 4 s"),
    ],
)
def test_a_notebook_is_culled_and_the_runner_takes_work_again(
    ctx, runners, docker_engine, alice, project, limit, reason
):
    (runner,) = runners(1, **limit)
    request = service.request_deployment(ctx, project, "main", alice.token)
    assert phases(run_to_end(ctx, request.id))[-1] == "ready"
    wait_until(lambda: ctx.deployments.status(request.id) is Phase.STOPPED, 30, "culling")
    assert reason in events_of(ctx, request.id)[-1].data["message"]
    assert notebook_containers(ctx, docker_engine, request.id) == []
    wait_until(lambda: not ctx.runners.held(runner.name), 5, "the runner to be free")


def test_a_notebook_outliving_the_visibility_timeout_is_started_once(
    ctx, runners, docker_engine, gitlab, alice, base_image, tmp_path
):
    repo = create_local_repo(tmp_path / "slow", {"main": notebook_repo_files(base_image, "RUN sleep 4\n")})
    gitlab.add_project("demo/slow", members={"alice": MAINTAINER})
    gitlab.push("demo/slow", repo)
    started = runners(2, BOOKLAB_BROKER_VISIBILITY_TIMEOUT="2")  # the idle one restores unacked messages
    request = service.request_deployment(ctx, "demo/slow", "main", alice.token)
    events = run_to_end(ctx, request.id)
    assert phases(events)[-1] == "ready"
    time.sleep(8)  # several visibility timeouts with the notebook alive
    all_events = [e.data for e in events_of(ctx, request.id)]
    assert phases(all_events).count("launching") == 1 and phases(all_events).count("ready") == 1
    assert len(notebook_containers(ctx, docker_engine, request.id)) == 1
    assert ctx.deployments.status(request.id) is Phase.READY
    # the build outlived the timeout, so the broker really gave its message again
    assert "delivered again" in "".join(runner.output() for runner in started)


def test_the_gitlab_host_key_is_learned_once_then_checked(ctx, runners, gitlab, alice, base_image, tmp_path):
    fresh = uuid.uuid4().hex  # commits no image exists for: both deployments clone over SSH
    repo = create_local_repo(
        tmp_path / "hostkey",
        {
            "main": notebook_repo_files(base_image, f"RUN echo {fresh}-1\n"),
            "other": notebook_repo_files(base_image, f"RUN echo {fresh}-2\n"),
        },
    )
    gitlab.add_project("demo/hostkey", members={"alice": MAINTAINER})
    gitlab.push("demo/hostkey", repo)
    runners(1)
    first = service.request_deployment(ctx, "demo/hostkey", "main", alice.token)
    assert phases(run_to_end(ctx, first.id))[-1] == "ready"
    learned = ctx.redis.hget(schema.CONF, "known_hosts")
    assert gitlab.known_hosts_line.split()[-1] in learned  # the stand-in's own host key

    service.stop(ctx, first.id)
    wait_until(lambda: ctx.deployments.status(first.id) is Phase.STOPPED, 15, "the stop")
    impostor = generate_keypair().public_openssh.split()[1]
    ctx.redis.hset(schema.CONF, "known_hosts", f"{gitlab.known_hosts_line.split()[0]} ssh-ed25519 {impostor}\n")
    events = run_to_end(ctx, service.request_deployment(ctx, "demo/hostkey", "other", alice.token).id)
    assert phases(events)[-1] == "failed"
    assert "SSH host key does not match" in events[-1]["message"]


def test_a_branch_full_of_shell_metacharacters_is_only_ever_data(ctx, runners, gitlab, alice, base_image, tmp_path):
    branch = "odd/$(touch${IFS}booklab-pwned)|`id`&;x"  # a valid git branch name
    repo = create_local_repo(
        tmp_path / "odd",
        {
            "main": notebook_repo_files(base_image),
            branch: notebook_repo_files(base_image, "RUN echo odd-branch-built\n"),
        },
    )
    gitlab.add_project("demo/odd", members={"alice": MAINTAINER})
    gitlab.push("demo/odd", repo)
    (runner,) = runners(1)
    events = run_to_end(ctx, service.request_deployment(ctx, "demo/odd", branch, alice.token).id)
    assert phases(events)[-1] == "ready", messages(events)
    assert "odd-branch-built" in messages(events)
    assert not list(tmp_path.rglob("booklab-pwned")) and not Path("booklab-pwned").exists()
