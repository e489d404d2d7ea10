"""What the stand-in's request handlers share: the store, the repositories, the SSH base URL."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, request

from gitlab_standin.repos import Repositories
from gitlab_standin.store import Store


@dataclass(frozen=True)
class Context:
    store: Store
    repos: Repositories
    ssh_base: str
    """``ssh://git@127.0.0.1:<port>``: GitLab's ``ssh_url_to_repo`` form for a non-standard port."""


def context() -> Context:
    return current_app.extensions["gitlab_standin"]


def base_url() -> str:
    """The public HTTP base URL, as the client reached us (python-gitlab warns on a mismatch)."""
    return request.host_url.rstrip("/")
