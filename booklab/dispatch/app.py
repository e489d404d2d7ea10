"""Booklab's Celery app, configured from :mod:`booklab.dispatch.settings` and Booklab's own
configuration (:func:`configure`)."""

from __future__ import annotations

import logging
import threading

import docker
import redis
import requests
from celery import Celery
from celery.signals import worker_process_init
from kombu.exceptions import OperationalError

from booklab.config import Config
from booklab.context import Context, get_context, set_context
from booklab.state.build_claims import claim_ttl

#: seconds the first step may take for its own work, beside a wait for another launch's build
PROVISION_KEY_LIMIT = 900

log = logging.getLogger(__name__)

app = Celery("booklab", include=["booklab.tasks.pipeline", "booklab.tasks.saving"])
app.config_from_object("booklab.dispatch.settings")
#: the configuration :func:`configure` was given last: a runner's pool process acts with its runner's own
_configured: Config | None = None


def configure(config: Config) -> Celery:
    """Point the app at Booklab's Redis and apply the configured limits."""
    global _configured
    _configured = config
    app.conf.broker_url = config.redis_url
    timeout = config.broker_visibility_timeout
    app.conf.broker_transport_options = {
        # a message not acknowledged within the timeout (its runner died) is given again,
        # looked for every few seconds by the runners that poll
        "visibility_timeout": timeout,
        "unacked_restore_interval": max(1, min(10, timeout // 2)),
        "unacked_restore_throttle": 1,
    }
    app.conf.task_annotations = {
        # its own work (a pull from the registry included), and a wait for another launch's build of the image;
        # or, for a run that claimed a warm spare, the whole launch
        "booklab.provision_key": {"time_limit": PROVISION_KEY_LIMIT + claim_ttl(config.build_timeout)},
        "booklab.build": {"time_limit": config.build_timeout + 120},
        "booklab.run": {"time_limit": config.notebook_ready_timeout + config.routes_timeout + 120},
    }
    return app


@worker_process_init.connect
def _fresh_clients_after_fork(**_):
    """Redis and Docker connections must not be shared with the parent process: the child builds its own context
    now rather than in its first launch, from its runner's configuration (``booklab runner --config`` too) and
    without the short waits for GitLab of the runner's checks (:attr:`Context.gitlab_wait`: its steps wait
    ``gitlab/timeout``), and opens its own connections now too (to Redis, the Docker Engine and the broker), so
    that its first run does not wait for them (a warm launch takes a tenth of a second)."""
    set_context(None if _configured is None else Context(_configured))
    # beside the process's start, which billiard gives 4 s: an engine or a Redis that does not answer must
    # not hold it up (a run that comes meanwhile opens what it needs itself)
    threading.Thread(target=_connect_ahead, args=(get_context(),), name="connect-ahead", daemon=True).start()


def _connect_ahead(ctx: Context) -> None:
    """Open the connections a run needs first; one that fails now is opened again when a run needs it."""
    try:
        ctx.redis.ping()
        ctx.route_tree.ping()
        ctx.docker.ping()
        with app.producer_or_acquire() as producer:  # the messages of a run's next steps go through it
            producer.connection.ensure_connection(max_retries=1)
    except (redis.RedisError, docker.errors.DockerException, requests.RequestException, OperationalError) as e:
        log.warning("a connection could not be opened ahead of the first run: %s", e)
