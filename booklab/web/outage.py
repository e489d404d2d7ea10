"""Redis outages: while Booklab's state store (Redis, also the Celery broker) does not
answer, every page and API call answers 503 with a message saying so (JSON under
``/api/`` and ``/build/``), not a 500 with a traceback. Nothing is remembered between
requests: redis-py reconnects by itself, so the first request after Redis is back is
served as usual, without a restart.

A session that Redis could not read or save is neither dropped nor replaced
(:mod:`booklab.web.sessions`): the user is not logged out, and comes back to their
session once Redis answers.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask, Response, current_app, request
from kombu.exceptions import OperationalError

from booklab.web.pages import error_page

log = logging.getLogger(__name__)

TITLE = "Booklab is unavailable"
MESSAGE = "Booklab's state store (Redis) does not answer; try again in a moment."
#: seconds a client is asked to wait before trying again
RETRY_AFTER = 5


def unavailable() -> Response:
    """The 503 answer: a page, or JSON for the API and event streams."""
    response = current_app.make_response(error_page(503, TITLE, MESSAGE))
    response.headers["Retry-After"] = str(RETRY_AFTER)
    response.headers["Cache-Control"] = "no-store"
    return response


def replace_with_unavailable(response: Response) -> None:
    """Make ``response``, not sent yet, the 503 answer (its session could not be saved,
    so what it says happened did not entirely)."""
    answer = unavailable()
    response.status_code = answer.status_code
    response.headers = answer.headers
    response.response = answer.response
    response.direct_passthrough = False


def _redis_down(exc: Exception) -> Any:
    log.warning("Redis does not answer (%s): %s %s answered 503", type(exc).__name__, request.method, request.path)
    return unavailable()


def init_app(app: Flask) -> None:
    app.register_error_handler(redis.RedisError, _redis_down)  # ConnectionError, TimeoutError, ...
    app.register_error_handler(OperationalError, _redis_down)  # Celery could not reach its broker
