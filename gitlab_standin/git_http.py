"""Git over smart HTTP for the stand-in: ``git http-backend`` run as a CGI, as the
repositories' owner, behind ``/<path_with_namespace>.git/info/refs``,
``.../git-upload-pack`` (clone, fetch) and ``.../git-receive-pack`` (push).

Authentication is GitLab's documented form: HTTP basic with user ``oauth2`` and an OAuth
access token (a personal access token is accepted too). No or bad credentials get 401
with ``WWW-Authenticate: Basic``; an OAuth token whose scopes do not cover the service
gets 403 (``SCOPES``); a user who cannot read the code gets 404. Pushing needs
Developer: a push below that, or to an archived project, gets 403 with GitLab's message
before anything is written. Which branches a push may update the repository's pre-receive
hook decides (``hooks``): protected ones need Maintainer, which it learns from the
environment of ``git http-backend``.
"""

from __future__ import annotations

from flask import Blueprint, Response, g, request

from gitlab_standin.context import context
from gitlab_standin.hooks import MAY_PUSH_PROTECTED
from gitlab_standin.repos import git_env
from gitlab_standin.store import DEVELOPER, MAINTAINER, REPORTER, Project

bp = Blueprint("git_http", __name__)

SERVICES = ("git-upload-pack", "git-receive-pack")
NOT_FOUND = "The project you were looking for could not be found or you don't have permission to view it."
NO_PUSH = "You are not allowed to push code to this project."
ARCHIVED = "You can't push code to an archived project."
#: per service, the scopes of which an OAuth token needs one, and GitLab's 403 without: the
#: scopes that give the download_code or push_code ability (``Gitlab::Auth.abilities_for_scopes``;
#: ``read_api`` gives download_code)
SCOPES = {
    "git-upload-pack": (
        {"api", "read_api", "read_repository", "write_repository"},
        "You are not allowed to download code.",
    ),
    "git-receive-pack": ({"api", "write_repository"}, "You are not allowed to upload code."),
}


@bp.get("/<path:project>.git/info/refs")
def info_refs(project: str) -> Response:
    service = request.args.get("service")
    if service not in SERVICES:
        return _text("Only git-upload-pack (clone, fetch) and git-receive-pack (push) are served over HTTP.", 403)
    return _serve(project, "info/refs", service)


@bp.post("/<path:project>.git/git-upload-pack")
def upload_pack(project: str) -> Response:
    return _serve(project, "git-upload-pack", "git-upload-pack")


@bp.post("/<path:project>.git/git-receive-pack")
def receive_pack(project: str) -> Response:
    return _serve(project, "git-receive-pack", "git-receive-pack")


def _text(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(message + "\n", status, headers, mimetype="text/plain")


def _serve(project_path: str, tail: str, service: str) -> Response:
    store = context().store
    token = _basic_password()
    user = store.authenticate(bearer=token)
    if user is None:
        return _text("HTTP Basic: Access denied", 401, {"WWW-Authenticate": 'Basic realm="GitLab"'})
    g.user = user
    scopes, (needed, refusal) = store.scopes(token), SCOPES[service]
    if scopes is not None and not scopes & needed:  # as GitLab, before it looks for the project
        return _text(refusal, 403)
    project = store.project(project_path)
    level = store.access_level(project, user) if project is not None else 0
    if level < REPORTER:
        return _text(NOT_FOUND, 404)
    refusal = _push_refusal(project, level) if service == "git-receive-pack" else None
    if refusal is not None:
        return _text(refusal, 403)
    return _http_backend(f"/{project.path_with_namespace}.git/{tail}", user.username, level >= MAINTAINER)


def _basic_password() -> str | None:
    """The password of HTTP basic user ``oauth2``: a token."""
    credentials = request.authorization
    if credentials is None or credentials.type != "basic" or credentials.username != "oauth2":
        return None
    return credentials.password


def _push_refusal(project: Project, level: int) -> str | None:
    """Why GitLab would refuse any push from a member at ``level``; None when the hook is
    left to judge the ref updates. An archived project refuses whatever the role, as GitLab
    checks it first."""
    if project.archived:
        return ARCHIVED
    if level < DEVELOPER:
        return NO_PUSH
    return None


def _http_backend(path_info: str, username: str, may_push_protected: bool) -> Response:
    """Run ``git http-backend`` for this request and turn its CGI answer into a response;
    the pre-receive hook of a push inherits its environment."""
    body = request.get_data()
    repos = context().repos
    env = {
        **git_env(),
        "GIT_PROJECT_ROOT": str(repos.root),
        "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": path_info,
        "REQUEST_METHOD": request.method,
        "QUERY_STRING": request.query_string.decode(),
        "CONTENT_TYPE": request.content_type or "",
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_USER": username,
        "REMOTE_ADDR": request.remote_addr or "",
        "HTTP_CONTENT_ENCODING": request.headers.get("Content-Encoding", ""),
        "HTTP_GIT_PROTOCOL": request.headers.get("Git-Protocol", ""),
        MAY_PUSH_PROTECTED: "1" if may_push_protected else "",
    }
    done = repos.run_as_owner(["git", "http-backend"], body, env)
    head, _, payload = done.stdout.partition(b"\r\n\r\n")
    response = Response(payload)
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.lower() == "status":
            response.status_code = int(value.split()[0])
        elif name:
            response.headers[name] = value.strip()
    return response
