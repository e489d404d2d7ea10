"""/health and /metrics, against the real Redis and real runners of the test bed."""

from __future__ import annotations

import os

from booklab import config as config_module
from booklab import service
from booklab.context import Context
from booklab.web import create_app
from tests.fixtures.pipeline import run_to_end
from tests.fixtures.services import free_port

METRICS_TOKEN = "metrics-t0ken"
AUTHORIZED = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def metric(text: str, line_start: str) -> float:
    """The value of the one sample whose line starts with ``line_start``."""
    values = [line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith(line_start)]
    assert len(values) == 1, (line_start, text)
    return float(values[0])


def test_health_is_503_without_a_live_runner_then_200(web_client, runners):
    answer = web_client.get("/health")
    assert answer.status_code == 503 and "No runner is alive" in answer.json["reason"]
    runners(1)
    answer = web_client.get("/health")
    assert answer.status_code == 200 and answer.json == {"status": "ok", "runners": 1}


def test_health_is_503_when_redis_does_not_answer(web_env):
    env = {
        **web_env,
        "BOOKLAB_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "BOOKLAB_WEB_METRICS_TOKEN": METRICS_TOKEN,
    }
    context = Context(config_module.load(os.devnull, environ=env))
    try:
        with create_app(context=context).test_client() as client:
            answer = client.get("/health")
            assert answer.status_code == 503 and answer.json["reason"] == "Redis does not answer."
            assert client.get("/metrics", headers=AUTHORIZED).status_code == 503
    finally:
        context.close()


def test_metrics_count_deployments_runners_queue_and_durations(web_env, ctx, runners, alice, project):
    runners(2)
    request = service.request_deployment(ctx, project, "main", alice.token)
    assert run_to_end(ctx, request.id)[-1]["phase"] == "ready"
    context = Context(config_module.load(os.devnull, environ={**web_env, "BOOKLAB_WEB_METRICS_TOKEN": METRICS_TOKEN}))
    try:
        with create_app(context=context).test_client() as client:
            text = client.get("/metrics", headers=AUTHORIZED).get_data(as_text=True)
    finally:
        context.close()
    assert metric(text, 'booklab_deployments{phase="ready"}') == 1
    assert metric(text, "booklab_queue_length") == 0
    assert metric(text, 'booklab_runners{state="busy"}') == 1
    assert metric(text, 'booklab_runners{state="free"}') == 1
    assert metric(text, "booklab_build_duration_seconds_count") == 1
    assert metric(text, "booklab_launch_duration_seconds_count") == 1
    assert 0 < metric(text, "booklab_build_duration_seconds_sum") < 300
    assert metric(text, 'booklab_launch_duration_seconds_bucket{le="+Inf"}') == 1
