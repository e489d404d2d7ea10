"""Who may reach a notebook: the web tier's answer to Traefik's forward-auth, and the login
of notebook hosts.

With ``routes/forward_auth`` (on by default), Traefik asks ``GET /auth/notebook/<slug>``
before every request to ``<slug>.<domain>`` (the middleware :mod:`booklab.pipeline.routes.names` puts on
each route; ``<domain>`` is ``notebook/domain``, by default the web tier's ``fqdn``), with
the request's headers; a 2xx answer lets the request through, any other
goes back to the client as it is. The routes of Traefik's Redis provider share one middleware, which asks
``GET /auth/notebook`` and leaves the slug to the request's host: ``X-Forwarded-Host``, which Traefik's
forward-auth sets to the ``Host`` the route matched (it does not trust the client's, ``trustForwardHeader`` being
off), so a client cannot have one notebook's host checked while it asks another's.

Only the GitLab user who launched the notebook passes,
even with the notebook's URL and Jupyter token in hand (a leaked link), by either of:

- a GitLab personal access token, ``Authorization: Bearer <token>`` or ``PRIVATE-TOKEN:
  <token>``, as the API takes it (GitLab's answer cached ``web/token_cache`` seconds), so
  scripts keep working;
- the notebook host's own login cookie, ``booklab_notebook`` (``__Host-booklab_notebook``
  over https: :mod:`booklab.web.cookies`), that the owner's logged-in Booklab session
  obtains for the browser.

Booklab's session cookie stays on the web tier's host: notebook hosts run the
repository's code, which must never see it (and browsers do not share a ``localhost``
cookie with ``<slug>.localhost`` anyway). A browser without the notebook's cookie is sent
to ``/auth/notebook/grant/<slug>`` on the web tier which, after a GitLab login if need be,
checks that its session's user owns the notebook and sends the browser back to
``<slug>.<domain>/.booklab/grant`` with a one-use code (valid 60 s). Forward-auth trades the
code for the cookie (HttpOnly, SameSite=Lax, that host only, ended with the web session
it came from: logging out of Booklab closes the notebooks too) and redirects to the page
first asked for.

Answers: 200 for the owner; 302 to the login for a browser without credentials, 401 for
a script; 403 for any other user; 404 for a slug no deployment has; 429 (with
``Retry-After``) to a client that sent more than ``web/auth_rate_limit`` requests without
a valid login in a window (:mod:`booklab.web.rate_limit`). A request without any
credential is counted before anything else is looked up; one whose credential fails, once
it has failed; the owner's requests are never counted, so they cost no more round trip.
A 200 hands Traefik the request's ``Authorization``, ``Private-Token`` and ``Cookie`` headers back without
Booklab's credentials (:data:`booklab.pipeline.routes.names.AUTH_RESPONSE_HEADERS`): the notebook never
sees the user's GitLab token or cookie. Jupyter still checks its own token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode

from cryptography.fernet import Fernet, InvalidToken
from flask import (
    Blueprint,
    Flask,
    Response,
    jsonify,
    redirect,
    request,
    session,
)
from werkzeug.exceptions import TooManyRequests, Unauthorized

from booklab.derived_keys import NOTEBOOK_NEXT, derive_key
from booklab.pipeline.routes.names import DEFAULT_PORTS, HOST_AUTH_PATH, notebook_domain, public_url, route_host
from booklab.pipeline.routes.waiting import ROUTE_CHECK_HEADER, route_check_passes
from booklab.state import schema
from booklab.state.deployment import Deployment
from booklab.web import auth, cookies, rate_limit, sessions
from booklab.web.pages import context, error_page, web_base
from booklab.web.projects import launch_path

log = logging.getLogger(__name__)

bp = Blueprint("notebook_auth", __name__)

#: the path on a notebook host where forward-auth trades a one-use code for the cookie
GRANT_PATH = "/.booklab/grant"
#: seconds a one-use code is valid
GRANT_TTL = 60
#: seconds a sealed "where to go back to" stays valid
NEXT_TTL = 3600
SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _fernet() -> Fernet:
    """Seals the notebook path (with its Jupyter token) while it travels through the web tier's URLs."""
    return Fernet(base64.urlsafe_b64encode(derive_key(context().config.secret_key, NOTEBOOK_NEXT)))


def _local_path(value: str | None) -> str:
    """``value`` when it is a path (with its query) on the same host, else ``/``."""
    return auth.safe_next(value) or "/"


