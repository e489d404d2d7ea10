"""The floors: what the same work costs done by hand, with nothing of Booklab around it.

- :func:`run_until_ready`: ``docker run`` of an image (the SDK's create + start, the
  notebook's command, token, limits and network as a runner starts it) until Jupyter
  answers ``/api/status``, polled every :data:`POLL` seconds.
- :func:`clone_build_run`: ``git clone`` of the branch over HTTPS (the cheapest clone by
  hand), ``repo2docker --engine booklab --no-run`` as :func:`booklab.pipeline.builder.build_image`
  calls it, then :func:`run_until_ready`.
"""

from __future__ import annotations

import secrets
import shutil
import time
from pathlib import Path

import docker

from booklab.config import Config
from booklab.pipeline import builder, git, launcher

#: seconds between two /api/status questions of a floor: finer than any step of Booklab's
POLL = 0.02


def run_until_ready(client: docker.DockerClient, image: str, config: Config, timeout: float = 120) -> float:
    """Seconds from ``docker run`` until the notebook answers; the container is removed after."""
    token = secrets.token_hex(32)
    started = time.monotonic()
    container = client.containers.run(
        image,
        launcher.COMMAND,
        detach=True,
        environment={"JUPYTER_TOKEN": token},
        labels={"booklab.bench": "floor"},
        mem_limit=config.notebook_memory,
        nano_cpus=int(config.notebook_cpus * 1e9),
        ports={f"{launcher.PORT}/tcp": (config.notebook_host, None)},
        network=config.notebook_network or None,
    )
    try:
        container.reload()
        port = container.ports[f"{launcher.PORT}/tcp"][0]["HostPort"]
        url = f"http://{config.notebook_host}:{port}/"
        while launcher.api_status(url, token) is None:
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"the floor's notebook from {image} did not answer within {timeout} s")
            time.sleep(POLL)
        return time.monotonic() - started
    finally:
        container.remove(force=True)


def clone_build_run(
    client: docker.DockerClient, http_url: str, branch: str, token: str, image: str, workdir: Path, config: Config
) -> tuple[float, float, float]:
    """Clone, build and run by hand; returns the seconds of (clone, build, run until ready)."""
    dest = workdir / "floor-checkout"
    shutil.rmtree(dest, ignore_errors=True)
    started = time.monotonic()
    for _ in git.clone(http_url, branch, dest, git.HttpsCredentials(token)):
        pass
    cloned = time.monotonic()
    for _ in builder.build_image(dest, image, timeout=config.build_timeout):
        pass
    built = time.monotonic()
    ready = run_until_ready(client, image, config)
    shutil.rmtree(dest, ignore_errors=True)
    return cloned - started, built - cloned, ready
