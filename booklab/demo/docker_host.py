"""The demo's Docker side: the engine (started when none answers), the local Jupyter base
image (built by ``images/base/build.sh`` when missing), and the demo's own network, from
which every container is removed at the end."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
from collections.abc import Iterable
from pathlib import Path

import docker
import requests

from booklab.demo.processes import Child, Processes
from booklab.errors import DemoError
from booklab.pipeline import notebook_network

log = logging.getLogger(__name__)

SOCKET = "unix:///var/run/docker.sock"
BASE_IMAGE = "booklab/base:bookworm-5"
BASE_IMAGE_SCRIPT = Path(__file__).resolve().parents[2] / "images" / "base" / "build.sh"
START_TIMEOUT = 60


def engine_answers() -> bool:
    """Whether a Docker Engine answers on its socket. The socket is tried first on its own:
    docker-py leaks the socket of a connection the engine refuses (while it starts). The
    client is given an API version, so that it does not ask the engine for one before the ping."""
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(SOCKET.removeprefix("unix://"))
        except OSError:
            return False
    client = docker.DockerClient(base_url=SOCKET, version=docker.constants.MINIMUM_DOCKER_API_VERSION)
    try:
        return client.ping()
    except (docker.errors.DockerException, requests.ConnectionError):
        return False
    finally:
        client.close()


def start_engine(processes: Processes) -> Child | None:
    """Start dockerd when no engine answers and wait until it does; None when one answered."""
    if engine_answers():
        return None
    if not shutil.which("dockerd"):
        raise DemoError("No Docker Engine answers and dockerd is not installed: apt-get install docker.io.")
    log.info("starting dockerd")
    dockerd = processes.start("dockerd", ["dockerd", "--host", SOCKET])
    processes.wait_until(dockerd, engine_answers, START_TIMEOUT, "dockerd answered")
    return dockerd


def ensure_base_image(client: docker.DockerClient, image: str, log_file: Path) -> None:
    """Build the local Jupyter base image when it is missing (about 2 minutes, once)."""
    try:
        client.images.get(image)
        return
    except docker.errors.ImageNotFound:
        pass
    if not BASE_IMAGE_SCRIPT.is_file():
        raise DemoError(
            f"The base image {image} is missing and {BASE_IMAGE_SCRIPT} is not here to build it: "
            "run the demo from a clone of Booklab."
        )
    log.info("building the base image %s (about 2 minutes, once; log in %s)", image, log_file)
    with log_file.open("ab") as out:
        built = subprocess.run([str(BASE_IMAGE_SCRIPT), image], stdout=out, stderr=subprocess.STDOUT, check=False)
    if built.returncode:
        raise DemoError(f"Building the base image {image} failed: see {log_file}.")


def create_network(client: docker.DockerClient, name: str) -> None:
    """The demo's notebook network: notebooks on it cannot reach each other."""
    notebook_network.create(client, name, labels={"booklab.demo": name})


def remove_network(client: docker.DockerClient, name: str, runners: Iterable[str]) -> None:
    """Remove the containers of ``runners`` and those on the network, then the network."""
    containers = {
        c.id: c
        for runner in runners
        for c in client.containers.list(all=True, filters={"label": f"booklab.runner={runner}"})
    }
    containers |= {c.id: c for c in client.containers.list(all=True, filters={"network": name})}
    for container in containers.values():
        container.remove(force=True)
        log.info("removed the container %s", container.name)
    try:
        client.networks.get(name).remove()
    except docker.errors.NotFound:
        return
    log.info("removed the network %s", name)