def _seal(path: str) -> str:
    return _fernet().encrypt(path.encode()).decode()


def _unseal(sealed: str) -> str:
    try:
        return _local_path(_fernet().decrypt(sealed.encode(), ttl=NEXT_TTL).decode())
    except (InvalidToken, UnicodeDecodeError):
        return "/"


def _deployment(slug: str) -> Deployment | None:
    return context().deployments.by_slug(slug) if SLUG.fullmatch(slug) else None


def _is_browser() -> bool:
    method = request.headers.get("X-Forwarded-Method", "GET").upper()
    return method in ("GET", "HEAD") and "text/html" in request.headers.get("Accept", "")


def _refuse(status: int, message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="booklab"'
    return response


def _too_many(exc: TooManyRequests) -> Response:
    response = _refuse(429, exc.description or "Too many requests: wait and try again.")
    response.headers.update({k: v for k, v in exc.get_headers() if k == "Retry-After"})
    return response


def _allow() -> Response:
    """200, with the headers Traefik sets anew on the request: Booklab's credentials left out."""
    response = Response(status=200)
    authorization = request.headers.get("Authorization", "")
    if authorization and authorization.partition(" ")[0].lower() != "bearer":
        response.headers["Authorization"] = authorization  # Jupyter's own "token <token>"
    kept = [
        part
        for part in request.headers.get("Cookie", "").split(";")
        if part.strip() and part.partition("=")[0].strip() not in cookies.ALL
    ]
    if kept:
        response.headers["Cookie"] = ";".join(kept).strip()
    return response


def _not_served(slug: str) -> Response:
    where = slug or "this address"
    return _refuse(
        404, f"No notebook is served at {where}: it was stopped or never launched. Launch it again at {web_base()}/."
    )


def _forwarded_proto() -> str:
    """The scheme the browser used for the notebook host, as Traefik forwards it."""
    return request.headers.get("X-Forwarded-Proto", context().config.routes_scheme)


def _cookie_name() -> str:
    """The notebook host's login cookie: ``__Host-booklab_notebook`` over https."""
    return cookies.name(cookies.NOTEBOOK, _forwarded_proto() == "https")


def _pass_user(slug: str) -> str | None:
    """The user the request's notebook cookie logged in at this host, if it is still valid."""
    value = request.cookies.get(_cookie_name())
    if not value:
        return None
    redis = context().redis
    key = schema.notebook_pass(_digest(value))
    raw = redis.get(key)
    if raw is None:
        return None
    record = json.loads(raw)
    if record.get("slug") != slug:
        return None
    if record.get("session") and not redis.exists(record["session"]):  # logged out of Booklab since
        redis.delete(key)
        return None
    return record.get("user")


def _has_credentials() -> bool:
    """The request carries something that may log it in (checked later)."""
    return bool(request.cookies.get(_cookie_name()) or auth.header_token() or request.headers.get(ROUTE_CHECK_HEADER))


def _slug_of_host() -> str:
    """The slug of the notebook host the request was for (``X-Forwarded-Host``), or "" when it is none."""
    host = request.headers.get("X-Forwarded-Host", "").partition(":")[0].lower().removesuffix(".")  # as Traefik
    slug, dot, domain = host.partition(".")
    return slug if dot and domain == notebook_domain(context().config).lower() else ""


@bp.get(HOST_AUTH_PATH)
def check_host() -> Any:
    """Traefik's forward-auth question, the notebook told by the host asked for."""
    return check(_slug_of_host())


@bp.get("/auth/notebook/<slug>")
def check(slug: str) -> Any:
    """Traefik's forward-auth question: may this request reach the notebook ``slug``?
    Requests without a valid login are rate limited per client."""
    allowed = context().config.web_auth_rate_limit
    try:
        if not _has_credentials():
            rate_limit.spend(rate_limit.AUTH, allowed)
            return _answer(slug)
        answer = _answer(slug)
        # a credential that did not open it: refused, or sent to log in (a redirect that
        # sets no cookie: only a traded code sets one)
        if answer.status_code >= 400 or (answer.status_code == 302 and "Set-Cookie" not in answer.headers):
            rate_limit.spend(rate_limit.AUTH, allowed)
        return answer
    except TooManyRequests as e:
        return _too_many(e)


def _answer(slug: str) -> Response:
    """Forward-auth's answer for ``slug``, before any rate limit."""
    dep = _deployment(slug)
    if dep is None:
        return _not_served(slug)
    path, _, query = request.headers.get("X-Forwarded-Uri", "/").partition("?")
    if path == GRANT_PATH:
        return _redeem(dep, slug, query)
    route_check = request.headers.get(ROUTE_CHECK_HEADER)
    if route_check and route_check_passes(context().redis, slug, route_check):
        return _allow()
    if auth.header_token() is not None:
        try:
            user = auth.api_user()
        except Unauthorized:
            return _refuse(401, "GitLab did not accept this token: check it, its expiry and its scopes (api).")
        if user.username != dep.user:
            log.info("%s's token was refused the notebook %s of %s", user.username, slug, dep.user)
            return _refuse(
                403,
                f"This notebook belongs to the GitLab user {dep.user}, and the token is "
                f"{user.username}'s: a notebook opens only for the user who launched it. "
                f"Launch {dep.project} ({dep.ref}) yourself.",
            )
        return _allow()
    if _pass_user(slug) == dep.user:
        return _allow()
    if _is_browser():
        nxt = _seal(_local_path(request.headers.get("X-Forwarded-Uri")))
        return redirect(f"{web_base()}/auth/notebook/grant/{slug}?{urlencode({'next': nxt})}", 302)
    return _refuse(
        401,
        "This notebook opens only for the GitLab user who launched it: send their GitLab "
        "personal access token as 'Authorization: Bearer <token>' or 'PRIVATE-TOKEN: <token>' "
        "(and Jupyter's token in '?token='), or open it in a browser logged in to Booklab.",
    )


def _redeem(dep: Deployment, slug: str, query: str) -> Response:
    """At ``<slug>.<domain>/.booklab/grant``: trade the one-use code for the host's cookie."""
    params = parse_qs(query)
    code, sealed = params.get("code", [""])[0], params.get("next", [""])[0]
    ctx = context()
    raw = ctx.redis.getdel(schema.notebook_grant(_digest(code))) if code else None
    if raw is None:  # used or expired (a reload, an old link): ask the web tier again
        return redirect(f"{web_base()}/auth/notebook/grant/{slug}?{urlencode({'next': sealed})}", 302)
    record = json.loads(raw)
    if record.get("slug") != slug or record.get("user") != dep.user:
        return _refuse(403, "This code opens another notebook.")
    value = secrets.token_urlsafe(32)
    lifetime = ctx.config.web_session_lifetime
    ctx.redis.set(schema.notebook_pass(_digest(value)), json.dumps(record), ex=lifetime)
    proto = _forwarded_proto()
    host = request.headers.get("X-Forwarded-Host", "")
    if host.partition(":")[0].lower() == route_host(ctx.config, slug) and proto in DEFAULT_PORTS:
        origin = f"{proto}://{host}"
    else:
        origin = public_url(ctx.config, slug).rstrip("/")
    response = redirect(origin + _unseal(sealed), 302)
    response.set_cookie(
        _cookie_name(), value, max_age=lifetime, path="/", httponly=True, samesite="Lax", secure=proto == "https"
    )
    log.info("%s opened the notebook %s in a browser", dep.user, slug)
    return response


@bp.get("/auth/notebook/grant/<slug>")
@auth.login_required
def grant(slug: str) -> Any:
    """On the web tier: the logged-in owner's browser gets a one-use code for the notebook host."""
    user = auth.session_user()
    assert user is not None  # login_required
    dep = _deployment(slug)
    if dep is None:
        return error_page(
            404,
            "No such notebook",
            "No notebook is served at this address: it was stopped "
            "or never launched. Launch it again from your projects.",
        )
    if user.username != dep.user:
        log.info("%s was refused the notebook %s of %s", user.username, slug, dep.user)
        return error_page(
            403,
            "Not your notebook",
            (
                f"This notebook belongs to the GitLab user {dep.user}, and you are logged in as {user.username}. "
                f"A notebook opens only for the user who launched it: launch {dep.project} ({dep.ref}) yourself."
            ),
            link=(launch_path(dep.project, dep.ref), f"Launch {dep.project} ({dep.ref})"),
        )
    sid = getattr(session, "sid", None)
    code = secrets.token_urlsafe(32)
    record = {"user": user.username, "slug": slug, "session": sessions.session_key(sid) if sid else ""}
    context().redis.set(schema.notebook_grant(_digest(code)), json.dumps(record), ex=GRANT_TTL)
    target = public_url(context().config, slug).rstrip("/") + GRANT_PATH
    return redirect(f"{target}?{urlencode({'code': code, 'next': request.args.get('next', '')})}", 302)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
