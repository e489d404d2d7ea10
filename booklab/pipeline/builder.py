"""The build step: name a commit's image and build a checkout into it with repo2docker.

repo2docker runs as a subprocess (:mod:`booklab.pipeline.r2d_process`: from an empty working
directory, with a trimmed environment) with Booklab's ``booklab`` engine (Docker Engine API, no
buildx). Its output is yielded line by line while it builds.

On the runner, repo2docker only reads the repository's files (``Dockerfile``, ``apt.txt``,
``runtime.txt``, ``environment.yml``, ``Pipfile``, ``.dockerignore``, ...) and packs them
into the build context as they are, links as links; it runs none of them: ``setup.py``,
``postBuild``, ``install.R`` and ``start`` run in the build container. A symbolic link is
thus the only way a repository could have the runner read its host, and
:mod:`booklab.pipeline.checkout_guard` refuses those that lead outside the checkout before the build.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import re
import threading
import time
from typing import Iterator

import docker

from booklab.errors import BuildError, ConfigError
from booklab.pipeline import r2d_engine
from booklab.pipeline.r2d_process import Repo2docker

log = logging.getLogger(__name__)

SLUG_MAX = 60
TAIL_LINES = 20
NB_UID = 1000
NB_USER = "jovyan"
# Docker's reference grammar, lowercase: [registry[:port]/]component[/component...]
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PREFIX = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*")


def image_name(prefix: str, project_path: str, commit_sha: str) -> str:
    """``<prefix>/<slug>-<hash>:<sha>``: a valid Docker reference for any GitLab path,
    where the hash of the exact path keeps two paths with the same slug apart."""
    if not _PREFIX.fullmatch(prefix):
        raise ConfigError(
            "Setting build/image_prefix must be a lowercase Docker repository such as "
            f"booklab or registry.example.com/booklab, not {prefix!r}."
        )
    if not re.fullmatch(r"[0-9a-fA-F]{7,64}", commit_sha):
        raise ValueError(f"{commit_sha!r} is not a git commit SHA")
    slug = re.sub(r"[^a-z0-9]+", "-", project_path.lower()).strip("-")[:SLUG_MAX].rstrip("-")
    digest = hashlib.sha256(project_path.encode()).hexdigest()[:12]
    return f"{prefix}/{'-'.join(filter(None, (slug, digest)))}:{commit_sha.lower()}"


def commit_image(prefix: str, name: str) -> str | None:
    """The commit's image ``name`` stands for when Booklab named it under ``prefix`` (an
    :func:`image_name` or a :func:`rebuild_name` of one), else None: the base image, the
    runner's, anyone else's."""
    commit_image = rf"{re.escape(prefix)}/(?:[a-z0-9-]+-)?[0-9a-f]{{12}}:[0-9a-f]{{7,64}}"
    match = re.fullmatch(rf"({commit_image})(?:-rebuild-[0-9]+)?", name)
    return match[1] if match else None


def image_exists(client: docker.DockerClient, image: str) -> bool:
    """Whether the Docker Engine already holds ``image``."""
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def rebuild_name(image: str, run: int) -> str:
    """The name a rebuild of ``image`` is built under (repo2docker reuses an image of its name)."""
    return f"{image}-rebuild-{run}"


def replace(client: docker.DockerClient, built: str, image: str) -> None:
    """Name the image ``built`` ``image`` instead (the image it replaces keeps running
    notebooks, and goes with the image cleaner)."""
    repository, tag = image.rsplit(":", 1)
    client.images.get(built).tag(repository, tag)
    client.images.remove(built, noprune=True)


def build_image(
    checkout_dir: str | os.PathLike,
    image: str,
    *,
    timeout: float,
    memory_limit: str = "",
    labels: dict[str, str] | None = None,
    no_cache: bool = False,
    process: Repo2docker | None = None,
) -> Iterator[str]:
    """Build ``checkout_dir`` into ``image`` with repo2docker, yielding each output line;
    ``no_cache``: every layer again, none reused from earlier builds; ``process``: the repo2docker
    process to build with (:func:`booklab.pipeline.r2d_process.take_ahead`), else one started now.

    Raises :class:`BuildError` when the build fails or takes longer than ``timeout`` s.
    """
    process = process or Repo2docker()
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    expired = threading.Event()
    timer = threading.Timer(timeout, lambda: (expired.set(), process.kill()))
    started = time.monotonic()
    log.info("building %s from %s", image, checkout_dir)
    try:
        output = process.begin(_repo2docker_args(checkout_dir, image, memory_limit, labels or {}, no_cache))
        timer.start()
        with output:
            for line in output:
                tail.append(line.rstrip("\r\n"))
                yield tail[-1]
        returncode = process.process.wait()
    finally:
        timer.cancel()
        process.close()  # also when the caller stopped reading: the build stops too
    if returncode == 0:
        log.info("built %s in %.1f s", image, time.monotonic() - started)
        return
    last = "\n".join(tail)
    if expired.is_set():
        raise BuildError(
            f"The build took longer than {timeout:g} s and was stopped: raise build/timeout "
            f"or make the build lighter (fewer or smaller dependencies). Its last lines:\n{last}"
        )
    raise BuildError(
        "The image could not be built: fix the repository's Dockerfile or environment "
        f"files (repo2docker exited with {returncode}). Its last lines:\n{last}"
    )


def _repo2docker_args(
    checkout_dir: str | os.PathLike, image: str, memory_limit: str, labels: dict[str, str], no_cache: bool = False
) -> list[str]:
    argv = [
        "--engine=booklab",
        "--no-run",
        f"--image-name={image}",
        f"--user-id={NB_UID}",
        f"--user-name={NB_USER}",
    ]
    if memory_limit:
        argv.append(f"--EngineAPIEngine.build_memory_limit={_bytes(memory_limit)}")
    if no_cache:
        argv.append("--EngineAPIEngine.no_cache=True")
    if labels:  # the engine sets them, quoted: never repo2docker's --label
        argv.append(r2d_engine.final_labels_option(labels))
    # an absolute path after "--" can never be read as an option
    return argv + ["--", os.path.abspath(checkout_dir)]


def _bytes(memory_limit: str) -> int:
    try:
        return docker.utils.parse_bytes(memory_limit)
    except docker.errors.DockerException:
        raise ConfigError(f"Setting build/memory must be a size such as 4g or 512m, not {memory_limit!r}.") from None
