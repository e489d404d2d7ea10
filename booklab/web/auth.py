"""Who the user is: GitLab OAuth login (flask-dance), logout, and the user of a request,
from the session (pages) or from a GitLab personal access token (API and CLI).

Login goes to the configured GitLab (``gitlab/host``, self-hosted or gitlab.com, http or
https), so the blueprint is built with ``OAuth2ConsumerBlueprint`` rather than
``make_gitlab_blueprint``, which assumes https. Booklab asks for one scope:

``api``
    Booklab adds a read-only deploy key to the project for the clone and deletes it right
    after (``POST``/``DELETE /projects/:id/deploy_keys``); GitLab allows that only with
    ``api``. The same scope covers reading the user, their projects and branches
    (``read_user`` and ``read_api`` would be enough for those alone), and adding a deploy
    key with write access to push a notebook's saved changes. When GitLab refuses a deploy
    key (users below Maintainer), Booklab clones and pushes over HTTPS with the user's own
    token: ``api`` covers git over HTTP too.

An expired token is refreshed with its refresh token; a refused or revoked one sends
the user to log in again (pages) or gets 401 JSON (API).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    g,
    redirect,
    request,
    session,
    url_for,
)
from flask_dance.consumer import OAuth2ConsumerBlueprint, oauth_authorized, oauth_error
from oauthlib.oauth2 import InsecureTransportError, OAuth2Error
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Unauthorized

from booklab import allowed
from booklab.errors import GitLabError, NotAllowed, TokenRejected
from booklab.pipeline import gitlab_tokens
from booklab.pipeline.gitlab_client import GitLabUser
from booklab.web import logins, rate_limit, sessions
from booklab.web.pages import context, context_of, error_page, wants_json

log = logging.getLogger(__name__)

SCOPES = ["api"]

bp = Blueprint("auth", __name__)


@dataclass(frozen=True)
class WebUser:
    username: str
    name: str
    #: the user's GitLab token (OAuth access token, or the personal access token they sent)
    token: str
    #: the GitLab login the token comes from (pages), '' for a personal access token
    grant: str = ""

    def __repr__(self) -> str:  # never show the token
        return f"WebUser(username={self.username!r})"


class GitLabLogin(OAuth2ConsumerBlueprint):
    """flask-dance's OAuth2 blueprint with one requests session per request.

    flask-dance caches its session on the blueprint, which every thread shares, so under
    a threaded server one user's token can reach another user's request (flask-dance
    issue #430). Here it lives in ``flask.g`` and is closed at the end of the request."""

    @property  # type: ignore[override]
    def session(self) -> Any:
        made = g.get("_gitlab_oauth_session")
        if made is None:
            made = OAuth2ConsumerBlueprint.session.fget(self)  # type: ignore[attr-defined]
            g._gitlab_oauth_session = made
        return made

    def teardown_session(self, exception: BaseException | None = None) -> None:
        made = g.pop("_gitlab_oauth_session", None)
        if made is not None:
            made.close()


def _login_blueprint(app: Flask) -> GitLabLogin:
    config = context_of(app).config
    host = config.gitlab_host.rstrip("/")
    login = GitLabLogin(
        "gitlab",
        __name__,
        client_id=config.gitlab_consumer_key,
        client_secret=config.gitlab_consumer_secret,
        scope=SCOPES,
        base_url=f"{host}/api/v4/",
        authorization_url=f"{host}/oauth/authorize",
        token_url=f"{host}/oauth/token",
        redirect_to="projects.home",
        url_prefix="/login",
        storage=logins.GrantStorage(),
    )
    oauth_authorized.connect(_logged_in, sender=login, weak=False)
    oauth_error.connect(_login_failed, sender=login, weak=False)
    return login


def _whoami(token: str, check: bool = False) -> GitLabUser:
    """Who the token belongs to; with ``check``, NotAllowed unless they may use Booklab."""
    with context().gitlab(token) as gl:
        user = gl.whoami()
        if check:
            allowed.check_user(context().config, gl)
        return user


def _logged_in(blueprint: GitLabLogin, token: dict | None) -> Any:
    """After GitLab's redirect: learn who the user is, start a fresh session, go on."""
    if not token or "access_token" not in token:
        flash("GitLab did not log you in: try again.")
        return redirect(url_for("projects.home"))
    try:
        user = _whoami(token["access_token"], check=True)
    except NotAllowed as e:
        log.info("a login was refused by access/allowed_groups")
        # a response, so that flask-dance keeps no token of this login
        return current_app.make_response(error_page(403, "Not a member here", str(e)))
    except GitLabError as e:
        flash(f"GitLab did not tell who you are: {e}")
        return redirect(url_for("projects.home"))
    next_url = safe_next(session.get("next"))
    session.clear()
    sessions.regenerate()
    blueprint.token = token
    session["user"] = {"username": user.username, "name": user.name, "gitlab_admin": user.is_admin}
    log.info("%s logged in", user.username)
    return redirect(next_url or url_for("projects.home"))


def _login_failed(blueprint: GitLabLogin, error: Any = None, error_description: Any = None, **_: Any) -> Any:
    log.info("GitLab login failed: %s", error)
    flash(f"GitLab did not log you in ({error_description or error}): try again.")
    return redirect(url_for("projects.home"))


def safe_next(url: Any) -> str | None:
    """``url`` when it is a path on this site, else None (no open redirects): the one check
    of a path to send a browser back to, also on a notebook's host (:mod:`booklab.web.notebook_auth`)."""
    if isinstance(url, str) and url.startswith("/") and not url.startswith(("//", "/\\")):
        return url
    return None


def _forget_login() -> None:
    session.pop(logins.GRANT_KEY, None)
    session.pop("user", None)


def _fresh_token(grant_id: str) -> str | None:
    """The login's access token, refreshed when it is about to expire; None when GitLab no
    longer accepts it (or the login is gone)."""
    try:
        return gitlab_tokens.fresh(context(), grant_id)
    except TokenRejected as e:
        log.info("refreshing a GitLab login failed: %s", type(e).__name__)
        return None
    except GitLabError as e:  # GitLab did not answer the refresh: go on with the token kept, try again next time
        log.info("refreshing a GitLab login failed for now: %s", type(e).__name__)
        pair = context().grants.get(grant_id)
        return None if pair is None else pair.access_token


def session_user() -> WebUser | None:
    """The logged-in user of this request's session (the OAuth token refreshed when it
    is about to expire), or None."""
    if "session_user" in g:
        return g.session_user
    info, grant_id = session.get("user"), logins.grant_id()
    user = None
    if info and grant_id:
        token = _fresh_token(grant_id)
        if token is None:
            _forget_login()
            flash("Your GitLab login expired: log in again.")
        else:
            user = WebUser(info["username"], info["name"], token, grant_id)
    g.session_user = user
    return user


def session_is_gitlab_admin() -> bool:
    """Whether GitLab said, when this session's user logged in, that they administer it."""
    return bool((session.get("user") or {}).get("gitlab_admin"))


def this_url() -> str:
    """This request's path and query as the client sent them (``%2F`` kept: launch links
    need it), to come back to after logging in."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    return raw if raw and raw.startswith("/") else request.full_path.rstrip("?")


def go_to_login(next_url: str | None = None) -> Any:
    session["next"] = safe_next(next_url) or url_for("projects.home")
    return redirect(url_for("gitlab.login"))


def login_required(view: Callable) -> Callable:
    """Pages: without a logged-in user, log in at GitLab first, then come back here."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if session_user() is None:
            return go_to_login(this_url() if request.method == "GET" else None)
        return view(*args, **kwargs)

    return wrapper


def log_in_again(message: str) -> Any:
    """GitLab refused the user's token: pages log in again, the API answers 401."""
    if wants_json():
        raise unauthorized(message)
    _forget_login()
    g.pop("session_user", None)
    flash(message)
    return go_to_login(this_url() if request.method == "GET" else None)


def unauthorized(message: str) -> Unauthorized:
    return Unauthorized(message, www_authenticate=WWWAuthenticate("bearer", {"realm": "booklab"}))


class TokenCache:
    """GitLab's answer to "whose token is this?", kept ``ttl`` seconds (by token hash)."""

    def __init__(self, ttl: float, max_entries: int = 10000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, str, str]] = {}

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def get(self, token: str) -> tuple[str, str] | None:
        with self._lock:
            entry = self._entries.get(self._key(token))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1], entry[2]

    def put(self, token: str, username: str, name: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[self._key(token)] = (now + self.ttl, username, name)


def header_token() -> str | None:
    """A GitLab token sent as ``Authorization: Bearer`` or ``PRIVATE-TOKEN``."""
    private = request.headers.get("PRIVATE-TOKEN", "").strip()
    if private:
        return private
    kind, _, value = request.headers.get("Authorization", "").partition(" ")
    if kind.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def api_user() -> WebUser:
    """The user of an API or event-stream request: by a GitLab token in a header
    (checked against GitLab's /api/v4/user, answer cached briefly), else by the session.
    Raises 401, or 429 when this client asked GitLab about too many tokens lately
    (:mod:`booklab.web.rate_limit`)."""
    if "Authorization" in request.headers or "PRIVATE-TOKEN" in request.headers:
        token = header_token()
        if token is None:
            raise unauthorized(
                "Send a GitLab personal access token as 'Authorization: Bearer <token>' or 'PRIVATE-TOKEN: <token>'."
            )
        cache: TokenCache = current_app.extensions["booklab_token_cache"]
        known = cache.get(token)
        if known is None:
            rate_limit.spend(rate_limit.TOKEN, context().config.web_token_rate_limit)
            try:
                found = _whoami(token)
            except TokenRejected:
                raise unauthorized(
                    "GitLab did not accept this token: check it, its expiry and its scopes (api)."
                ) from None
            cache.put(token, found.username, found.name)
            known = (found.username, found.name)
        return WebUser(known[0], known[1], token)
    user = session_user()
    if user is None:
        raise unauthorized(
            "Log in to Booklab, or send a GitLab personal access token as 'Authorization: Bearer <token>'."
        )
    return user


@bp.post("/logout")
def logout() -> Any:
    user = session_user()
    session.clear()
    sessions.regenerate()
    if user is not None:
        log.info("%s logged out", user.username)
    flash("You are logged out of Booklab.")
    return redirect(url_for("projects.home"))


def init_app(app: Flask) -> None:
    app.register_blueprint(_login_blueprint(app))
    app.register_blueprint(bp)
    app.extensions["booklab_token_cache"] = TokenCache(context_of(app).config.web_token_cache)

    @app.context_processor
    def user_in_templates() -> dict[str, Any]:
        return {"current_user": session_user()}

    @app.errorhandler(OAuth2Error)
    def login_refused(exc: OAuth2Error) -> Any:
        if isinstance(exc, InsecureTransportError):
            log.error("OAuth over plain http refused: %s", exc.description)
            return error_page(
                500,
                "Login needs https",
                (
                    "GitLab login needs https between the browser, Booklab and GitLab. For a local test "
                    "setup over plain http, start Booklab with OAUTHLIB_INSECURE_TRANSPORT=1."
                ),
            )
        log.info("GitLab login failed: %s", type(exc).__name__)
        flash(f"GitLab did not log you in ({exc.error}): try again.")
        return redirect(url_for("projects.home"))
