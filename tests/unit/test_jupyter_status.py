"""How Booklab asks a Jupyter server's ``/api/status`` (directly, or through Traefik as
the notebook's host), and how a runner's main loop probes a warm spare no user watches (within a deadline in
all): a real HTTP server on loopback that records what it is asked, and can trickle or bloat its answer."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from booklab.pipeline.launcher import PROBE_MAX_BYTES, answers_within, api_status

TOKEN = "0123abcd"


class Status(BaseHTTPRequestHandler):
    """``/api/status`` answers the host it was asked as (and keeps every request's
    headers); ``/moved/api/status`` redirects there; ``/listed/api/status`` answers a JSON
    list, not Jupyter's object."""

    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        self.seen.append(dict(self.headers))
        if self.path in ("/trickle/api/status", "/bloated/api/status"):
            self._hostile()
            return
        if self.path == "/moved/api/status":
            self.send_response(302)
            self.send_header("Location", "/api/status")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        answer = {"path": self.path, "host": self.headers["Host"]}
        body = json.dumps([answer] if self.path == "/listed/api/status" else answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _hostile(self) -> None:
        """A 200 whose body comes a byte every 0.2 s for 10 s, or is larger than a probe reads."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        try:
            if self.path.startswith("/bloated"):
                self.wfile.write(b'{"pad": "' + b"x" * (2 * PROBE_MAX_BYTES) + b'"}')
                return
            for _ in range(50):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def jupyter() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Status)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    Status.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_status_is_asked_with_the_token_as_the_host_and_with_the_extra_headers(jupyter):
    status = api_status(jupyter, TOKEN, "nb.example.org", {"X-Booklab-Route-Check": "once"})
    assert status == {"path": "/api/status", "host": "nb.example.org"}
    asked = Status.seen[-1]
    assert asked["Authorization"] == f"token {TOKEN}" and asked["X-Booklab-Route-Check"] == "once"


def test_without_a_host_status_is_asked_of_the_address_itself(jupyter):
    assert api_status(jupyter, TOKEN)["host"] == jupyter.removeprefix("http://").rstrip("/")


def test_redirects_are_followed_unless_told_not_to(jupyter):
    assert api_status(f"{jupyter}moved/", TOKEN) is not None
    assert api_status(f"{jupyter}moved/", TOKEN, allow_redirects=False) is None


def test_only_a_json_object_is_a_status(jupyter):
    assert api_status(f"{jupyter}listed/", TOKEN) is None
    assert api_status("http://127.0.0.1:1/", TOKEN) is None  # nothing listens there


def test_a_probe_of_a_spare_ends_within_its_deadline_whatever_the_server_does(jupyter):
    assert answers_within(jupyter, TOKEN, 1.0)
    assert Status.seen[-1]["Authorization"] == f"token {TOKEN}"
    started = time.monotonic()
    assert not answers_within(f"{jupyter}trickle/", TOKEN, 1.0)  # each byte well within the read timeout
    assert time.monotonic() - started < 2.0
    assert not answers_within(f"{jupyter}bloated/", TOKEN, 1.0)
    assert not answers_within(f"{jupyter}moved/", TOKEN, 1.0)  # no redirect followed
    assert not answers_within(f"{jupyter}listed/", TOKEN, 1.0)
