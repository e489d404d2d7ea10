"""Operations endpoints: ``/health`` (200, or 503 with the reason when Redis does not
answer or no runner is alive) and ``/metrics`` (Prometheus text format)."""

from __future__ import annotations

from typing import Any

import redis
from flask import Blueprint, Flask, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from booklab.metrics import RedisCollector

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> Any:
    ctx = current_app.extensions["booklab"]
    try:
        alive = ctx.runners.alive()
    except redis.RedisError:
        return jsonify({"status": "unavailable", "reason": "Redis does not answer."}), 503
    if not alive:
        return jsonify({"status": "unavailable", "reason": "No runner is alive: start one with `booklab runner`."}), 503
    return jsonify({"status": "ok", "runners": len(alive)})


@bp.get("/metrics")
def metrics() -> Any:
    try:
        body = generate_latest(current_app.extensions["booklab_metrics"])
    except redis.RedisError:
        return jsonify({"error": "Redis does not answer."}), 503
    return Response(body, content_type=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    registry = CollectorRegistry()
    registry.register(RedisCollector(app.extensions["booklab"].redis))
    app.extensions["booklab_metrics"] = registry
    app.register_blueprint(bp)
