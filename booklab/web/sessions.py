"""Server-side web sessions: the cookie holds only a random id; what the session holds
(the user, their GitLab OAuth token, the CSRF token) is kept in Redis, encrypted with
``secret_key``, and forgotten ``web/session_lifetime`` seconds after its last use.

The browser therefore never holds the GitLab token, and logging out ends the session on
the server too. The cookie is HttpOnly, SameSite=Lax, host-only (no ``Domain``, ``Path=/``),
and Secure with the name ``__Host-booklab_session`` whenever ``web/url`` is https, so a
notebook host cannot plant one (:mod:`booklab.web.cookies`). A new id is given at login
(:func:`regenerate`).

While Redis does not answer, a request with a session cookie answers 503
(:mod:`booklab.web.outage`) instead of going on as if logged out: the cookie is kept, so the
user finds their session again once Redis is back, with no login loop in between. Static
files and ``/health`` need no session and are served meanwhile.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from cryptography.fernet import Fernet, InvalidToken
from flask import Flask, Request, Response, request, session
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from booklab.derived_keys import WEB_SESSION, derive_key
from booklab.state import schema
from booklab.web.outage import replace_with_unavailable
from booklab.web.pages import context_of

log = logging.getLogger(__name__)

#: blueprints whose views need no session (as the app's static files)
SESSIONLESS = ("health",)


def session_key(sid: str) -> str:
    return schema.websession(hashlib.sha256(sid.encode()).hexdigest())


class ServerSession(CallbackDict, SessionMixin):
    def __init__(self, initial: dict[str, Any] | None = None, sid: str | None = None) -> None:
        def on_update(self: ServerSession) -> None:
            self.modified = True

        super().__init__(initial, on_update)
        self.sid = sid
        self.modified = False
        self.rotate = False
        #: why Redis could not read this session (then it is empty and never saved)
        self.unavailable: redis.RedisError | None = None


class RedisSessionInterface(SessionInterface):
    def __init__(self, client: redis.Redis, secret_key: str, lifetime: int) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(derive_key(secret_key, WEB_SESSION)))
        self.redis = client
        self.lifetime = lifetime

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        sid = request.cookies.get(self.get_cookie_name(app))
        if sid:
            try:
                blob = self.redis.get(session_key(sid))
            except redis.RedisError as e:
                unread = ServerSession(sid=sid)
                unread.unavailable = e
                return unread
            if blob is not None:
                try:
                    return ServerSession(json.loads(self._fernet.decrypt(blob)), sid)
                except (InvalidToken, ValueError):
                    pass  # another secret_key wrote it: start afresh
        return ServerSession()

    def save_session(self, app: Flask, sess: ServerSession, response: Response) -> None:  # type: ignore[override]
        if sess.unavailable is not None:
            return  # never read, so never written: the cookie stays as it is
        try:
            self._save(app, sess, response)
        except redis.RedisError as e:
            log.warning("a web session could not be saved: Redis does not answer (%s)", type(e).__name__)
            if sess.modified:  # a login, logout or new CSRF token that did not happen
                replace_with_unavailable(response)

    def _save(self, app: Flask, sess: ServerSession, response: Response) -> None:
        name, domain, path = self.get_cookie_name(app), self.get_cookie_domain(app), self.get_cookie_path(app)
        if not sess:
            if sess.sid is not None and sess.modified:
                self.redis.delete(session_key(sess.sid))
                response.delete_cookie(name, domain=domain, path=path)
            return
        if sess.rotate and sess.sid is not None:
            self.redis.delete(session_key(sess.sid))
            sess.sid = None
        if sess.sid is None:
            sess.sid = secrets.token_urlsafe(32)
            sess.modified = True
        if sess.modified:
            blob = self._fernet.encrypt(json.dumps(dict(sess)).encode())
            self.redis.set(session_key(sess.sid), blob, ex=self.lifetime)
        else:
            self.redis.expire(session_key(sess.sid), self.lifetime)
        response.set_cookie(
            name,
            sess.sid,
            path=path,
            domain=domain,
            httponly=True,
            samesite="Lax",
            secure=self.get_cookie_secure(app) or request.is_secure,
            expires=datetime.now(UTC) + timedelta(seconds=self.lifetime),
        )


def regenerate() -> None:
    """Give the current session a new id (at login: a planted id learns nothing)."""
    session.rotate = True  # type: ignore[attr-defined]
    session.modified = True


def _session_read() -> None:
    """Before every view: a session Redis could not read ends the request with the outage's
    503 (the error handler of :mod:`booklab.web.outage`)."""
    unread = getattr(session, "unavailable", None)
    if unread is not None and request.endpoint != "static" and request.blueprint not in SESSIONLESS:
        raise unread


def init_app(app: Flask) -> None:
    context = context_of(app)
    app.session_interface = RedisSessionInterface(
        context.redis, context.config.secret_key, context.config.web_session_lifetime
    )
    app.before_request(_session_read)
