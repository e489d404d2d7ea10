"""A notebook reaches nothing of Booklab's: from inside a running notebook, as the
repository's code would try, connections to Redis, the web tier, Traefik's API and another
user's notebook fail, while the host itself answers on the notebook's network (so a failure
is the network's doing, not the probe's); and Redis holds no notebook's Jupyter token in
clear."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import uuid
from urllib.parse import urlsplit

import pytest

from booklab import service
from booklab.pipeline import notebook_network
from tests.fixtures.pipeline import notebook_containers, run_to_end
from tests.fixtures.reach import address, connections_from, gateway
from tests.fixtures.services import ROOT
from tests.fixtures.web import push_notebook_project

PROJECT = "isolated/notebooks"


def redis_dump(client) -> str:
    """Every key and value Redis holds, as text (a key that expires while it is read, as
    a runner's heartbeat may, is left out)."""
    parts = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == "none":
            continue
        value = {
            "string": client.get,
            "hash": client.hgetall,
            "list": lambda k: client.lrange(k, 0, -1),
            "set": client.smembers,
            "zset": lambda k: client.zrange(k, 0, -1),
        }[kind](key)
        parts.append(f"{key} {value}")
    return "\n".join(parts)


@pytest.fixture
def listener_on(request):
    """A TCP listener of the test's own on the host at ``address``; returns its port."""

    def listen(host: str) -> int:
        server = socket.create_server((host, 0))
        server.settimeout(0.5)
        stop = threading.Event()

        def accept() -> None:
            while not stop.is_set():
                try:
                    server.accept()[0].close()
                except TimeoutError:
                    continue

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        request.addfinalizer(lambda: (stop.set(), thread.join(), server.close()))
        return server.getsockname()[1]

    return listen


def test_a_notebook_reaches_neither_booklab_nor_another_notebook(
    ctx, runners, traefik, web_server, alice, gitlab, base_image, tmp_path, docker_engine, redis_url, listener_on
):
    bob = gitlab.add_user("bob")
    push_notebook_project(gitlab, tmp_path / "isolated", PROJECT, base_image, {alice.username: 40, bob.username: 40})
    runners(2, **traefik.runner_env("docker", auth_url=web_server))
    containers, tokens = [], []
    for user in (alice, bob):
        deployment_id = service.request_deployment(ctx, PROJECT, "main", user.token).id
        events = run_to_end(ctx, deployment_id)
        assert events[-1]["phase"] == "ready", events
        tokens.append(events[-1]["token"])
        containers += notebook_containers(ctx, docker_engine, deployment_id, stopped=False)
    # whoever reads Redis (a notebook could not, but a leaked dump could) learns no Jupyter token
    assert [token for token in tokens if token in redis_dump(ctx.redis)] == []
    hostile, neighbour = containers
    host = gateway(hostile, traefik.network)
    targets = {
        "Redis": f"{host}:{urlsplit(redis_url).port}",
        "the web tier": f"{host}:{urlsplit(web_server).port}",
        "Traefik's API": f"{host}:{urlsplit(traefik.api_url).port}",
        "another notebook": f"{address(neighbour, traefik.network)}:8888",
    }
    control = f"{host}:{listener_on(host)}"
    answers = connections_from(hostile, [*targets.values(), control, "127.0.0.1:8888"])

    assert answers[control] == "open"  # the host answers the notebook on its network...
    assert answers["127.0.0.1:8888"] == "open"  # ...and the probe works inside the notebook
    reached = {name: target for name, target in targets.items() if answers[target] == "open"}
    assert reached == {}, f"a notebook reached {reached}"


def test_a_runner_refuses_a_notebook_network_where_notebooks_reach_each_other(booklab_env, docker_engine, tmp_path):
    shared = docker_engine.networks.create(f"booklab-test-shared-{uuid.uuid4().hex[:12]}", driver="bridge")
    try:
        runner = subprocess.run(
            [sys.executable, "-m", "booklab.cli", "runner", "--name", "refusing@test"],
            env={**os.environ, "PYTHONPATH": str(ROOT), **booklab_env, "BOOKLAB_NOTEBOOK_NETWORK": shared.name},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        shared.remove()
    assert runner.returncode == 2, runner.stdout + runner.stderr
    assert f"docker network create -o {notebook_network.ICC_OPTION}=false" in runner.stderr
