"""Git over smart HTTP for the stand-in, clone/fetch only: ``git http-backend`` run as a
CGI behind ``/<path_with_namespace>.git/info/refs`` and ``.../git-upload-pack``.

Authentication is GitLab's documented form: HTTP basic with user ``oauth2`` and an OAuth
access token (a personal access token is accepted too). No or bad credentials get 401
with ``WWW-Authenticate: Basic``; a user who cannot read the code gets 404.
"""

from __future__ import annotations

import subprocess

from flask import Blueprint, Response, g, request

from gitlab_standin.context import context
from gitlab_standin.repos import git_env
from gitlab_standin.store import REPORTER

bp = Blueprint("git_http", __name__)

NOT_FOUND = "The project you were looking for could not be found or you don't have permission to view it."


@bp.get("/<path:project>.git/info/refs")
def info_refs(project: str) -> Response:
    if request.args.get("service") != "git-upload-pack":
        return Response("Only git-upload-pack (clone, fetch) is served over HTTP.\n", 403, mimetype="text/plain")
    return _serve(project, "info/refs")


@bp.post("/<path:project>.git/git-upload-pack")
def upload_pack(project: str) -> Response:
    return _serve(project, "git-upload-pack")


def _serve(project_path: str, tail: str) -> Response:
    store = context().store
    credentials = request.authorization
    user = None
    if credentials is not None and credentials.type == "basic" and credentials.username == "oauth2":
        user = store.authenticate(bearer=credentials.password)
    if user is None:
        return Response("HTTP Basic: Access denied\n", 401, {"WWW-Authenticate": 'Basic realm="GitLab"'},
                        mimetype="text/plain")
    g.user = user
    project = store.project(project_path)
    if project is None or store.access_level(project, user) < REPORTER:
        return Response(NOT_FOUND + "\n", 404, mimetype="text/plain")
    return _http_backend(f"/{project.path_with_namespace}.git/{tail}", user.username)


def _http_backend(path_info: str, username: str) -> Response:
    """Run ``git http-backend`` for this request and turn its CGI answer into a response."""
    body = request.get_data()
    env = {
        **git_env(), "GIT_PROJECT_ROOT": str(context().repos.root), "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": path_info, "REQUEST_METHOD": request.method,
        "QUERY_STRING": request.query_string.decode(), "CONTENT_TYPE": request.content_type or "",
        "CONTENT_LENGTH": str(len(body)), "REMOTE_USER": username, "REMOTE_ADDR": request.remote_addr or "",
        "HTTP_CONTENT_ENCODING": request.headers.get("Content-Encoding", ""),
        "HTTP_GIT_PROTOCOL": request.headers.get("Git-Protocol", ""),
    }
    done = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, check=False)
    head, _, payload = done.stdout.partition(b"\r\n\r\n")
    response = Response(payload)
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.lower() == "status":
            response.status_code = int(value.split()[0])
        elif name:
            response.headers[name] = value.strip()
    return response
