"""Operations endpoints: ``/health`` (200, or 503 with the reason when Redis does not
answer or no runner is alive; open to all) and ``/metrics`` (Prometheus text format),
which answers only to the token of ``web/metrics_token`` (``Authorization: Bearer``) and
is off (404) while that setting is empty."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import redis
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from booklab.state.metrics import RedisCollector
from booklab.web.pages import context, context_of

bp = Blueprint("health", __name__)

METRICS_OFF = (
    "/metrics is off: set web/metrics_token (environment variable BOOKLAB_WEB_METRICS_TOKEN) "
    "and send it as 'Authorization: Bearer <token>'."
)
METRICS_REFUSED = "/metrics needs the token of web/metrics_token, sent as 'Authorization: Bearer <token>'."


@bp.get("/health")
def health() -> Any:
    ctx = context()
    try:
        alive = ctx.runners.alive()
    except redis.RedisError:
        return jsonify({"status": "unavailable", "reason": "Redis does not answer."}), 503
    if not alive:
        return jsonify({"status": "unavailable", "reason": "No runner is alive: start one with `booklab runner`."}), 503
    return jsonify({"status": "ok", "runners": len(alive)})


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def _metrics_refused() -> Any:
    """None when the request carries the metrics token; else the answer that says why not."""
    expected = context().config.web_metrics_token
    if not expected:
        return jsonify({"error": METRICS_OFF}), 404
    kind, _, sent = request.headers.get("Authorization", "").partition(" ")
    if kind.lower() == "bearer" and secrets.compare_digest(_digest(sent.strip()), _digest(expected)):
        return None
    return jsonify({"error": METRICS_REFUSED}), 401, {"WWW-Authenticate": 'Bearer realm="booklab metrics"'}


@bp.get("/metrics")
def metrics() -> Any:
    refused = _metrics_refused()
    if refused is not None:
        return refused
    try:
        body = generate_latest(current_app.extensions["booklab_metrics"])
    except redis.RedisError:
        return jsonify({"error": "Redis does not answer."}), 503
    return Response(body, content_type=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    registry = CollectorRegistry()
    registry.register(RedisCollector(context_of(app).redis))
    app.extensions["booklab_metrics"] = registry
    app.register_blueprint(bp)
