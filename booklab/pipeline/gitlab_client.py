"""GitLab's REST API v4 as Booklab uses it, through python-gitlab, always with one user's own
token (an OAuth access token or a personal access token): for the web tier, who the token
belongs to, a page of the user's projects (GitLab's offset pagination, as GitLab answers
it), a project's branches and the check that the user may launch a branch; for the steps
and save back, a project, a branch's commit, the user's commit identity and deploy keys.

GitLab's answers become Booklab's errors in one place (:func:`_translate`), never with a
token in a message. Only documented endpoints: ``/user``, ``/projects?membership=true``,
``/projects/:id``, ``/projects/:id/repository/branches[/:branch]`` and
``/projects/:id/deploy_keys``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import gitlab
import gitlab.exceptions
import gitlab.v4.objects  # noqa: F401 (python-gitlab imports it at its first client: here, before a runner forks)
import requests

from booklab.errors import (
    BranchNotFound,
    DeployKeyRefused,
    GitLabError,
    GitLabRateLimited,
    GitLabUnavailable,
    InsufficientScope,
    NoAccess,
    NotFound,
    TokenRejected,
)
from booklab.state.grants import Pair

log = logging.getLogger(__name__)
T = TypeVar("T")

#: projects per page of the home page (GitLab's own default page size)
PER_PAGE = 20
#: branches shown in the branch picker at the most
MAX_BRANCHES = 1000
#: GitLab's access level that may read a project's code (and so launch it)
REPORTER = 20
#: GitLab's lowest access level of a member
GUEST = 10
#: groups read at the most to know whether a user belongs to an allowed one (GitLab's largest page is 100)
MAX_GROUPS = 1000
PER_PAGE_MAX = 100


@dataclass(frozen=True)
class Project:
    id: int
    path: str
    ssh_url: str
    http_url: str
    default_branch: str | None
    web_url: str = ""


@dataclass(frozen=True)
class GitLabUser:
    username: str
    name: str
    #: an administrator of the GitLab server (GitLab says so to administrators only)
    is_admin: bool = False


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    page: int
    next_page: int | None
    prev_page: int | None
    #: None when GitLab does not count (it stops counting past 10,000 items)
    total_pages: int | None
    total: int | None


#: seconds to wait after a 429 that did not say how long (GitLab sends Retry-After)
RATE_LIMIT_WAIT = 60.0
#: the longest Retry-After taken as it is: a runner does not sit idle for hours on one answer
RATE_LIMIT_MAX_WAIT = 900.0


def _translate(e: Exception, what: str, host: str, retry_after: float | None = None) -> GitLabError:
    """The Booklab error for GitLab's answer ``e`` to a request made ``what`` (``retry_after``:
    its Retry-After header, if any)."""
    if isinstance(e, gitlab.exceptions.GitlabAuthenticationError):
        return TokenRejected(f"GitLab did not accept your token while {what}: log in again.")
    if isinstance(e, gitlab.exceptions.GitlabError):
        code = e.response_code or 0
        if code == 429:
            wait = RATE_LIMIT_WAIT if retry_after is None else retry_after
            return GitLabRateLimited(
                f"GitLab asked Booklab to slow down while {what} (too many requests): "
                f"trying again in {wait:.0f} s or later.",
                wait,
            )
        if code >= 500:
            return GitLabUnavailable(f"GitLab answered {code} while {what}; try again shortly.")
        if code == 404:
            return NotFound(f"GitLab found nothing while {what}.")
        if code == 403:
            scope = _missing_scope(e)
            if scope:
                return InsufficientScope(
                    f"GitLab refused {what}: your token lacks the scope {scope}. Log in again, or use a "
                    "personal access token with the api scope."
                )
            return NoAccess(f"GitLab refused {what}: your role does not allow it.")
        return GitLabError(f"GitLab refused {what} ({code}).")
    return GitLabUnavailable(f"GitLab at {host} did not answer while {what}; try again shortly.")


def _missing_scope(e: gitlab.exceptions.GitlabError) -> str:
    """The scope a 403 ``insufficient_scope`` names ('' for another 403)."""
    try:
        body = json.loads(e.response_body or b"{}")
    except ValueError:
        return ""
    if not isinstance(body, dict) or body.get("error") != "insufficient_scope":
        return ""
    return (str(body.get("scope") or "").split() or ["api"])[0]


def _int_header(response: requests.Response, name: str) -> int | None:
    value = response.headers.get(name, "")
    return int(value) if value.isdigit() else None


def refresh_oauth(host: str, client_id: str, client_secret: str, refresh_token: str, timeout: float) -> Pair:
    """A new token pair for an OAuth login from GitLab's token endpoint (``grant_type=refresh_token``);
    GitLab revokes the old pair. TokenRejected when GitLab no longer accepts the login."""
    what = "refreshing your GitLab login"
    try:
        response = requests.post(
            f"{host.rstrip('/')}/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(client_id, client_secret),
            timeout=timeout,
            allow_redirects=False,  # a refresh token goes to GitLab's token endpoint and nowhere else
        )
    except requests.RequestException as e:
        raise _translate(e, what, host) from e
    if response.status_code == 429:
        wait = _seconds(response.headers.get("Retry-After"))
        raise _translate(gitlab.exceptions.GitlabHttpError(response_code=429), what, host, wait)
    if response.status_code in (400, 401):  # invalid_grant: revoked, used already, or another application's
        raise TokenRejected(f"GitLab no longer accepts your login ({_oauth_error(response)}): log in again.")
    if response.status_code >= 500:
        raise GitLabUnavailable(f"GitLab answered {response.status_code} while {what}; try again shortly.")
    if not response.ok:
        raise GitLabError(f"GitLab refused {what} ({response.status_code}).")
    try:
        token = response.json()
        expires_in = token.get("expires_in")
        return Pair(
            token["access_token"], token["refresh_token"], time.time() + float(expires_in) if expires_in else 0.0
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        raise GitLabError(
            f"GitLab answered {what} with something other than a token ({response.status_code})."
        ) from None


def _oauth_error(response: requests.Response) -> str:
    try:
        return str(response.json().get("error") or response.status_code)
    except ValueError:
        return str(response.status_code)


class _NoWaiting(gitlab.Gitlab):
    """python-gitlab that never sleeps on a 429 in the calling thread (a web worker, a
    runner's step): the 429 becomes GitLabRateLimited and the caller decides when to ask again."""

    def http_request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["obey_rate_limit"] = False
        return super().http_request(*args, **kwargs)


def _seconds(value: str | None) -> float | None:
    """Retry-After's seconds (GitLab sends a number of seconds); None when absent or a date."""
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    if seconds is None or not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), RATE_LIMIT_MAX_WAIT)


