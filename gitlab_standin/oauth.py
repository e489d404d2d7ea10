"""GitLab's OAuth2 authorization-code flow (Doorkeeper's shapes and error bodies).

``GET /oauth/authorize?client_id&redirect_uri&response_type=code&state&scope`` shows a
sign-in form (fields ``username`` and ``password``, button "Sign in"); posting valid
credentials redirects to ``redirect_uri?code=...&state=...``. ``POST /oauth/token``
exchanges a code (``grant_type=authorization_code``) or a refresh token
(``grant_type=refresh_token``) for a Bearer token; the client authenticates with form
fields or HTTP basic auth.
"""

from __future__ import annotations

import secrets
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, jsonify, redirect, render_template_string, request

from gitlab_standin.context import context

bp = Blueprint("oauth", __name__, url_prefix="/oauth")

INVALID_CLIENT = (
    "Client authentication failed due to unknown client, no client authentication "
    "included, or unsupported authentication method."
)
INVALID_GRANT = (
    "The provided authorization grant is invalid, expired, revoked, does not match the "
    "redirection URI used in the authorization request, or was issued to another client."
)
UNSUPPORTED_GRANT = "The authorization grant type is not supported by the authorization server."

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in · GitLab</title></head>
<body>
{% if problem %}<p role="alert">{{ problem }}</p>{% endif %}
{% if hidden is not none %}
<h1>Sign in to authorize access to your account</h1>
<form method="post" action="{{ url_for('oauth.authorize') }}">
{% for name, value in hidden.items() %}<input type="hidden" name="{{ name }}" value="{{ value }}">
{% endfor %}<p><label for="user_login">Username or primary email</label>
<input id="user_login" name="username" autocomplete="username" required></p>
<p><label for="user_password">Password</label>
<input id="user_password" name="password" type="password" autocomplete="current-password" required></p>
<p><button type="submit">Sign in</button></p>
</form>
{% endif %}
</body></html>"""


def _page(problem: str | None, hidden: dict | None, status: int = 200) -> tuple[str, int]:
    return render_template_string(PAGE, problem=problem, hidden=hidden), status


def _with_query(uri: str, **params: str) -> str:
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + [(k, v) for k, v in params.items() if v]
    return urlunsplit(parts._replace(query=urlencode(query)))


@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> Response | tuple[str, int]:
    params = request.values
    app = context().store.oauth_app(params.get("client_id", ""))
    redirect_uri, state = params.get("redirect_uri", ""), params.get("state", "")
    if app is None:
        return _page(INVALID_CLIENT, None, 401)
    if redirect_uri not in app.redirect_uris:
        return _page("The redirect URI included is not valid.", None, 400)
    if params.get("response_type") != "code":
        return redirect(_with_query(redirect_uri, error="unsupported_response_type", state=state))
    scope = params.get("scope") or app.scopes
    if not set(scope.split()) <= set(app.scopes.split()):
        return redirect(_with_query(redirect_uri, error="invalid_scope", state=state))
    hidden = {
        name: params[name]
        for name in ("client_id", "redirect_uri", "response_type", "state", "scope")
        if params.get(name)
    }
    if request.method == "GET":
        return _page(None, hidden)
    user = context().store.login(params.get("username", ""), params.get("password", ""))
    if user is None:
        return _page("Invalid login or password.", hidden)
    code = context().store.create_code(app, user, redirect_uri, scope)
    return redirect(_with_query(redirect_uri, code=code, state=state))


def _oauth_error(status: int, error: str, description: str) -> Response:
    response = jsonify({"error": error, "error_description": description})
    response.status_code = status
    return response


@bp.post("/token")
def token() -> Response:
    params = request.get_json(silent=True) or request.form
    credentials = request.authorization
    if credentials is not None and credentials.type == "basic":
        client_id, secret = credentials.username or "", credentials.password or ""
    else:
        client_id, secret = params.get("client_id", ""), params.get("client_secret", "")
    store = context().store
    app = store.oauth_app(client_id)
    if app is None or not secrets.compare_digest(app.client_secret, secret):
        return _oauth_error(401, "invalid_client", INVALID_CLIENT)
    match params.get("grant_type"):
        case "authorization_code":
            issued = store.redeem_code(app, params.get("code", ""), params.get("redirect_uri", ""))
        case "refresh_token":
            issued = store.refresh(app, params.get("refresh_token", ""))
        case _:
            return _oauth_error(400, "unsupported_grant_type", UNSUPPORTED_GRANT)
    if issued is None:
        return _oauth_error(400, "invalid_grant", INVALID_GRANT)
    response = jsonify(issued.as_json())
    response.headers.update({"Cache-Control": "no-store", "Pragma": "no-cache"})
    return response
