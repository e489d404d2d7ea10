"""Which failures are transient, and how long to wait before trying again.

A step that fails because GitLab, git's network or the Docker Engine did not answer is
run again (:mod:`booklab.tasks.pipeline`) after an exponential backoff with jitter and a
cap; a failure of the repository itself (its build fails) ends the deployment at once.
"""

from __future__ import annotations

import random

import docker.errors
import requests
import urllib3

from booklab.errors import BooklabError, DockerUnavailable


def backoff(attempt: int, first: float, cap: float) -> float:
    """Seconds to wait after failed try number ``attempt`` (0 for the first): ``first``
    doubled on each try and capped at ``cap``, of which a random half ("equal jitter"),
    so that runners that failed together do not all come back together."""
    ceiling = min(cap, first * 2**attempt)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def docker_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the Docker Engine did not answer, or failed on its side (5xx)."""
    if isinstance(exc, docker.errors.APIError):
        return exc.is_server_error()
    if isinstance(exc, docker.errors.DockerException) and exc.__cause__ is not None:
        return docker_unavailable(exc.__cause__)  # e.g. no answer while asking its version
    # a stream read raw from the engine (a pull, a build) that breaks off: the engine went away halfway
    return isinstance(exc, (requests.ConnectionError, requests.Timeout, urllib3.exceptions.ProtocolError))


def as_booklab_error(exc: Exception) -> BooklabError | None:
    """``exc`` as one of Booklab's errors, transient ones included; None for a bug."""
    if isinstance(exc, BooklabError):
        return exc
    if docker_unavailable(exc):
        return DockerUnavailable(f"The Docker Engine did not answer ({exc}).")
    return None