class GitLabClient:
    """GitLab as one user sees it; a context manager that closes its HTTP connections.

    ``renew``, for an OAuth login: called with a token GitLab refused (401), it gives the
    login's fresh token (or None); the refused call is then made once more with it."""

    def __init__(
        self, host: str, token: str, timeout: float = 15.0, renew: Callable[[str], str | None] | None = None
    ) -> None:
        self.host = host.rstrip("/")
        self.timeout, self.renew = timeout, renew
        self._retry_after: float | None = None
        self._gl = self._api(token)

    def _api(self, token: str) -> gitlab.Gitlab:
        api = _NoWaiting(
            self.host, oauth_token=token, timeout=self.timeout, retry_transient_errors=False, keep_base_url=True
        )
        api.session.hooks["response"].append(self._remember_retry_after)
        return api

    def _remember_retry_after(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._retry_after = _seconds(response.headers.get("Retry-After")) if response.status_code == 429 else None

    @property
    def token(self) -> str:
        """The token the client acts with now (a renewed one after a 401)."""
        return self._gl.oauth_token

    def __enter__(self) -> GitLabClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client's HTTP connections."""
        self._gl.session.close()

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except gitlab.exceptions.GitlabAuthenticationError as e:
            fresh = self.renew(self.token) if self.renew else None
            if not fresh:
                raise _translate(e, what, self.host) from e
        except (gitlab.exceptions.GitlabError, requests.RequestException) as e:
            raise _translate(e, what, self.host, self._retry_after) from e
        self._gl.session.close()
        self._gl = self._api(fresh)
        try:
            return fn()
        except (gitlab.exceptions.GitlabError, requests.RequestException) as e:
            raise _translate(e, what, self.host, self._retry_after) from e

    def _get(self, path: str, what: str, **params: Any) -> requests.Response:
        return self._call(what, lambda: self._gl.http_request("get", path, query_data=params))

    # -- the user ---------------------------------------------------------------------

    def whoami(self) -> GitLabUser:
        """Who the token belongs to."""
        data = self._get("/user", "reading your account").json()
        return GitLabUser(data["username"], data.get("name") or data["username"], data.get("is_admin") is True)

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
            email = attrs.get("commit_email") or attrs.get("email") or f"{user.id}-{user.username}@users.noreply.{host}"
            return attrs.get("name") or user.username, email

        return self._call("reading the current user", fetch)

    def group_paths(self, limit: int = MAX_GROUPS) -> list[str]:
        """The full paths of the groups the user is a member of (as Guest or more, directly or
        through a parent group), at most ``limit`` of them."""
        found: list[str] = []
        page = 1
        while len(found) < limit:
            response = self._get(
                "/groups", "listing your groups", min_access_level=GUEST, page=page, per_page=PER_PAGE_MAX
            )
            found += [group["full_path"] for group in response.json()]
            page = _int_header(response, "X-Next-Page") or 0
            if not page:
                break
        return found[:limit]

    # -- projects and branches ----------------------------------------------------------

    def projects(self, search: str = "", page: int = 1, per_page: int = PER_PAGE) -> Page:
        """One page of the projects the user is a member of and can clone (Reporter or more, not
        archived), most recently active first; ``search`` matches their namespaces too."""
        params: dict[str, Any] = {
            "membership": "true",
            "archived": "false",
            "min_access_level": REPORTER,
            "simple": "true",
            "order_by": "last_activity_at",
            "sort": "desc",
            "page": page,
            "per_page": per_page,
        }
        if search:
            params["search"] = search
            params["search_namespaces"] = "true"
        response = self._get("/projects", "listing your projects", **params)
        return Page(
            response.json(),
            _int_header(response, "X-Page") or page,
            _int_header(response, "X-Next-Page"),
            _int_header(response, "X-Prev-Page"),
            _int_header(response, "X-Total-Pages"),
            _int_header(response, "X-Total"),
        )

    def project(self, path: str) -> Project:
        try:
            p = self._call(f"looking up project {path}", lambda: self._gl.projects.get(path))
        except NotFound:
            raise NotFound(
                f"Project {path} was not found on GitLab, or your account cannot read it: "
                "check the path and that you are a member."
            ) from None
        return Project(
            p.id,
            p.path_with_namespace,
            p.ssh_url_to_repo,
            p.http_url_to_repo,
            p.default_branch,
            getattr(p, "web_url", ""),
        )

    def branches(self, project: Project, limit: int = MAX_BRANCHES) -> tuple[list[str], bool]:
        """The project's branch names, default branch first, and whether there were more than ``limit``."""
        names: list[str] = []
        page: int | None = 1
        while page and len(names) < limit:
            response = self._get(
                f"/projects/{project.id}/repository/branches",
                f"listing the branches of {project.path}",
                page=page,
                per_page=100,
            )
            names += [b["name"] for b in response.json()]
            page = _int_header(response, "X-Next-Page")
        more = bool(page) or len(names) > limit
        names = names[:limit]
        if project.default_branch in names:
            names.remove(project.default_branch)
            names.insert(0, project.default_branch)
        return names, more

    def branch_commit(self, project: Project | str, branch: str) -> str:
        """The commit SHA the branch points to; ``project``: one looked up, or the path of one (one call instead
        of two; NotFound then says nothing of the project, which may be the one missing)."""
        key, path = (project, project) if isinstance(project, str) else (project.id, project.path)
        try:
            b = self._call(
                f"looking up branch {branch}", lambda: self._gl.projects.get(key, lazy=True).branches.get(branch)
            )
        except NotFound:
            raise NotFound(f"Branch {branch!r} does not exist in {path}: pick one of the project's branches.") from None
        return b.commit["id"]

    def branch_exists(self, project: Project, branch: str) -> bool:
        try:
            self.branch_commit(project, branch)
        except NotFound:
            return False
        return True

    def launchable(self, path: str, ref: str) -> Project:
        """The project, when the token's owner can read ``path`` and its branch ``ref`` exists.

        Raises NotFound (no such project, or not visible to the user), BranchNotFound,
        NoAccess (visible, but the role does not let them read the code), TokenRejected."""
        project = self.project(path)
        try:
            self.branch_commit(project, ref)
        except NoAccess:
            raise NoAccess(
                f"Your role on {project.path} does not let you read its code: "
                "ask a maintainer for Reporter access or more."
            ) from None
        except NotFound as e:
            raise BranchNotFound(str(e)) from None
        return project

    # -- deploy keys --------------------------------------------------------------------

    def add_deploy_key(self, project: Project, title: str, public_key: str, can_push: bool = False) -> int:
        """Add a deploy key, read-only unless ``can_push``; returns its id. Raises
        DeployKeyRefused, saying why, when GitLab refuses it: 403 (the user's role, or deploy
        keys disabled), or 400 for a key type the instance forbids."""

        def create() -> Any:
            keys = self._gl.projects.get(project.id, lazy=True).keys
            return keys.create({"title": title, "key": public_key, "can_push": can_push})

        try:
            key: Any = self._call("adding a deploy key", create)
        except NoAccess as e:
            raise DeployKeyRefused("GitLab refused a deploy key (your role is below Maintainer)") from e
        except GitLabError as e:
            body = getattr(e.__cause__, "response_body", None) or b""
            if b"type is forbidden" in body:
                raise DeployKeyRefused("GitLab refused a deploy key (its type, ed25519, is not allowed there)") from e
            raise
        return key.id

    def delete_deploy_keys_titled(self, project_id: int, title: str) -> int:
        """Remove every deploy key of the project titled ``title``; returns how many."""

        def keys() -> Any:
            return self._gl.projects.get(project_id, lazy=True).keys

        found = self._call("listing deploy keys", lambda: [k for k in keys().list(iterator=True) if k.title == title])
        for key in found:
            try:
                self._call("deleting a deploy key", lambda key_id=key.id: keys().delete(key_id))
            except NotFound:
                log.info("deploy key %s of project %s was already gone", key.id, project_id)
        return len(found)
