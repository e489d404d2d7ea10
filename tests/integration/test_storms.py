"""Request storms through the web tier's API, on real runners: 50 simultaneous requests for
one deployment start it once; 50 requests for different deployments on 2 runners all end
``ready`` in turn (as notebooks are stopped) or wait with their queue position, none lost
and none started twice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
import requests

from booklab.phases import Phase
from tests.fixtures.pipeline import MAINTAINER, events_of, messages, notebook_containers
from tests.fixtures.services import wait_until
from tests.fixtures.web import push_notebook_project

pytestmark = [pytest.mark.slow, pytest.mark.beside]

STORM = 50


def launch(base: str, token: str, project: str, ref: str = "main") -> requests.Response:
    return requests.post(
        f"{base}/api/deployments",
        json={"project": project, "ref": ref},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )


def api(base: str, token: str, method: str, deployment_id: str, action: str = "") -> dict:
    url = f"{base}/api/deployments/{quote(deployment_id, safe='')}{action}"
    response = requests.request(method, url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    response.raise_for_status()
    return response.json()


def all_messages(ctx, deployment_id: str) -> str:
    return messages([e.data for e in events_of(ctx, deployment_id)])


def test_fifty_requests_for_one_deployment_start_it_once(
    web_server, ctx, runners, docker_engine, gitlab, alice, base_image, tmp_path
):
    project = push_notebook_project(
        gitlab, tmp_path / "repo", "storm/one", base_image, {"alice": MAINTAINER}, fixed_dates=False
    )  # a new commit: its image is built here
    runners(2)
    with ThreadPoolExecutor(STORM) as pool:
        answers = list(pool.map(lambda _: launch(web_server, alice.token, project), range(STORM)))

    assert sorted(a.status_code for a in answers) == [200] * (STORM - 1) + [201]
    (deployment_id,) = {a.json()["id"] for a in answers}
    wait_until(lambda: ctx.deployments.status(deployment_id) is Phase.READY, 120, "the notebook")
    log = all_messages(ctx, deployment_id)
    assert log.count("took the deployment") == 1 and log.count("Building image") == 1
    assert len(notebook_containers(ctx, docker_engine, deployment_id)) == 1
    image = ctx.deployments.record(deployment_id)["image"]
    assert len(docker_engine.images.list(name=image.split(":")[0])) == 1


def test_fifty_deployments_on_two_runners_end_ready_in_turn(
    web_server, ctx, runners, docker_engine, gitlab, base_image, tmp_path
):
    users = [gitlab.add_user(f"reader{i:02}") for i in range(STORM)]
    project = push_notebook_project(
        gitlab, tmp_path / "repo", "storm/many", base_image, {user.username: MAINTAINER for user in users}
    )
    runners(2)
    with ThreadPoolExecutor(STORM) as pool:
        answers = list(pool.map(lambda user: launch(web_server, user.token, project), users))
    assert [a.status_code for a in answers] == [201] * STORM
    owner = {a.json()["id"]: user for a, user in zip(answers, users)}

    served: list[str] = []
    while len(served) < STORM:
        expected_ready = min(2, STORM - len(served))
        ready = wait_until(
            lambda: r if len(r := _ready(ctx, owner, served)) == expected_ready else None,
            120,
            "the runners' next notebooks",
        )
        waiting = [d for d in owner if d not in served and d not in ready]
        positions = sorted(api(web_server, owner[d].token, "GET", d)["position"] for d in waiting)
        assert positions == list(range(1, len(waiting) + 1))  # each waits, with its own place
        for d in ready:
            api(web_server, owner[d].token, "POST", d, "/stop")
            served.append(d)
        for d in ready:
            wait_until(lambda d=d: ctx.deployments.status(d) is Phase.STOPPED, 30, f"{d} to stop")

    for d in owner:  # every one was served exactly once, and nothing is left running
        log = all_messages(ctx, d)
        assert log.count("took the deployment") == 1 and log.count("server running at") == 1, d
        assert notebook_containers(ctx, docker_engine, d) == []


def _ready(ctx, owner: dict, served: list[str]) -> list[str]:
    return [d for d in owner if d not in served and ctx.deployments.status(d) is Phase.READY]
