"""Where the web tier keeps a user's GitLab OAuth login: in a grant (:mod:`booklab.state.grants`)
that the session names, so that the web tier and the runners acting for the user share one
token pair, refreshed by whichever needs it first (:mod:`booklab.pipeline.gitlab_tokens`).
flask-dance reads and writes the login through :class:`GrantStorage`."""

from __future__ import annotations

from typing import Any

from flask import session
from flask_dance.consumer.storage import BaseStorage

from booklab.state.grants import Pair
from booklab.web.pages import context

#: the session's key naming its grant
GRANT_KEY = "gitlab_grant"


class GrantStorage(BaseStorage):
    """flask-dance's token storage: the session's grant."""

    def get(self, blueprint: Any) -> dict | None:
        pair = context().grants.get(session.get(GRANT_KEY, ""))
        if pair is None:
            return None
        token: dict[str, Any] = {
            "access_token": pair.access_token,
            "refresh_token": pair.refresh_token,
            "token_type": "Bearer",
        }
        if pair.expires_at:
            token["expires_at"] = pair.expires_at
        return token

    def set(self, blueprint: Any, token: dict) -> None:
        """A login: always a new grant, never written into one a session named before."""
        pair = Pair(token["access_token"], token.get("refresh_token", ""), float(token.get("expires_at") or 0))
        session[GRANT_KEY] = context().grants.create(pair, context().config.web_session_lifetime)

    def delete(self, blueprint: Any) -> None:
        """The session forgets its login; the grant lives on for the notebooks launched with it
        until it expires."""
        session.pop(GRANT_KEY, None)


def grant_id() -> str:
    """The session's grant, or ''."""
    return session.get(GRANT_KEY, "")
