"""The few GitLab REST API v4 calls Booklab makes, through python-gitlab, with GitLab's
errors turned into Booklab's (and never a token in a message)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import gitlab
import gitlab.exceptions
import requests

from booklab.errors import DeployKeyRefused, GitLabError, GitLabUnavailable, NotFound

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Project:
    id: int
    path: str
    ssh_url: str
    http_url: str
    default_branch: str | None
    web_url: str = ""


class GitLabClient:
    """GitLab as one user sees it (their OAuth token or personal access token)."""

    def __init__(self, host: str, token: str, timeout: float = 15.0) -> None:
        self.host = host.rstrip("/")
        self._gl = gitlab.Gitlab(self.host, oauth_token=token, timeout=timeout, retry_transient_errors=False)

    def close(self) -> None:
        """Close the client's HTTP connections."""
        self._gl.session.close()

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except gitlab.exceptions.GitlabAuthenticationError as e:
            raise GitLabError(f"GitLab did not accept the token while {what}: log in again.") from e
        except gitlab.exceptions.GitlabError as e:
            if e.response_code and e.response_code >= 500:
                raise GitLabUnavailable(f"GitLab answered {e.response_code} while {what}; try again shortly.") from e
            if e.response_code == 404:
                raise NotFound(f"GitLab found nothing while {what}.") from e
            raise GitLabError(f"GitLab refused {what} ({e.response_code}).") from e
        except (requests.ConnectionError, requests.Timeout) as e:
            raise GitLabUnavailable(f"GitLab at {self.host} did not answer while {what}; try again shortly.") from e

    def username(self) -> str:
        """The username the token belongs to."""
        def fetch() -> str:
            self._gl.auth()
            return self._gl.user.username
        return self._call("reading the current user", fetch)

    def identity(self) -> tuple[str, str]:
        """(name, e-mail) the token's user commits as: GitLab's commit e-mail, else their
        e-mail, else GitLab's no-reply address for them."""
        def fetch() -> tuple[str, str]:
            self._gl.auth()
            user = self._gl.user
            attrs = user.attributes
            host = self.host.split("://", 1)[-1].split("/", 1)[0]
            email = (attrs.get("commit_email") or attrs.get("email")
                     or f"{user.id}-{user.username}@users.noreply.{host}")
            return attrs.get("name") or user.username, email
        return self._call("reading the current user", fetch)

    def branch_exists(self, project: Project, branch: str) -> bool:
        try:
            self.branch_commit(project, branch)
        except NotFound:
            return False
        return True

    def project(self, path: str) -> Project:
        try:
            p = self._call(f"looking up project {path}", lambda: self._gl.projects.get(path))
        except NotFound:
            raise NotFound(
                f"Project {path} was not found on GitLab, or your account cannot read it: "
                "check the path and that you are a member."
            ) from None
        return Project(p.id, p.path_with_namespace, p.ssh_url_to_repo, p.http_url_to_repo, p.default_branch,
                       getattr(p, "web_url", ""))

    def branch_commit(self, project: Project, branch: str) -> str:
        """The commit SHA the branch points to."""
        try:
            b = self._call(f"looking up branch {branch}",
                           lambda: self._gl.projects.get(project.id, lazy=True).branches.get(branch))
        except NotFound:
            raise NotFound(
                f"Branch {branch!r} does not exist in {project.path}: pick one of the project's branches."
            ) from None
        return b.commit["id"]

    def add_deploy_key(self, project: Project, title: str, public_key: str, can_push: bool = False) -> int:
        """Add a deploy key, read-only unless ``can_push``; returns its id. Raises
        DeployKeyRefused on 403."""
        proj = self._gl.projects.get(project.id, lazy=True)
        try:
            key: Any = self._call("adding a deploy key",
                                  lambda: proj.keys.create({"title": title, "key": public_key, "can_push": can_push}))
        except GitLabError as e:
            if getattr(e.__cause__, "response_code", None) == 403:
                raise DeployKeyRefused(f"GitLab refused a deploy key on {project.path}.") from e
            raise
        return key.id

    def delete_deploy_keys_titled(self, project_id: int, title: str) -> int:
        """Remove every deploy key of the project titled ``title``; returns how many."""
        proj = self._gl.projects.get(project_id, lazy=True)
        keys = self._call("listing deploy keys", lambda: [k for k in proj.keys.list(iterator=True) if k.title == title])
        for key in keys:
            try:
                self._call("deleting a deploy key", lambda key_id=key.id: proj.keys.delete(key_id))
            except NotFound:
                log.info("deploy key %s of project %s was already gone", key.id, project_id)
        return len(keys)
