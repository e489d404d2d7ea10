"""Warm spares with real runners, Docker and Traefik (its Redis provider): an idle runner holds a started
notebook of a warm branch's image, unrouted; of 20 launches at once exactly one gets it, the others are served
as usual and none gets that container; a fresh spare is started behind it; a new commit of the branch replaces
the spare; a runner holding a spare drops it at once to serve another image; warm/refresh builds a branch's new
commit in the background, and its spares replace the old ones before anyone launches it; a launch served by a
spare asks GitLab for its branch alone, and is tried again when GitLab fails."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from itertools import groupby

import docker
import pytest
import requests

from booklab import service
from booklab.phases import Phase
from booklab.state import schema
from booklab.state.spares import OFFERED
from tests.fixtures.gitlab import create_local_repo
from tests.fixtures.pipeline import (
    BRANCH_LOOKUP,
    FAST_RETRIES,
    MAINTAINER,
    messages,
    notebook_repo_files,
    phases,
    run_to_end,
)
from tests.fixtures.services import wait_until
from tests.fixtures.web import push_notebook_project

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.beside]

LAUNCHES = 20
REPORTER = 20
ANY_IMAGE = object()


def offered_spare(ctx, runner_names: list[str], image: str, not_container: str = "", not_image: str = ""):
    """(runner, spare) of an offered spare of ``image`` (:data:`ANY_IMAGE`: any but ``not_image``), not in
    ``not_container``; None while there is none."""
    for name in runner_names:
        spare = ctx.spares.of(name)
        if (
            spare
            and spare.state == OFFERED
            and (image is ANY_IMAGE or spare.image == image)
            and spare.image != not_image
            and spare.container != not_container
        ):
            return name, spare
    return None


def through_traefik(traefik, url: str, token: str | None = None) -> int:
    host = url.split("//", 1)[1].split(":", 1)[0].rstrip("/")
    headers = {"Host": host, **({"Authorization": f"token {token}"} if token else {})}
    return requests.get(f"{traefik.entrypoint_url}/api/status", headers=headers, timeout=10).status_code


def stop_and_wait(ctx, deployment_id: str) -> None:
    service.stop(ctx, deployment_id)
    wait_until(lambda: ctx.deployments.status(deployment_id) is Phase.STOPPED, 30, f"{deployment_id} to stop")


def test_one_of_twenty_launches_at_once_gets_the_spare_and_the_others_are_served_as_usual(
    ctx, runners, traefik, gitlab, base_image, tmp_path, docker_engine
):
    users = [gitlab.add_user(f"student{i:02}") for i in range(LAUNCHES + 1)]
    project = push_notebook_project(
        gitlab, tmp_path / "repo", "course/lab", base_image, {user.username: MAINTAINER for user in users}
    )
    started = runners(2, **traefik.runner_env("redis"), BOOKLAB_WARM_PROJECTS=json.dumps({f"{project}@main": 1}))
    names = [runner.name for runner in started]

    teacher = service.request_deployment(ctx, project, "main", users[0].token)  # builds the image: warm from now on
    assert run_to_end(ctx, teacher.id)[-1]["phase"] == "ready"
    image = ctx.deployments.record(teacher.id)["image"]
    stop_and_wait(ctx, teacher.id)
    holder, spare = wait_until(lambda: offered_spare(ctx, names, image), 60, "a spare to be offered")
    assert ctx.spares.counts() == {image: 1}
    assert docker_engine.containers.get(spare.container).status == "running"
    assert ctx.route_tree.keys("traefik/http/routers/*") == []  # no route until a launch claims it

    with ThreadPoolExecutor(LAUNCHES) as pool:
        launches = list(pool.map(lambda u: service.request_deployment(ctx, project, "main", u.token), users[1:]))
    owner = {launch.id: user for launch, user in zip(launches, users[1:])}

    warm, served = [], []
    while len(served) < LAUNCHES:
        ready = wait_until(
            lambda: [d for d in owner if d not in served and ctx.deployments.status(d) is Phase.READY],
            120,
            "the runners' next notebooks",
        )
        for deployment_id in ready:
            record = ctx.deployments.record(deployment_id)
            if record["container"] == spare.container:
                warm.append(deployment_id)
                assert record["runner"] == holder and record.get("warm_run")
                ready_event = run_to_end(ctx, deployment_id)[-1]
                assert through_traefik(traefik, ready_event["url"], ready_event["token"]) == 200
                assert through_traefik(traefik, ready_event["url"], "not-the-token") == 403
            else:
                assert not record.get("warm_run")
            stop_and_wait(ctx, deployment_id)
            served.append(deployment_id)

    assert len(warm) == 1  # exactly one launch got the spare; every other one its own container
    assert ctx.redis.hget(schema.histogram("launch_time:warm"), "count") == "1"
    with pytest.raises(docker.errors.NotFound):
        docker_engine.containers.get(spare.container)  # ended with its user's notebook, never reused
    # a fresh spare behind it
    wait_until(lambda: offered_spare(ctx, names, image, not_container=spare.container), 60, "a fresh spare")


def test_a_new_commit_replaces_the_spare_and_another_image_drops_it_at_once(
    ctx, runners, traefik, gitlab, alice, base_image, tmp_path, docker_engine
):
    gitlab.add_project("course/moving", members={"alice": MAINTAINER})
    gitlab.push("course/moving", create_local_repo(tmp_path / "v1", {"main": notebook_repo_files(base_image)}))
    other = push_notebook_project(gitlab, tmp_path / "other", "course/other", base_image, {"alice": MAINTAINER})
    (runner,) = runners(1, **traefik.runner_env("redis"), BOOKLAB_WARM_PROJECTS='{"course/moving@main": 1}')

    first = service.request_deployment(ctx, "course/moving", "main", alice.token)
    assert run_to_end(ctx, first.id)[-1]["phase"] == "ready"
    old_image = ctx.deployments.record(first.id)["image"]
    stop_and_wait(ctx, first.id)
    _, old_spare = wait_until(lambda: offered_spare(ctx, [runner.name], old_image), 60, "a spare")

    # another image: the one runner drops its spare and serves it
    elsewhere = service.request_deployment(ctx, other, "main", alice.token)
    assert run_to_end(ctx, elsewhere.id)[-1]["phase"] == "ready"
    assert ctx.deployments.record(elsewhere.id)["container"] != old_spare.container
    with pytest.raises(docker.errors.NotFound):
        docker_engine.containers.get(old_spare.container)
    assert ctx.spares.of(runner.name) is None
    stop_and_wait(ctx, elsewhere.id)
    _, old_spare = wait_until(lambda: offered_spare(ctx, [runner.name], old_image), 60, "the spare again")

    # a new commit, launched: its image is the branch's latest, and the spare follows it
    files = {**notebook_repo_files(base_image), "week2.txt": "new material"}
    gitlab.push("course/moving", create_local_repo(tmp_path / "v2", {"main": files}))
    second = service.request_deployment(ctx, "course/moving", "main", alice.token)
    assert run_to_end(ctx, second.id)[-1]["phase"] == "ready"
    new_image = ctx.deployments.record(second.id)["image"]
    assert new_image != old_image
    stop_and_wait(ctx, second.id)
    _, new_spare = wait_until(lambda: offered_spare(ctx, [runner.name], new_image), 90, "a spare of the new commit")
    assert ctx.spares.counts() == {new_image: 1}
    with pytest.raises(docker.errors.NotFound):
        docker_engine.containers.get(old_spare.container)


def test_warm_refresh_builds_a_new_commit_in_the_background_and_its_spares_replace_the_old_ones(
    ctx, runners, traefik, gitlab, alice, base_image, tmp_path, docker_engine
):
    bot = gitlab.add_user("booklab-bot")  # may read the project, not add deploy keys: it clones over HTTPS
    gitlab.add_project("course/refreshed", members={"alice": MAINTAINER, "booklab-bot": REPORTER})
    gitlab.push("course/refreshed", create_local_repo(tmp_path / "v1", {"main": notebook_repo_files(base_image)}))
    (runner,) = runners(
        1,
        **traefik.runner_env("redis"),
        BOOKLAB_WARM_PROJECTS='{"course/refreshed@main": 1}',
        BOOKLAB_WARM_REFRESH="2",
        BOOKLAB_WARM_GITLAB_TOKEN=bot.token,
    )
    # no one launched it yet: the refresh builds it, and a spare follows
    _, first = wait_until(lambda: offered_spare(ctx, [runner.name], ANY_IMAGE), 180, "a spare of the branch")
    assert ctx.images.latest("course/refreshed", "main") == first.image
    built = "course/refreshed:main:booklab-bot"
    assert ctx.deployments.status(built) is Phase.STOPPED
    assert "for the warm spares of course/refreshed@main" in run_to_end(ctx, built)[-1]["message"]

    files = {**notebook_repo_files(base_image), "week2.txt": "new material"}
    gitlab.push("course/refreshed", create_local_repo(tmp_path / "v2", {"main": files}))
    _, second = wait_until(
        lambda: offered_spare(ctx, [runner.name], ANY_IMAGE, not_image=first.image), 180, "a spare of the new commit"
    )
    assert ctx.images.latest("course/refreshed", "main") == second.image
    with pytest.raises(docker.errors.NotFound):
        docker_engine.containers.get(first.container)

    launch = service.request_deployment(ctx, "course/refreshed", "main", alice.token)
    assert run_to_end(ctx, launch.id)[-1]["phase"] == "ready"
    assert ctx.deployments.record(launch.id)["container"] == second.container


def test_a_spare_is_served_after_one_call_to_gitlab_tried_again_when_gitlab_fails(
    ctx, runners, traefik, gitlab, alice, base_image, tmp_path
):
    project = push_notebook_project(gitlab, tmp_path / "repo", "course/flaky", base_image, {"alice": MAINTAINER})
    (runner,) = runners(
        1, **traefik.runner_env("redis"), **FAST_RETRIES, BOOKLAB_WARM_PROJECTS=json.dumps({f"{project}@main": 1})
    )
    first = service.request_deployment(ctx, project, "main", alice.token)
    assert run_to_end(ctx, first.id)[-1]["phase"] == "ready"
    stop_and_wait(ctx, first.id)
    _, spare = wait_until(lambda: offered_spare(ctx, [runner.name], ANY_IMAGE), 60, "a spare")

    gitlab.fail_next(BRANCH_LOOKUP, status=502, times=1)
    before = len(gitlab.request_log())
    launch = service.request_deployment(ctx, project, "main", alice.token)
    events = run_to_end(ctx, launch.id)
    assert events[-1]["phase"] == "ready", messages(events)
    assert ctx.deployments.record(launch.id)["container"] == spare.container
    (retry,) = [e["message"] for e in events if "Trying again" in e["message"]]
    assert "GitLab answered 502" in retry
    # the runner asked for the branch alone (by the project's path), not for the project first
    asked = [r.path for r in gitlab.request_log()[before:] if r.username == "alice"]
    assert f"/api/v4/projects/{project}" not in asked
    assert f"/api/v4/projects/{project}/repository/branches/main" in asked
    # the branch checked again, then the launch: the one step went through each phase once, in order
    told = [phase for phase, _ in groupby(phases(events))]
    assert told == ["waiting", "fetching", "built", "launching", "ready"], messages(events)
