"""GitLab as the web tier asks it, always with the user's own token: who the token
belongs to, one page of the user's projects (GitLab's offset pagination, as GitLab
answers it), a project's branches, and the check that a user may launch a project's
branch, made before anything is created or queued.

Only documented REST API v4 endpoints: ``/user``, ``/projects?membership=true``,
``/projects/:id`` and ``/projects/:id/repository/branches``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import gitlab
import gitlab.exceptions
import requests

from booklab.context import Context
from booklab.errors import BranchNotFound, GitLabError, GitLabUnavailable, NoAccess, NotFound, TokenRejected
from booklab.pipeline.gitlab_client import GitLabClient, Project

#: projects per page of the home page (GitLab's own default page size)
PER_PAGE = 20
#: branches shown in the branch picker at the most
MAX_BRANCHES = 1000


@dataclass(frozen=True)
class GitLabUser:
    username: str
    name: str


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    page: int
    next_page: int | None
    prev_page: int | None
    #: None when GitLab does not count (it stops counting past 10,000 items)
    total_pages: int | None
    total: int | None


def _translate(e: Exception, what: str, host: str) -> GitLabError:
    if isinstance(e, gitlab.exceptions.GitlabAuthenticationError):
        return TokenRejected(f"GitLab did not accept your token while {what}: log in again.")
    if isinstance(e, gitlab.exceptions.GitlabError):
        code = e.response_code or 0
        if code >= 500:
            return GitLabUnavailable(f"GitLab answered {code} while {what}; try again shortly.")
        if code == 404:
            return NotFound(f"GitLab found nothing while {what}.")
        if code == 403:
            return NoAccess(f"GitLab refused {what}: your role does not allow it.")
        return GitLabError(f"GitLab refused {what} ({code}).")
    return GitLabUnavailable(f"GitLab at {host} did not answer while {what}; try again shortly.")


def is_token_rejected(e: BaseException) -> bool:
    """True for an error that means GitLab refused the token itself (HTTP 401)."""
    return isinstance(e, TokenRejected) or isinstance(e.__cause__, gitlab.exceptions.GitlabAuthenticationError)


@contextmanager
def _api(ctx: Context, token: str) -> Iterator[gitlab.Gitlab]:
    with gitlab.Gitlab(ctx.config.gitlab_host.rstrip("/"), oauth_token=token,
                       timeout=ctx.config.gitlab_timeout, retry_transient_errors=False) as gl:
        yield gl


def _get(gl: gitlab.Gitlab, path: str, what: str, **params: Any) -> requests.Response:
    try:
        return gl.http_request("get", path, query_data=params)
    except (gitlab.exceptions.GitlabError, requests.RequestException) as e:
        raise _translate(e, what, gl.url) from e


@contextmanager
def client(ctx: Context, token: str) -> Iterator[GitLabClient]:
    """Booklab's GitLab client for ``token``, its HTTP session closed afterwards."""
    gl = ctx.gitlab(token)
    try:
        yield gl
    finally:
        gl.close()


def whoami(ctx: Context, token: str) -> GitLabUser:
    with _api(ctx, token) as gl:
        data = _get(gl, "/user", "reading your account").json()
    return GitLabUser(data["username"], data.get("name") or data["username"])


def _int_header(response: requests.Response, name: str) -> int | None:
    value = response.headers.get(name, "")
    return int(value) if value.isdigit() else None


def projects(ctx: Context, token: str, search: str = "", page: int = 1, per_page: int = PER_PAGE) -> Page:
    """One page of the projects the user is a member of, most recently active first."""
    params: dict[str, Any] = {"membership": "true", "simple": "true", "order_by": "last_activity_at",
                              "sort": "desc", "page": page, "per_page": per_page}
    if search:
        params["search"] = search
    with _api(ctx, token) as gl:
        response = _get(gl, "/projects", "listing your projects", **params)
    return Page(response.json(), _int_header(response, "X-Page") or page,
                _int_header(response, "X-Next-Page"), _int_header(response, "X-Prev-Page"),
                _int_header(response, "X-Total-Pages"), _int_header(response, "X-Total"))


def branches(ctx: Context, token: str, project: Project, limit: int = MAX_BRANCHES) -> tuple[list[str], bool]:
    """The project's branch names, default branch first, and whether there were more than ``limit``."""
    names: list[str] = []
    page: int | None = 1
    with _api(ctx, token) as gl:
        while page and len(names) < limit:
            response = _get(gl, f"/projects/{project.id}/repository/branches",
                            f"listing the branches of {project.path}", page=page, per_page=100)
            names += [b["name"] for b in response.json()]
            page = _int_header(response, "X-Next-Page")
    more = bool(page) or len(names) > limit
    names = names[:limit]
    if project.default_branch in names:
        names.remove(project.default_branch)
        names.insert(0, project.default_branch)
    return names, more


def launchable(ctx: Context, token: str, path: str, ref: str) -> Project:
    """The project, when the token's owner can read ``path`` and its branch ``ref`` exists.

    Raises NotFound (no such project, or not visible to the user), BranchNotFound,
    NoAccess (visible, but the role does not let them read the code), TokenRejected."""
    with client(ctx, token) as gl:
        project = _call(lambda: gl.project(path))
        try:
            _call(lambda: gl.branch_commit(project, ref))
        except NoAccess:
            raise NoAccess(f"Your role on {project.path} does not let you read its code: "
                           "ask a maintainer for Reporter access or more.") from None
        except NotFound as e:
            raise BranchNotFound(str(e)) from None
    return project


def project(ctx: Context, token: str, path: str) -> Project:
    with client(ctx, token) as gl:
        return _call(lambda: gl.project(path))


def _call(fn: Any) -> Any:
    """Run a GitLabClient call; its refusals of the token or of the role get their own class."""
    try:
        return fn()
    except GitLabError as e:
        if is_token_rejected(e):
            raise TokenRejected("GitLab did not accept your token: log in again.") from e
        if getattr(e.__cause__, "response_code", None) == 403 and not isinstance(e, NotFound):
            raise NoAccess(str(e)) from e
        raise
