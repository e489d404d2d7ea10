"""A client of Booklab's web tier for the CLI and scripts: the JSON API under ``/api/``
and the BinderHub-shaped event stream, authenticated by a GitLab personal access token.

Following a deployment never starts one: the stream is always opened with a
``Last-Event-ID`` (``0`` at first), and a dropped connection resumes after the last event
received, so no event is lost or repeated.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any, Self
from urllib.parse import quote

import requests

from booklab.errors import ApiError
from booklab.phases import Phase, SaveState

log = logging.getLogger(__name__)


class BooklabClient:
    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()
        self.http.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return self._request(method, path, **kwargs).json()
        except ValueError:
            return {}

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """The web tier's answer to a request; ApiError, with its message, unless it is a success."""
        try:
            response = self.http.request(method, self.url + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as e:
            raise ApiError(
                f"Booklab at {self.url} did not answer ({type(e).__name__}): check --url or BOOKLAB_URL."
            ) from None
        if not response.ok:
            try:
                body = response.json()
            except ValueError:
                body = {}
            message = body.get("error") if isinstance(body, dict) else None
            raise ApiError(
                message or f"Booklab answered {response.status_code} to {method} {path}.", response.status_code
            )
        return response

    @staticmethod
    def _id(deployment_id: str) -> str:
        return quote(deployment_id, safe="")

    def user(self) -> dict[str, Any]:
        return self._call("GET", "/api/user")

    def deployments(self) -> list[dict[str, Any]]:
        return self._call("GET", "/api/deployments")["deployments"]

    def deployment(self, deployment_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/deployments/{self._id(deployment_id)}")

    def profiles(self) -> dict[str, Any]:
        """The machine profiles the user may launch on (``profiles``) and the ``default`` one."""
        return self._call("GET", "/api/profiles")

    def deploy(
        self, project: str, ref: str, save_back: bool = False, rebuild: bool = False, profile: str = ""
    ) -> dict[str, Any]:
        """Launch ``ref`` of ``project`` (or join it when it is queued, running or ready);
        with ``save_back``, its changes are pushed to a new branch when it ends; with
        ``rebuild``, its image is built again, every layer; on the machine ``profile`` (empty:
        the repository's, else the default)."""
        body = {"project": project, "ref": ref, "save_back": save_back, "rebuild": rebuild, "profile": profile}
        return self._call("POST", "/api/deployments", json=body)

    def stop(self, deployment_id: str, discard: bool = False) -> dict[str, Any]:
        return self._call("POST", f"/api/deployments/{self._id(deployment_id)}/stop", json={"discard": discard})

    def save(self, deployment_id: str) -> dict[str, Any]:
        """Push the notebook's changes to GitLab now; the save goes on after the answer."""
        return self._call("POST", f"/api/deployments/{self._id(deployment_id)}/save")

    def wait_stopped(
        self, deployment_id: str, run: int | None, timeout: float = 900, interval: float = 0.5
    ) -> dict[str, Any]:
        """The deployment once its run ``run`` ended, or its Stop was called off because the save
        it asked for failed (or ``timeout`` s passed)."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.deployment(deployment_id)
            if current.get("run") != run or current["status"] != "stopping" or time.monotonic() > deadline:
                return current
            time.sleep(interval)

    def wait_saved(self, deployment_id: str, timeout: float = 900, interval: float = 1.0) -> dict[str, Any]:
        """The deployment once its save under way ended (or ``timeout`` s passed)."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.deployment(deployment_id)
            if current.get("save", {}).get("state") != SaveState.SAVING or time.monotonic() > deadline:
                return current
            time.sleep(interval)

    def kept(self, deployment_id: str, run: int | None = None) -> tuple[dict[str, Any], bytes]:
        """The changes kept of the deployment's ``run`` (its latest when None) whose save was
        given up: their description and their ``.tar.gz``. ApiError when none are kept."""
        found = self.deployment(deployment_id).get("kept") or []
        chosen = next((k for k in found if run is None or k["run"] == run), None)
        if chosen is None:
            which = f"of run {run} " if run is not None else ""
            raise ApiError(f"No changes {which}of {deployment_id} are kept: they are kept only when a save gave up.")
        path = f"/api/deployments/{self._id(deployment_id)}/kept/{int(chosen['run'])}"
        return chosen, self._request("GET", path, headers={"Accept": "application/gzip"}).content

    def log(self, deployment_id: str, run: int | None = None) -> str:
        """The full log of the deployment's newest run (or of ``run``), secrets removed."""
        params = {"run": run} if run is not None else None
        path = f"/api/deployments/{self._id(deployment_id)}/log"
        return self._request("GET", path, params=params, headers={"Accept": "text/plain"}).text

    def retry(self, deployment_id: str, rebuild: bool = False, profile: str | None = None) -> dict[str, Any]:
        """Launch the deployment again, on the machine ``profile`` (None: the one last picked)."""
        body: dict[str, Any] = {"rebuild": rebuild}
        if profile is not None:
            body["profile"] = profile
        return self._call("POST", f"/api/deployments/{self._id(deployment_id)}/retry", json=body)

    def admin(self, what: str = "") -> dict[str, Any]:
        """An operator's view: everything, or ``runners``, ``queue``, ``deployments``, ``quotas``,
        ``images`` or ``actions`` alone."""
        return self._call("GET", "/api/admin" + (f"/{what}" if what else ""))

    def admin_stop(self, deployment_id: str) -> dict[str, Any]:
        """Stop any user's deployment, as an operator."""
        return self._call("POST", f"/api/admin/deployments/{self._id(deployment_id)}/stop")

    def admin_remove_image(self, host: str, image: str) -> dict[str, Any]:
        """Have the runner host ``host`` remove ``image`` at its next cleaning, as an operator."""
        return self._call("POST", "/api/admin/images/remove", json={"host": host, "image": image})

    def events_url(self, project: str, ref: str) -> str:
        """The event stream of the user's deployment of ``ref`` of ``project`` (BinderHub's shape)."""
        return f"{self.url}/build/gl/{quote(project, safe='')}/{quote(ref, safe='/')}"

    def events(self, events_url: str, after: str = "", reconnects: int = 10) -> Iterator[tuple[str, dict]]:
        """The events of a run after id ``after`` (``<run>.<event>``; ``<run>.0`` for all of
        that run's, empty for the latest run's) as (id, event), until a final phase;
        reconnects up to ``reconnects`` times in a row when the connection drops."""
        last, failures = after, 0
        while True:
            try:
                for event_id, event in self._stream(events_url, last):
                    failures = 0
                    if event_id is not None:
                        last = event_id
                    yield (last, event)
                    if Phase(event["phase"]).is_final:
                        return
                return  # the server ended the stream (204: nothing more will come)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as e:
                failures += 1
                if failures > reconnects:
                    raise ApiError(f"Lost the event stream of Booklab at {self.url} ({type(e).__name__}).") from None
                log.info("event stream dropped (%s); resuming after event %s", type(e).__name__, last)
                time.sleep(min(2.0 * failures, 10.0))

    def _stream(self, events_url: str, after: str) -> Iterator[tuple[str | None, dict]]:
        headers = {"Accept": "text/event-stream", **({"Last-Event-ID": after} if after else {})}
        with self.http.get(events_url, headers=headers, stream=True, timeout=(self.timeout, 90)) as response:
            if response.status_code == 204:
                return
            if not response.ok:
                try:
                    message = response.json().get("error")
                except ValueError:
                    message = None
                raise ApiError(
                    message or f"Booklab answered {response.status_code} to the event stream.", response.status_code
                )
            event_id: str | None = None
            data: list[str] = []
            for line in response.iter_lines(decode_unicode=True):
                if line == "":
                    if data:
                        yield event_id, json.loads("\n".join(data))
                    event_id, data = None, []
                elif line.startswith(":"):
                    continue  # keepalive comment
                else:
                    field, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if field == "data":
                        data.append(value)
                    elif field == "id":
                        event_id = value
