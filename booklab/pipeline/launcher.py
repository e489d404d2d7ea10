"""The launch step: start a notebook container from a built image with a fresh Jupyter
token, and the calls that watch it (ready, last activity), find it and stop it.

The token reaches Jupyter through the ``JUPYTER_TOKEN`` environment variable, never the
command line, and is kept out of every log line and error message.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import time
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

import docker
import requests
from docker.models.containers import Container

from booklab.errors import LaunchError
from booklab.pipeline import notebook_container
from booklab.pipeline.transient import docker_unavailable

log = logging.getLogger(__name__)

PORT = 8888
COMMAND = ["jupyter", "notebook", "--ip=0.0.0.0", f"--port={PORT}", "--no-browser"]
LOG_LINES = 20
STOP_TIMEOUT = 5
#: Jupyter answers about 1 s after its start: poll finely (a refused connection costs little)
POLL_INTERVAL = 0.02
#: seconds between two looks at the container's state while its notebook does not answer yet
STATE_INTERVAL = 0.25
HTTP_TIMEOUT = 5


@dataclass(frozen=True)
class Notebook:
    """A started notebook container and how to reach it."""

    container_id: str
    name: str
    url: str
    token: str = field(repr=False)
    image: str


def launch(
    client: docker.DockerClient,
    image: str,
    *,
    name: str,
    deployment_id: str,
    labels: dict[str, str],
    limits: notebook_container.Limits,
    network: str = "",
    host_ip: str = "127.0.0.1",
    publish: bool = True,
) -> Notebook:
    """Start ``image`` detached as ``deployment_id``'s Jupyter notebook with its own token,
    within ``limits``, configured by :mod:`booklab.pipeline.notebook_container` (which may refuse
    the image). With ``publish`` its port is published on a random port of ``host_ip``;
    without, it is reached at its address on ``network`` only."""
    if not publish and not network:
        raise LaunchError("A notebook that is not published needs a network: set notebook/network.")
    token = secrets.token_hex(32)
    try:
        attrs = client.images.get(image).attrs
        kwargs = notebook_container.create_kwargs(
            attrs,
            name=name,
            deployment_id=deployment_id,
            labels=labels,
            limits=limits,
            environment={"JUPYTER_TOKEN": token},
            network=network,
            host_ip=host_ip,
            publish=publish,
            port=PORT,
        )
        _remove_leftover(client, name, deployment_id)
        # by the id of the image just checked: the name may be retagged meanwhile (a build of the same commit)
        container = client.containers.create(attrs["Id"], COMMAND, **kwargs)
    except docker.errors.ImageNotFound as e:
        raise LaunchError(f"The image {image} is gone: deploy again to rebuild it.") from e
    except docker.errors.DockerException as e:
        if docker_unavailable(e):
            raise  # tried again
        raise LaunchError(f"The notebook container could not be created: {e}. Check the notebook/* settings.") from e
    try:
        notebook_container.check_before_start(container, attrs, limits)
        container.start()
        container.reload()
    except (docker.errors.DockerException, LaunchError) as e:
        container.remove(force=True)
        if isinstance(e, LaunchError) or docker_unavailable(e):
            raise
        raise LaunchError(
            f"The notebook container could not start: {e}. Check notebook/network and notebook/host."
        ) from e
    if container.status != "running" or (publish and not container.ports.get(f"{PORT}/tcp")):
        error = _exited(container, token)  # it has exited already
        container.remove(force=True)
        raise error
    if publish:
        address = f"{host_ip}:{container.ports[f'{PORT}/tcp'][0]['HostPort']}"
    else:
        address = f"{container.attrs['NetworkSettings']['Networks'][network]['IPAddress']}:{PORT}"
    log.info("started notebook %s from %s on %s", name, image, address)
    return Notebook(container.id, name, f"http://{address}/", token, image)


def _remove_leftover(client: docker.DockerClient, name: str, deployment_id: str) -> None:
    """Remove the container an earlier try of ``deployment_id`` left under ``name``; refuse
    the launch when another deployment's container holds the name."""
    try:
        leftover = client.containers.get(name)
    except docker.errors.NotFound:
        return
    if leftover.labels.get("booklab.deployment") != deployment_id:
        raise LaunchError(
            f"The notebook name {name} is taken by another deployment: deploy again later, or ask the operator."
        )
    leftover.remove(v=True, force=True)
    log.info("removed the container %s left by an earlier try", name)


def wait_ready(notebook: Notebook, timeout: float) -> None:
    """Return once the notebook answers ``/api/status``; raise :class:`LaunchError` when its
    container stops first or ``timeout`` s pass."""
    deadline = time.monotonic() + timeout
    state_due = time.monotonic() + STATE_INTERVAL
    with closing(docker.from_env()) as client, requests.Session() as session:
        while api_status(notebook.url, notebook.token, session=session) is None:
            if time.monotonic() >= state_due:
                _still_starting(client, notebook, deadline, timeout)
                state_due = time.monotonic() + STATE_INTERVAL
            time.sleep(POLL_INTERVAL)
    log.info("notebook %s is ready", notebook.name)


