"""The stand-in's Flask application: the API, OAuth, git-over-HTTP and web-page (new merge
request) blueprints, GitLab's JSON 404 for unknown API routes, the faults a test injects,
and the request log kept in the store."""

from __future__ import annotations

import json
import time

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from gitlab_standin import api, git_http, oauth, web
from gitlab_standin.context import Context
from gitlab_standin.store import RecordedRequest


def create_app(ctx: Context) -> Flask:
    app = Flask(__name__)
    app.extensions["gitlab_standin"] = ctx
    for blueprint in (api.bp, oauth.bp, git_http.bp, web.bp):
        app.register_blueprint(blueprint)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response | HTTPException:
        if not request.path.startswith("/api/"):
            return exc
        response = jsonify({"error": f"{exc.code} {exc.name}"})
        response.status_code = exc.code or 500
        return response

    @app.before_request
    def inject_fault() -> Response | None:
        fault = ctx.store.take_fault(request.method, request.path)
        if fault is None:
            return None
        time.sleep(fault.delay)
        if not fault.status:
            return None
        message = f"{fault.status} {HTTP_STATUS_CODES.get(fault.status, 'Error')}"
        headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
        if request.path.startswith("/api/"):
            return Response(json.dumps({"message": message}), fault.status, headers, mimetype="application/json")
        return Response(f"<html><body><h1>{message}</h1></body></html>\n", fault.status, headers, mimetype="text/html")

    @app.after_request
    def record(response: Response) -> Response:
        user = g.get("user")
        ctx.store.record(
            RecordedRequest(
                request.method,
                request.path,
                request.query_string.decode(),
                response.status_code,
                user.username if user else None,
            )
        )
        return response

    return app
