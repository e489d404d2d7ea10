"""The demo command (what ``make demo`` runs) end to end: it starts, prints the lines
scripts pick up, serves a sample project's notebook through Traefik at its slug host (a
notebook whose code does not reach Traefik's API) and Flower behind
basic auth, and a Ctrl-C leaves none of its processes, containers or
network behind. On two hosts (``make demo HOSTS=2``) it tells which host serves each
notebook, and a Ctrl-C leaves none of its namespaces, engines or mounts behind. With a hub
(``make demo HUB=1``) notebooks open as the demo user's servers of the hub."""

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


def demo_env(base_image: str) -> dict[str, str]:
    """The demo's environment: this source tree, the tests' base image, its builds named as the tests' images."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BOOKLAB_BASE_IMAGE": base_image,
        "BOOKLAB_BUILD_IMAGE_PREFIX": IMAGE_PREFIX,
    }


@pytest.fixture
def demo_state() -> Path:
    """A new state directory under the system temp dir (the stand-in's sshd must reach it)."""
    state = Path(tempfile.mkdtemp(prefix="booklab-demo-test-"))
    yield state
    shutil.rmtree(state, ignore_errors=True)


class RunningDemo:
    """``python -m booklab.demo`` started with ``args`` in its own session, its summary read."""

    def __init__(self, args: list[str], env: dict[str, str], state: Path, progress: Path) -> None:
        self.env, self.state, self.progress = env, state, progress
        with progress.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "booklab.demo", "--port", "0", "--state-dir", str(state), *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                start_new_session=True,
            )
        self.printed: dict[str, str] = {}
        for line in self.process.stdout:
            name, _, value = line.strip().partition("=")
            if name in ("BOOKLAB_URL", "BOOKLAB_GITLAB_TOKEN"):
                self.printed[name] = value
            if len(self.printed) == 2:
                break
        assert len(self.printed) == 2, progress.read_text()
        self.info = json.loads((state / "demo.json").read_text())
        assert self.printed == {"BOOKLAB_URL": self.info["url"], "BOOKLAB_GITLAB_TOKEN": self.info["token"]}
        assert self.info["url"] == f"http://localhost:{self.info['traefik_port']}"
        self.entrypoint = f"http://127.0.0.1:{self.info['traefik_port']}"

    def deploy(self, ref: str) -> dict:
        """Launch the sample project's ``ref`` with the CLI, as the demo's summary says; its ``ready`` event."""
        deployed = subprocess.run(
            [sys.executable, "-m", "booklab.cli", "deploy", f"demo/{samples.NAME}", "--ref", ref, "--follow", "--json"],
            env={**self.env, **self.printed},
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        ready = json.loads(deployed.stdout.splitlines()[-1])
        assert ready["phase"] == "ready", deployed.stdout
        return ready

    def notebook_status(self, ready: dict, owner: bool = True) -> int:
        """The status of the notebook's ``/api/status`` through Traefik, asked for by its owner or by no one."""
        notebook = urlsplit(ready["url"])
        assert notebook.hostname.endswith(".localhost") and notebook.port == self.info["traefik_port"]
        headers = {"Host": notebook.hostname, "Authorization": f"token {ready['token']}"}
        if owner:
            headers["PRIVATE-TOKEN"] = self.info["token"]  # forward-auth: the owner
        return requests.get(f"{self.entrypoint}/api/status", headers=headers, timeout=10).status_code

    def stop(self) -> int:
        """Ctrl-C in its terminal; its exit status."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            stopped = self.process.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            stopped = self.process.wait()
        self.process.stdout.close()
        return stopped


def test_the_demo_serves_notebooks_and_flower_and_ctrl_c_stops_it_all(
    docker_engine, base_image, test_images, demo_state, tmp_path
):
    env = demo_env(base_image)
    demo = RunningDemo(["--runners", "1"], env, demo_state, tmp_path / "demo.err")
    info, entrypoint = demo.info, demo.entrypoint
    try:
        health = requests.get(f"{info['url']}/health", timeout=10)
        assert health.json() == {"status": "ok", "runners": 1}, health.text

        ready = demo.deploy(samples.BRANCH_WITH_SLASH)
        assert demo.notebook_status(ready) == 200
        assert demo.notebook_status(ready, owner=False) == 401
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
        stopped = demo.stop()

    assert stopped == 0, demo.progress.read_text()

    assert _leftovers(set(info["processes"].values()), str(demo_state)) == []
    for runner in info["runners"]:
        assert docker_engine.containers.list(all=True, filters={"label": f"booklab.runner={runner}"}) == []


def _namespaces() -> set[str]:
    return set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout.split())


def test_the_demo_on_two_hosts_tells_which_host_serves_each_notebook(base_image, demo_state, tmp_path):
    namespaces_before = _namespaces()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BOOKLAB_BASE_IMAGE": base_image}
    demo = RunningDemo(["--hosts", "2", "--runners", "2"], env, demo_state, tmp_path / "demo.err")
    info = demo.info
    try:
        assert info["runner_hosts"] == dict(zip(info["runners"], ["booklab-a", "booklab-b"]))
        health = requests.get(f"{info['url']}/health", timeout=10)
        assert health.json() == {"status": "ok", "runners": 2}, health.text
        # the first launch takes one runner; the second, while it runs, the other host's
        notebooks = [demo.deploy(ref) for ref in ("main", samples.BRANCH_WITH_SLASH)]
        for ready in notebooks:
            assert demo.notebook_status(ready) == 200
            assert demo.notebook_status(ready, owner=False) == 401
        told: list[str] = []
        while len(told) < len(notebooks):  # after the summary's blank last line
            told += [line] if (line := demo.process.stdout.readline().strip()) else []
        served = {
            ref: line.rsplit(" is served by host ", 1)[1].split(",")[0]
            for line in told
            for ref in ("main", samples.BRANCH_WITH_SLASH)
            if f"({ref})" in line
        }
        assert sorted(served.values()) == ["booklab-a", "booklab-b"], told
    finally:
        stopped = demo.stop()

    assert stopped == 0, demo.progress.read_text()
    assert _leftovers(set(info["processes"].values()), str(demo_state)) == []
    assert _namespaces() == namespaces_before
    mounts = Path("/proc/mounts").read_text()
    assert str(demo_state) not in mounts


def test_the_demo_with_a_hub_opens_notebooks_as_the_users_servers_there(
    docker_engine, base_image, test_images, demo_state, tmp_path
):
    env = demo_env(base_image)
    demo = RunningDemo(["--runners", "1", "--hub"], env, demo_state, tmp_path / "demo.err")
    info = demo.info
    try:
        hub = urlsplit(info["hub_url"])
        assert hub.hostname == "hub.localhost", info["hub_url"]
        ready = demo.deploy("main")
        server = urlsplit(ready["url"])
        assert server.hostname == "demo.hub.localhost" and server.port == hub.port
        assert server.path.startswith("/user/demo/bk-")
        # the hub serves it, behind its own login
        answer = requests.get(
            f"http://127.0.0.1:{hub.port}{server.path}lab",
            headers={"Host": server.netloc},
            allow_redirects=False,
            timeout=10,
        )
        assert answer.status_code == 302 and "/hub/api/oauth2/authorize" in answer.headers["Location"]
        (container,) = docker_engine.containers.list(filters={"network": info["network"]})
        assert container.image.tags[0].startswith(f"{IMAGE_PREFIX}")
        # the hub's Services link leads to Booklab
        link = requests.get(
            f"http://127.0.0.1:{hub.port}/services/booklab/",
            headers={"Host": f"booklab--service.{hub.netloc}"},
            allow_redirects=False,
            timeout=10,
        )
        assert link.status_code == 302 and link.headers["Location"] == f"{info['url']}/"
    finally:
        stopped = demo.stop()

    assert stopped == 0, demo.progress.read_text()
    assert _leftovers(set(info["processes"].values()), str(demo_state)) == []
    assert docker_engine.containers.list(all=True, filters={"id": container.id}) == []