def _still_starting(client: docker.DockerClient, notebook: Notebook, deadline: float, timeout: float) -> None:
    """Raise :class:`LaunchError` when the notebook's container is gone or stopped, or ``deadline`` passed."""
    try:
        container = client.containers.get(notebook.container_id)
    except docker.errors.NotFound as e:
        raise LaunchError("The notebook container was removed before it answered: deploy again.") from e
    if container.status not in {"created", "running"}:
        raise _exited(container, notebook.token)
    if time.monotonic() > deadline:
        raise LaunchError(
            f"The notebook did not answer within {timeout:g} s: make the image start "
            "faster or raise notebook/ready_timeout. Its last log lines:\n"
            f"{_logs(container, notebook.token)}"
        )


def last_activity(notebook: Notebook) -> datetime | None:
    """When the notebook last saw activity, as Jupyter reports it; None if it does not answer."""
    status = api_status(notebook.url, notebook.token)
    if not status or not status.get("last_activity"):
        return None
    return datetime.fromisoformat(status["last_activity"])


def stop(client: docker.DockerClient, container_id: str) -> None:
    """Stop and remove a notebook container; nothing happens when it is already gone."""
    try:
        container = client.containers.get(container_id)
        container.stop(timeout=STOP_TIMEOUT)
        container.remove(v=True, force=True)
    except docker.errors.NotFound:
        log.debug("notebook container %s is already gone", container_id)
        return
    log.info("stopped notebook container %s", container.name)


def find_notebooks(client: docker.DockerClient, labels: dict[str, str]) -> list[Container]:
    """Every container, running or not, that carries all of ``labels``."""
    filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
    return client.containers.list(all=True, filters=filters)


def api_status(
    url: str,
    token: str,
    host: str | None = None,
    headers: Mapping[str, str] | None = None,
    *,
    allow_redirects: bool = True,
    session: requests.Session | None = None,
) -> dict | None:
    """Jupyter's ``/api/status`` under base ``url``, asked with ``token`` (as ``host`` when
    given, through a proxy, and with ``headers`` besides) within :data:`HTTP_TIMEOUT`,
    following redirects unless told not to; None unless it answers 200 with a JSON object.
    A caller that asks again and again passes its ``session``: one connection kept open."""
    try:
        response = (session or requests).get(
            f"{url}api/status",
            timeout=HTTP_TIMEOUT,
            allow_redirects=allow_redirects,
            headers={"Authorization": f"token {token}", **({"Host": host} if host else {}), **(headers or {})},
        )
        status = response.json() if response.status_code == 200 else None
    except (requests.RequestException, ValueError):  # not up yet, gone, or not Jupyter
        return None
    return status if isinstance(status, dict) else None


#: the most of an answer :func:`answers_within` reads
PROBE_MAX_BYTES = 64 * 1024


def answers_within(url: str, token: str, seconds: float) -> bool:
    """Whether the Jupyter server at ``url`` (``http://<address>:<port>/``) answers ``/api/status`` with a JSON
    object within ``seconds`` in all, with no redirect: a probe a runner's main loop may make of a server no
    user watches, which may trickle its answer or send a large one. One HTTP/1.0 request on a socket whose every
    read is bounded by the time left (an HTTP client's timeout bounds each read alone)."""
    deadline = time.monotonic() + seconds
    address = urlsplit(url)
    request = (
        f"GET {address.path or '/'}api/status HTTP/1.0\r\nHost: {address.netloc}\r\n"
        f"Authorization: token {token}\r\n\r\n"
    ).encode()
    answer = b""
    try:
        with socket.create_connection((address.hostname, address.port or 80), timeout=seconds) as connection:
            connection.sendall(request)
            while len(answer) <= PROBE_MAX_BYTES:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                connection.settimeout(left)
                chunk = connection.recv(16384)
                if not chunk:
                    break
                answer += chunk
            else:
                return False
        head, _, body = answer.partition(b"\r\n\r\n")
        return head.split(b" ", 2)[1:2] == [b"200"] and isinstance(json.loads(body), dict)
    except (OSError, ValueError):
        return False


def _exited(container: Container, token: str) -> LaunchError:
    return LaunchError(
        f"The notebook stopped (exit code {container.attrs['State']['ExitCode']}) before it "
        "answered: make sure the repository's image can run `jupyter notebook` as a non-root "
        f"user. Its last log lines:\n{_logs(container, token)}"
    )


def _logs(container: Container, token: str) -> str:
    text = container.logs(tail=LOG_LINES).decode(errors="replace").rstrip()
    return text.replace(token, "<token>")
