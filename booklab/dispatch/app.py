"""Booklab's Celery app, configured from :mod:`booklab.dispatch.settings` and Booklab's own
configuration (:func:`configure`)."""

from __future__ import annotations

from celery import Celery
from celery.signals import worker_process_init

from booklab.config import Config
from booklab.context import get_context, set_context
from booklab.state.build_claims import claim_ttl

#: seconds the first step may take for its own work, beside a wait for another launch's build
PROVISION_KEY_LIMIT = 900

app = Celery("booklab", include=["booklab.tasks.pipeline", "booklab.tasks.saving"])
app.config_from_object("booklab.dispatch.settings")


def configure(config: Config) -> Celery:
    """Point the app at Booklab's Redis and apply the configured limits."""
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
        # its own work (a pull from the registry included), and a wait for another launch's build of the image
        "booklab.provision_key": {"time_limit": PROVISION_KEY_LIMIT + claim_ttl(config.build_timeout)},
        "booklab.build": {"time_limit": config.build_timeout + 120},
        "booklab.run": {"time_limit": config.notebook_ready_timeout + config.routes_timeout + 120},
    }
    return app


@worker_process_init.connect
def _fresh_clients_after_fork(**_):
    """Redis and Docker connections must not be shared with the parent process: the child reads its
    configuration now rather than in its first launch, and makes its own connections as it needs them."""
    set_context(None)
    get_context()
