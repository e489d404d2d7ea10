"""Repositories of odd shapes, deployed on a real runner: no notebook at all, a Dockerfile
that exposes another port, one whose image runs as root, and a build that prints far more
than a deployment log keeps (and a line longer than a log line may be)."""

from __future__ import annotations

import secrets
import time

import pytest
import requests

from booklab import service
from tests.fixtures.gitlab import create_local_repo
from tests.fixtures.pipeline import MAINTAINER, events_of, messages, phases, run_to_end
from tests.fixtures.services import wait_until


def deploy(ctx, gitlab, alice, tmp_path, path: str, files: dict[str, str]) -> list[dict]:
    """The events of a deployment of ``files`` as project ``path``, as they came."""
    repo = create_local_repo(tmp_path / path.replace("/", "-"), {"main": files})
    gitlab.add_project(path, members={"alice": MAINTAINER})
    gitlab.push(path, repo)
    return run_to_end(ctx, service.request_deployment(ctx, path, "main", alice.token).id)


def contents(ready: dict) -> list[str]:
    answer = requests.get(
        ready["url"] + "api/contents", headers={"Authorization": f"token {ready['token']}"}, timeout=10
    )
    answer.raise_for_status()
    return sorted(item["name"] for item in answer.json()["content"])


def test_a_repository_without_a_notebook_opens_its_files(ctx, runners, gitlab, alice, base_image, tmp_path):
    runners(1)
    events = deploy(
        ctx,
        gitlab,
        alice,
        tmp_path,
        "odd/no-notebook",
        {
            "Dockerfile": f"FROM {base_image}\nCOPY --chown=1000:1000 . /home/jovyan/\n",
            "README.md": "Only a README here.\n",
        },
    )
    assert phases(events)[-1] == "ready", messages(events)
    assert contents(events[-1]) == ["Dockerfile", "README.md"]


def test_a_dockerfile_exposing_another_port_still_serves_jupyter(ctx, runners, gitlab, alice, base_image, tmp_path):
    runners(1)
    events = deploy(
        ctx,
        gitlab,
        alice,
        tmp_path,
        "odd/other-port",
        {
            "Dockerfile": f"FROM {base_image}\nEXPOSE 9000\nCOPY --chown=1000:1000 . /home/jovyan/\n",
            "hello.txt": "hi\n",
        },
    )
    assert phases(events)[-1] == "ready", messages(events)
    assert "hello.txt" in contents(events[-1])


@pytest.mark.parametrize(
    "user_steps, refused_before",
    [
        ("USER root\n", "create"),  # seen in the image's configuration
        # root by another name: seen in the created container's /etc/passwd
        ("USER root\nRUN useradd --non-unique --uid 0 --no-create-home admin\nUSER admin\n", "start"),
    ],
    ids=["root", "uid-0-by-name"],
)
def test_an_image_that_runs_as_root_fails_with_what_to_do(
    ctx, runners, gitlab, alice, base_image, tmp_path, docker_engine, user_steps, refused_before
):
    (runner,) = runners(1)
    since = time.time()
    events = deploy(ctx, gitlab, alice, tmp_path, "odd/root", {"Dockerfile": f"FROM {base_image}\n{user_steps}"})
    assert phases(events)[-1] == "failed", messages(events)
    assert "runs as root" in events[-1]["message"] and "USER 1000" in events[-1]["message"]
    assert not list(
        docker_engine.events(
            since=int(since),
            until=int(time.time()) + 1,
            decode=True,
            filters={
                "type": "container",
                "event": refused_before,
                "label": ["booklab.deployment=odd/root:main:alice", f"booklab.runner={runner.name}"],
            },
        )
    )
    wait_until(lambda: not ctx.runners.held(runner.name), 10, "the runner to be free")


def test_a_huge_build_log_is_capped_and_the_notebook_still_starts(ctx, runners, gitlab, alice, base_image, tmp_path):
    runners(1, BOOKLAB_LOG_MAX_EVENTS="500")
    events = deploy(
        ctx,
        gitlab,
        alice,
        tmp_path,
        "odd/chatty",
        # steps of their own: from Docker's build cache, they would print nothing
        {
            "Dockerfile": (
                f"FROM {base_image}\nRUN echo {secrets.token_hex(8)} && seq 1 20000\n"
                "RUN python3 -c \"print('x' * 3_000_000)\"\n"
            )
        },
    )
    assert phases(events)[-1] == "ready", messages(events[-5:])
    assert len(events) > 20000  # all of them were streamed live...
    assert len(events_of(ctx, "odd/chatty:main:alice")) == 500  # ...and the last 500 are kept
    (long_line,) = [e["message"] for e in events if e["message"].startswith("xxxx")]
    assert len(long_line) < 4100 and "more characters cut" in long_line
