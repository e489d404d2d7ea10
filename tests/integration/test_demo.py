"""The demo command (what ``make demo`` runs) end to end: it starts, prints the lines
scripts pick up, serves a sample project's notebook through Traefik at its slug host (a
notebook whose code does not reach Traefik's API) and Flower behind
basic auth, and a Ctrl-C leaves none of its processes, containers or
network behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from booklab.demo import samples
from booklab.pipeline import notebook_network
from tests.fixtures.pipeline import IMAGE_PREFIX
from tests.fixtures.reach import connections_from, gateway
from tests.fixtures.services import ROOT, wait_until


def _leftovers(sessions: set[int], marker: str) -> list[str]:
    """Processes in one of ``sessions``, or whose command line names ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # it has just ended
            continue
        session = int(stat.rsplit(")", 1)[1].split()[3])
        if session in sessions or marker in command:
            found.append(f"{entry.name}: {command}")
    return found


@pytest.fixture
def demo_state() -> Path:
    """A new state directory under the system temp dir (the stand-in's sshd must reach it)."""
    state = Path(tempfile.mkdtemp(prefix="booklab-demo-test-"))
    yield state
    shutil.rmtree(state, ignore_errors=True)


def test_the_demo_serves_notebooks_and_flower_and_ctrl_c_stops_it_all(
    docker_engine, base_image, test_images, demo_state, tmp_path
):
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BOOKLAB_BASE_IMAGE": base_image,
        "BOOKLAB_BUILD_IMAGE_PREFIX": IMAGE_PREFIX,
    }
    progress = tmp_path / "demo.err"
    with progress.open("w") as err:
        demo = subprocess.Popen(
            [sys.executable, "-m", "booklab.demo", "--port", "0", "--runners", "1", "--state-dir", str(demo_state)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            start_new_session=True,
        )
    try:
        printed = {}
        for line in demo.stdout:
            name, _, value = line.strip().partition("=")
            if name in ("BOOKLAB_URL", "BOOKLAB_GITLAB_TOKEN"):
                printed[name] = value
            if len(printed) == 2:
                break
        assert len(printed) == 2, progress.read_text()
        info = json.loads((demo_state / "demo.json").read_text())
        assert printed == {"BOOKLAB_URL": info["url"], "BOOKLAB_GITLAB_TOKEN": info["token"]}
        assert info["url"] == f"http://localhost:{info['traefik_port']}"
        entrypoint = f"http://127.0.0.1:{info['traefik_port']}"
        health = requests.get(f"{info['url']}/health", timeout=10)
        assert health.json() == {"status": "ok", "runners": 1}, health.text

        deployed = subprocess.run(
            [
                sys.executable,
                "-m",
                "booklab.cli",
                "deploy",
                f"demo/{samples.NAME}",
                "--ref",
                samples.BRANCH_WITH_SLASH,
                "--follow",
                "--json",
            ],
            env={**env, **printed},
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        ready = json.loads(deployed.stdout.splitlines()[-1])
        assert ready["phase"] == "ready", deployed.stdout
        notebook = urlsplit(ready["url"])
        assert notebook.hostname.endswith(".localhost") and notebook.port == info["traefik_port"]
        jupyter = {"Host": notebook.hostname, "Authorization": f"token {ready['token']}"}
        status = requests.get(
            f"{entrypoint}/api/status", timeout=10, headers={**jupyter, "PRIVATE-TOKEN": info["token"]}
        )  # forward-auth: the owner
        assert status.status_code == 200, status.text
        assert requests.get(f"{entrypoint}/api/status", headers=jupyter, timeout=10).status_code == 401
        # the notebook's code does not reach Traefik's API, on a network that isolates notebooks
        assert notebook_network.isolates(docker_engine.networks.get(info["network"]))
        (container,) = docker_engine.containers.list(filters={"network": info["network"]})
        api = f"{gateway(container, info['network'])}:{urlsplit(info['traefik_dashboard']).port}"
        assert connections_from(container, [api])[api] != "open"

        flower = {"Host": urlsplit(info["flower_url"]).hostname}
        assert requests.get(f"{entrypoint}/", headers=flower, timeout=10).status_code == 401
        credentials = (info["flower_user"], info["flower_password"])
        assert requests.get(f"{entrypoint}/", headers=flower, auth=credentials, timeout=10).status_code == 200
        workers = f"{entrypoint}/api/workers?refresh=1"
        wait_until(
            lambda: (
                set(requests.get(workers, headers=flower, auth=credentials, timeout=10).json()) == set(info["runners"])
            ),
            30,
            "Flower to show the runner",
        )
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGINT)  # as Ctrl-C in its terminal
        try:
            stopped = demo.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            stopped = demo.wait()
        demo.stdout.close()

    assert stopped == 0, progress.read_text()

    assert _leftovers(set(info["processes"].values()), str(demo_state)) == []
    for runner in info["runners"]:
        assert docker_engine.containers.list(all=True, filters={"label": f"booklab.runner={runner}"}) == []
    assert docker_engine.networks.list(names=[info["network"]]) == []
