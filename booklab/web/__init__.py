"""Booklab's web tier: the Flask app factory.

:func:`create_app` builds the app from Booklab's configuration (or from a ready
:class:`~booklab.context.Context`) and registers one blueprint per concern: ``auth``
(GitLab login), ``projects`` (home page, branch picker, Launch), ``deploy`` (deploy page,
BinderHub launch links and event stream, badge), ``api`` (JSON for scripts and the CLI),
``admin`` (the operator's page and API) and ``notebook_auth`` (Traefik's forward-auth: only a
notebook's owner reaches it).
"""

from __future__ import annotations

import logging
import math
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from werkzeug.exceptions import HTTPException

from booklab import config as config_module
from booklab.config import Config
from booklab.context import Context, set_context
from booklab.dispatch.app import configure
from booklab.errors import (
    ConfigError,
    GitLabError,
    GitLabUnavailable,
    LimitReached,
    NoAccess,
    NotAllowed,
    NotFound,
    SlugTaken,
    TokenRejected,
    UnknownProfile,
)
from booklab.web import (
    admin,
    api,
    auth,
    cookies,
    csrf,
    deploy,
    health,
    notebook_auth,
    outage,
    projects,
    security,
    sessions,
)
from booklab.web.pages import error_page

log = logging.getLogger(__name__)

#: libraries that log OAuth client secrets or tokens at DEBUG level
_CHATTY_LOGGERS = ("flask_dance", "requests_oauthlib", "oauthlib")


def create_app(config: Config | None = None, context: Context | None = None) -> Flask:
    """The web app for ``context`` (else a new context for ``config``, else for the
    configuration file and environment). Stops with one sentence on a missing setting."""
    if context is None:
        context = Context(config or config_module.load())
        set_context(context)
    config = context.config
    config.require("secret_key", "gitlab_consumer_key", "gitlab_consumer_secret")
    # each open event stream holds a thread, and may hold a Redis connection while it
    # reads its backlog; redis-py's pool allows 100 by default
    pool = context.redis.connection_pool
    pool.max_connections = max(pool.max_connections or 0, config.web_connections + 64)
    context.events.share_subscription()  # one Redis subscription for all of them
    configure(config)
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)

    app = Flask(__name__)
    secure = config.web_url.startswith("https://")
    app.config.update(
        SECRET_KEY=config.secret_key,
        SESSION_COOKIE_NAME=cookies.name(cookies.SESSION, secure),
        SESSION_COOKIE_DOMAIN=None,  # host-only: see booklab.web.cookies
        SESSION_COOKIE_PATH="/",  # what a __Host- cookie needs, with no Domain
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        PREFERRED_URL_SCHEME=urlsplit(config.web_url).scheme or "http",
        BOOKLAB_KEEPALIVE=25.0,
    )
    app.extensions["booklab"] = context
    if config.web_url:
        app.wsgi_app = PublicURL(app.wsgi_app, config.web_url)  # type: ignore[method-assign]
    sessions.init_app(app)
    csrf.init_app(app)
    auth.init_app(app)
    projects.init_app(app)
    deploy.init_app(app)
    api.init_app(app)
    admin.init_app(app)
    notebook_auth.init_app(app)
    health.init_app(app)
    _error_pages(app)
    outage.init_app(app)
    security.init_app(app)
    return app


class PublicURL:
    """WSGI middleware: every request is seen as arriving at ``web/url`` (scheme, host and
    path prefix), so OAuth callbacks and launch links name the public address even behind
    a proxy."""

    def __init__(self, wsgi_app: Any, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.app = wsgi_app
        self.scheme, self.host, self.prefix = parts.scheme, parts.netloc, parts.path.rstrip("/")

    def __call__(self, environ: dict, start_response: Any) -> Any:
        environ["wsgi.url_scheme"] = self.scheme
        environ["HTTP_HOST"] = self.host
        if self.prefix:
            environ["SCRIPT_NAME"] = self.prefix
            path = environ.get("PATH_INFO", "")
            if path.startswith(self.prefix + "/") or path == self.prefix:
                environ["PATH_INFO"] = path[len(self.prefix) :]
        return self.app(environ, start_response)


def _error_pages(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        if exc.code is None or exc.code < 400:
            return exc
        body, status = error_page(exc.code, exc.name, exc.description or exc.name)
        response = app.make_response((body, status))
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(GitLabError)
    def gitlab_error(exc: GitLabError) -> Any:
        if isinstance(exc, TokenRejected):
            return auth.log_in_again("GitLab no longer accepts your login: log in again.")
        if isinstance(exc, NotFound):
            return error_page(404, "Not found", str(exc))
        if isinstance(exc, NoAccess):
            return error_page(403, "No access", str(exc))
        if isinstance(exc, GitLabUnavailable):
            response = app.make_response(error_page(503, "GitLab is not answering", str(exc)))
            if exc.retry_after:  # GitLab asked to slow down: so does the web tier's client
                response.headers["Retry-After"] = str(math.ceil(exc.retry_after))
            return response
        return error_page(502, "GitLab refused", str(exc))

    @app.errorhandler(SlugTaken)
    def slug_taken(exc: SlugTaken) -> Any:
        log.warning("%s", exc)  # only someone holding secret_key can make two slugs collide
        return error_page(409, "Notebook address taken", str(exc))

    @app.errorhandler(NotAllowed)
    def not_allowed(exc: NotAllowed) -> Any:
        return error_page(403, "Not allowed here", str(exc))

    @app.errorhandler(UnknownProfile)
    def unknown_profile(exc: UnknownProfile) -> Any:
        return error_page(400, "No such profile", str(exc))

    @app.errorhandler(LimitReached)
    def limit_reached(exc: LimitReached) -> Any:
        return error_page(429, "Limit reached", str(exc))

    @app.errorhandler(ConfigError)
    def misconfigured(exc: ConfigError) -> Any:
        log.error("%s", exc)
        return error_page(500, "Booklab is misconfigured", str(exc))
