"""/health and /metrics, against the real Redis and real runners of the test bed."""

from __future__ import annotations

import os

from booklab import config as config_module
from booklab import service
from booklab.context import Context
from booklab.phases import Phase
from booklab.web import create_app
from tests.fixtures.pipeline import run_to_end
from tests.fixtures.services import free_port, wait_until

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


def scrape(web_env) -> str:
    """/metrics as Prometheus reads it, from a web tier of its own."""
    context = Context(config_module.load(os.devnull, environ={**web_env, "BOOKLAB_WEB_METRICS_TOKEN": METRICS_TOKEN}))
    try:
        with create_app(context=context).test_client() as client:
            return client.get("/metrics", headers=AUTHORIZED).get_data(as_text=True)
    finally:
        context.close()


def test_metrics_count_deployments_runners_queue_and_durations(web_env, ctx, runners, alice, project):
    runners(2)
    request = service.request_deployment(ctx, project, "main", alice.token)
    assert run_to_end(ctx, request.id)[-1]["phase"] == "ready"
    text = scrape(web_env)
    assert metric(text, 'booklab_deployments{phase="ready"}') == 1
    assert metric(text, "booklab_queue_length") == 0
    assert metric(text, 'booklab_runners{state="busy"}') == 1
    assert metric(text, 'booklab_runners{state="free"}') == 1
    assert metric(text, "booklab_build_duration_seconds_count") == 1
    assert metric(text, "booklab_launch_duration_seconds_count") == 1
    assert 0 < metric(text, "booklab_build_duration_seconds_sum") < 300
    assert metric(text, 'booklab_launch_duration_seconds_bucket{le="+Inf"}') == 1


def test_launch_times_are_counted_by_outcome_in_binderhubs_buckets(web_env, ctx, runners, alice, project):
    """Built, then failed (its branch's build fails), then cached (the same commit again after a stop)."""
    runners(2)
    built = service.request_deployment(ctx, project, "main", alice.token)
    assert run_to_end(ctx, built.id)[-1]["phase"] == "ready"
    broken = service.request_deployment(ctx, project, "broken", alice.token)
    assert run_to_end(ctx, broken.id)[-1]["phase"] == "failed"
    service.stop(ctx, built.id)
    wait_until(lambda: ctx.deployments.status(built.id) is Phase.STOPPED, 60, "the notebook to stop")
    again = service.request_deployment(ctx, project, "main", alice.token)
    assert run_to_end(ctx, again.id)[-1]["phase"] == "ready"

    text = scrape(web_env)
    for outcome in ("built", "failed", "cached"):
        assert metric(text, f'booklab_launch_time_seconds_count{{outcome="{outcome}"}}') == 1, outcome
        assert metric(text, f'booklab_launch_time_seconds_bucket{{le="+Inf",outcome="{outcome}"}}') == 1
    assert metric(text, 'booklab_launch_time_seconds_bucket{le="600.0",outcome="cached"}') == 1
    assert metric(text, 'booklab_launch_time_seconds_bucket{le="0.5",outcome="built"}') == 0  # built, not instant
    bounds = [
        line.split('le="')[1].split('"')[0]
        for line in text.splitlines()
        if 'outcome="cached"' in line and "le=" in line
    ]
    assert bounds == ["0.5", "1.0", "2.0", "5.0", "10.0", "20.0", "30.0", "60.0", "120.0", "300.0", "600.0", "+Inf"]
