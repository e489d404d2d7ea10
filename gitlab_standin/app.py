"""The stand-in's Flask application: the API, OAuth and git-over-HTTP blueprints, GitLab's
JSON 404 for unknown API routes, and the request log kept in the store."""

from __future__ import annotations

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from gitlab_standin import api, git_http, oauth
from gitlab_standin.context import Context
from gitlab_standin.store import RecordedRequest


def create_app(ctx: Context) -> Flask:
    app = Flask(__name__)
    app.extensions["gitlab_standin"] = ctx
    for blueprint in (api.bp, oauth.bp, git_http.bp):
        app.register_blueprint(blueprint)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response | HTTPException:
        if not request.path.startswith("/api/"):
            return exc
        response = jsonify({"error": f"{exc.code} {exc.name}"})
        response.status_code = exc.code or 500
        return response

    @app.after_request
    def record(response: Response) -> Response:
        user = g.get("user")
        ctx.store.record(RecordedRequest(request.method, request.path, request.query_string.decode(),
                                         response.status_code, user.username if user else None))
        return response

    return app
