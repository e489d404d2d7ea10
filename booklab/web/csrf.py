"""CSRF protection: one random token per session, sent back by the forms (hidden field
``csrf_token``) and by the pages' own API calls (header ``X-CSRF-Token``), and checked on
every unsafe request that the session cookie authenticates (a session with a logged-in user).

Requests authenticated by a GitLab token in a header (the CLI, scripts) carry no ambient
credentials, so they need no CSRF token; :mod:`booklab.web.auth` then ignores the cookie.
That holds only for the views that authenticate by :func:`booklab.web.auth.api_user`
(``TOKEN_BLUEPRINTS``); the pages' forms always use the session, so a token header does not
excuse them from the check.
"""

from __future__ import annotations

import secrets

from flask import Flask, abort, request, session

FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: blueprints whose views take a token header instead of the session (never both)
TOKEN_BLUEPRINTS = frozenset({"api", "admin_api"})
REFUSED = (
    "This request did not come from a Booklab page (its CSRF token is missing or stale): reload the page and try again."
)


def token() -> str:
    """This session's CSRF token (made on first use)."""
    if FIELD not in session:
        session[FIELD] = secrets.token_urlsafe(32)
    return session[FIELD]


def token_authenticated() -> bool:
    """The request names its user by a token header, not by the session cookie."""
    return "Authorization" in request.headers or "PRIVATE-TOKEN" in request.headers


def _check() -> None:
    if request.method in SAFE_METHODS or "user" not in session:
        return  # nothing to forge: no session user (the view then asks to log in)
    if token_authenticated() and request.blueprint in TOKEN_BLUEPRINTS:
        return  # the view uses the token, not the cookie
    sent = request.headers.get(HEADER) or request.form.get(FIELD) or ""
    expected = session.get(FIELD) or ""
    if not expected or not secrets.compare_digest(sent.encode(), expected.encode()):
        abort(400, REFUSED)


def init_app(app: Flask) -> None:
    app.before_request(_check)
    app.jinja_env.globals["csrf_token"] = token
