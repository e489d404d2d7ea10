"""A site's JupyterHub, through its REST API, for hub mode (``launch/target: jupyterhub``): its users, and
their named servers, which Booklab starts from the images it builds, follows while they start, and stops.

Booklab is a service of the hub, with its own API token (a role with the ``servers`` scope, and
``admin:users`` when it creates users). The token goes in the ``Authorization`` header, never in a URL, a
log or an error: a :class:`HubError` says what the hub answered. Written against JupyterHub 6's API; the
start request's body (the options themselves) is also what JupyterHub 5 takes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator
from urllib.parse import quote

import requests

from booklab.errors import HubError

#: seconds the hub has to answer a request (a progress stream: between two of its lines, it sends one every 8 s)
TIMEOUT = 30


@dataclass(frozen=True)
class Server:
    """A user's named server as the hub sees it."""

    ready: bool
    url: str
    """its URL: on its user's host with subdomains (``https://alice.hub.example.org/user/alice/<server>/``),
    else only a path on the hub's host"""
    container: str | None
    """DockerSpawner's container id (the hub shows it to a token with ``admin:servers``)"""
    last_activity: datetime | None = None
    """the last activity the hub saw (through its proxy, or reported by the server)"""

    @classmethod
    def of(cls, model: dict[str, Any]) -> Server:
        state = model.get("state") or {}
        return cls(bool(model.get("ready")), model.get("url") or "", state.get("object_id"), _time(model))


class HubClient:
    """The hub whose API is at ``api_url`` (``https://hub.example.org/hub/api``), as the service of ``token``."""

    def __init__(self, api_url: str, token: str, timeout: float = TIMEOUT) -> None:
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {token}"

    def close(self) -> None:
        self.session.close()

    def has_user(self, name: str) -> bool:
        return self._call("GET", f"users/{quote(name, safe='')}", ok=(200, 404)).status_code == 200

    def create_user(self, name: str) -> None:
        """Add the user ``name`` to the hub (it must then let them log in: its ``allow_existing_users``)."""
        self._call("POST", f"users/{quote(name, safe='')}", ok=(201, 409))

    def create(self, user: str, server: str, display_name: str) -> Server | None:
        """Have the hub make ``user``'s named server ``server`` without starting it (JupyterHub 6); None when it
        has one of that name already."""
        body = {"display_name": display_name}
        answer = self._call("PUT", self._server_path(user, server), ok=(201, 409), json=body)
        return Server.of(answer.json()) if answer.status_code == 201 else None

    def start(self, user: str, server: str, options: dict[str, str], display_name: str = "") -> None:
        """Ask the hub to start ``user``'s named server ``server`` with ``options`` (the image, its grant)."""
        body: dict[str, Any] = {"user_options": options}
        if display_name:
            body["display_name"] = display_name
        self._call("POST", self._server_path(user, server), ok=(201, 202), json=body)

    def progress(self, user: str, server: str) -> Iterator[dict[str, Any]]:
        """The hub's events of the server's start, up to the last (``ready`` or ``failed`` true)."""
        answer = self._call("GET", f"{self._server_path(user, server)}/progress", ok=(200,), stream=True)
        with answer:
            try:
                for line in answer.iter_lines(decode_unicode=True):
                    if line and line.startswith("data:"):
                        event = json.loads(line[5:])
                        yield event
                        if event.get("ready") or event.get("failed"):
                            return
            except (requests.RequestException, ValueError) as e:
                raise HubError(f"JupyterHub's progress of the server {server} broke off ({type(e).__name__})") from None

    def server(self, user: str, server: str) -> Server | None:
        """The server, or None when the hub has none of that name running or starting."""
        answer = self._call("GET", self._server_path(user, server), ok=(200, 404))
        return Server.of(answer.json()) if answer.status_code == 200 else None

    def stop(self, user: str, server: str) -> None:
        """Stop the server and forget it (the hub's record of it goes too); nothing when there is none."""
        self._call("DELETE", self._server_path(user, server), ok=(202, 204, 404), json={"remove": True})

    @staticmethod
    def _server_path(user: str, server: str) -> str:
        return f"users/{quote(user, safe='')}/servers/{quote(server, safe='')}"

    def _call(self, method: str, path: str, ok: tuple[int, ...], **kwargs: Any) -> requests.Response:
        try:
            answer = self.session.request(method, f"{self.api_url}/{path}", timeout=self.timeout, **kwargs)
        except requests.RequestException as e:
            raise HubError(f"JupyterHub did not answer ({type(e).__name__})") from None
        if answer.status_code not in ok:
            raise HubError(f"JupyterHub answered {answer.status_code}: {_message(answer)}")
        return answer


def _time(model: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(model["last_activity"])
    except (KeyError, TypeError, ValueError):
        return None


def _message(answer: requests.Response) -> str:
    """The hub's own words for a refusal (its JSON ``message``), shortened."""
    try:
        found = answer.json()
        message = str(found.get("message") or "") if isinstance(found, dict) else answer.text
    except ValueError:
        message = answer.text
    return " ".join(message.split())[:300] or answer.reason
