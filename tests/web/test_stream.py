"""The event stream ``/build/gl/<path>/<ref>`` over real HTTP: BinderHub's format, resume
with Last-Event-ID without loss or repeat, keepalives, and never a second build."""

from __future__ import annotations

import json
import time

import requests

from booklab.phases import Phase
from booklab.state.vault import NOTEBOOK_TOKEN
from tests.fixtures.pipeline import events_of, make_ready, take_run


class Stream:
    """One open event stream, read as a browser's EventSource would."""

    def __init__(self, url: str, token: str, last_event_id: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self.response = requests.get(url, headers=headers, stream=True, timeout=30)
        self.lines = self.response.iter_lines(chunk_size=1, decode_unicode=True)
        self.comments: list[str] = []

    def next_event(self) -> tuple[str | None, dict]:
        event_id, data = None, []
        for line in self.lines:
            if line == "" and data:
                return event_id, json.loads("\n".join(data))
            if line.startswith(":"):
                self.comments.append(line)
            elif line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                data.append(line[6:])
        raise EOFError("the stream ended")

    def close(self) -> None:
        self.response.close()


def build_url(server: str) -> str:
    return f"{server}/build/gl/demo%2Fnotebooks/main"


def launch(server: str, user, project: str = "demo/notebooks") -> dict:
    answer = requests.post(
        f"{server}/api/deployments",
        json={"project": project, "ref": "main"},
        headers={"Authorization": f"Bearer {user.token}"},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_a_reconnect_resumes_after_the_last_event_id_without_loss_or_repeat(web_server, ctx, alice, plain_project):
    created = launch(web_server, alice)
    deployment, number = created["id"], created["requested_run"]
    run = take_run(ctx, deployment)
    for n in range(1, 6):
        ctx.lifecycle.say(run, Phase.FETCHING, f"line {n}")

    first = Stream(build_url(web_server), alice.token, last_event_id=f"{number}.0")
    assert first.response.headers["Content-Type"].startswith("text/event-stream")
    received = [first.next_event() for _ in range(4)]  # waiting, a runner took it, line 1, line 2
    first.close()  # the connection drops
    for n in range(6, 9):
        ctx.lifecycle.say(run, Phase.BUILDING, f"line {n}")

    second = Stream(build_url(web_server), alice.token, last_event_id=received[-1][0])
    received += [second.next_event() for _ in range(6)]  # lines 3 to 8
    ctx.vault.put(deployment, NOTEBOOK_TOKEN, b"the-notebook-token")
    make_ready(ctx, run, "http://127.0.0.1:1/")
    received += [second.next_event(), second.next_event()]  # launching, ready
    second.close()

    ids = [event_id for event_id, _ in received]
    assert ids == [f"{number}.{n}" for n in range(1, 13)]  # consecutive: nothing lost, nothing repeated
    assert [e["message"] for _, e in received[2:-2]] == [f"line {n}\n" for n in range(1, 9)]
    assert received[0][1]["phase"] == "waiting" and received[0][1]["position"] == 1
    ready = received[-1][1]
    assert ready["phase"] == "ready" and ready["token"] == "the-notebook-token"
    assert ready["url"] == "http://127.0.0.1:1/" and ready["deployment"] == deployment and ready["run"] == number
    # reconnecting started nothing: one request, one Celery message
    assert [e.data["phase"] for e in events_of(ctx, deployment)].count("waiting") == 1
    assert ctx.redis.llen("deployments") == 1


def test_a_fresh_stream_launches_and_a_reconnect_after_the_end_never_does(web_server, ctx, alice, plain_project):
    stream = Stream(build_url(web_server), alice.token)
    _, waiting = stream.next_event()
    assert waiting["phase"] == "waiting"
    deployment = f"{plain_project}:main:alice"
    assert ctx.deployments.status(deployment) is Phase.TODO and ctx.redis.llen("deployments") == 1

    stopped = requests.post(
        f"{web_server}/api/deployments/{deployment.replace('/', '%2F')}/stop",
        headers={"Authorization": f"Bearer {alice.token}"},
        timeout=30,
    )
    assert stopped.status_code == 202
    last_id, end = stream.next_event()
    assert end["phase"] == "stopped" and end["deployment"] == deployment
    stream.close()

    again = requests.get(
        build_url(web_server), timeout=30, headers={"Authorization": f"Bearer {alice.token}", "Last-Event-ID": last_id}
    )
    assert again.status_code == 204  # an EventSource stops reconnecting
    assert ctx.deployments.status(deployment) is Phase.STOPPED
    assert [e.data["phase"] for e in events_of(ctx, deployment)] == ["waiting", "stopped"]


def test_a_quiet_stream_sends_keepalives(web_server, web_app, ctx, alice, plain_project):
    deployment = launch(web_server, alice)["id"]
    stream = Stream(build_url(web_server), alice.token, last_event_id="1.0")
    stream.next_event()
    time.sleep(3.5 * web_app.config["BOOKLAB_KEEPALIVE"])  # the fixture's: 1 s instead of 25 s; room for 2 late ones
    run = take_run(ctx, deployment)
    stream.next_event()  # a runner took it
    ctx.lifecycle.say(run, Phase.FETCHING, "after the quiet")
    _, event = stream.next_event()
    stream.close()
    assert event["message"] == "after the quiet\n"
    assert stream.comments.count(":keepalive") >= 2


def test_a_stream_for_a_project_i_cannot_read_fails_and_creates_nothing(web_server, ctx, gitlab, alice):
    gitlab.add_user("bob")
    gitlab.add_project("demo/secret", members={"bob": 40})
    stream = Stream(f"{web_server}/build/gl/demo%2Fsecret/main", alice.token)
    _, event = stream.next_event()
    stream.close()
    assert event["phase"] == "failed" and "demo/secret was not found" in event["message"]
    assert ctx.redis.hgetall("status") == {} and ctx.redis.llen("deployments") == 0
