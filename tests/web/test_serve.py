"""``booklab web``: the web tier served by gunicorn holds hundreds of open event streams
in one worker, and each of them gets a new event."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from booklab.phases import Phase
from tests.fixtures.pipeline import take_run

ROOT = Path(__file__).resolve().parents[2]
STREAMS = 300


def read_until(sock: socket.socket, marker: bytes, seen: bytes = b"") -> bytes:
    while marker not in seen:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"the stream ended before {marker!r}: {seen[-300:]!r}")
        seen += chunk
    return seen


def test_booklab_web_holds_hundreds_of_event_streams(web_env, web_port, ctx, alice, plain_project, tmp_path):
    from tests.fixtures.services import wait_until

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        **web_env,
        "BOOKLAB_WEB_WORKERS": "1",
        "BOOKLAB_WEB_CONNECTIONS": str(STREAMS + 20),
    }
    with (tmp_path / "web.log").open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "booklab.cli", "web", "--bind", f"127.0.0.1:{web_port}"],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{web_port}"
    sockets: list[socket.socket] = []
    try:

        def answers() -> bool:
            try:
                return requests.get(base + "/", timeout=2).status_code == 200
            except requests.ConnectionError:
                return server.poll() is not None

        wait_until(answers, 30, "booklab web to answer")
        assert server.poll() is None, (tmp_path / "web.log").read_text()
        assert "Log in with GitLab" in requests.get(base + "/", timeout=5).text

        created = requests.post(
            base + "/api/deployments",
            json={"project": plain_project, "ref": "main"},
            headers={"Authorization": f"Bearer {alice.token}"},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        request = (
            f"GET /build/gl/demo%2Fnotebooks/main HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {alice.token}\r\nLast-Event-ID: 0\r\n\r\n"
        ).encode()
        started = time.monotonic()
        for _ in range(STREAMS):
            sock = socket.create_connection(("127.0.0.1", web_port), timeout=60)
            sock.sendall(request)
            sockets.append(sock)
        seen = [read_until(sock, b'"phase": "waiting"') for sock in sockets]
        opened = time.monotonic() - started

        ctx.lifecycle.say(take_run(ctx, created.json()["id"]), Phase.FETCHING, "to every stream")
        started = time.monotonic()
        for sock, before in zip(sockets, seen):
            read_until(sock, b"to every stream", before)
        fanned_out = time.monotonic() - started
        print(f"{STREAMS} streams opened in {opened:.1f} s; one event reached them all in {fanned_out:.2f} s")
        assert fanned_out < 10
    finally:
        for sock in sockets:
            sock.close()
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(3)
        except subprocess.TimeoutExpired:  # threads of open streams hold the worker up to graceful_timeout
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)


def test_booklab_web_stops_at_once_on_a_missing_or_bad_setting(web_env, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **web_env, "BOOKLAB_GITLAB_CONSUMER_SECRET": ""}
    missing = subprocess.run(
        [sys.executable, "-m", "booklab.cli", "web"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 2
    assert "gitlab/consumer_secret is missing" in missing.stderr and "BOOKLAB_GITLAB_CONSUMER_SECRET" in missing.stderr
    env = {**env, "BOOKLAB_GITLAB_CONSUMER_SECRET": "s", "BOOKLAB_WEB_URL": "booklab.example.org"}
    bad = subprocess.run(
        [sys.executable, "-m", "booklab.cli", "web"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and "web/url must be a base URL" in bad.stderr
