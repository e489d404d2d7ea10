"""A runner: one Celery worker with concurrency 1 that serves one notebook at a time.

While it holds a deployment it consumes only its own queue (the rest of that deployment's
chain); once the notebook is stopped, exits or is culled, it removes the container and
consumes the shared ``deployments`` queue again. It refreshes its heartbeat all along, and
when it starts again under the same name it adopts or removes what it left (:mod:`booklab.recovery`).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid

from celery import bootsteps

from booklab import key_sweeper, recovery, schema, steps
from booklab.config import Config
from booklab.context import Context, get_context
from booklab.culling import reason_to_end
from booklab.phases import Phase

log = logging.getLogger(__name__)


def runner_name(config: Config) -> str:
    """The configured name, or a new unique one."""
    return config.runner_name or f"runner-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"


def supervise(ctx: Context, name: str, consumer) -> None:
    """One check of the runner: heartbeat, lost runners, deploy keys to sweep, its notebook's
    life, the shared queue."""
    ctx.runners.beat(name)
    for lost in recovery.lost_runners(ctx):
        recovery.reap(ctx, lost)
    key_sweeper.sweep(ctx)
    held = ctx.runners.held(name)
    if held and held.get("deployment"):
        reason = reason_to_end(ctx, held)
        if reason is None:
            return
        log.info("ending %s: %s", held["deployment"], reason)
        steps.release(ctx, held["deployment"], name, Phase.STOPPED, reason)
    if not consumer.task_consumer.consuming_from(schema.DEPLOYMENTS_QUEUE):
        consumer.add_task_queue(schema.DEPLOYMENTS_QUEUE)
        log.info("%s is free and takes deployments again", name)


class Supervisor(bootsteps.StartStopStep):
    """Runs :func:`supervise` every ``runner/poll_interval`` seconds in the worker's main process."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        self._timer = None

    def start(self, c):
        ctx = get_context()
        ctx.runners.beat(c.hostname)
        try:
            recovery.resume(ctx, c.hostname)
        except Exception:  # Docker down: supervise() ends the held notebook if it is gone
            log.exception("%s could not look for what it left before a restart", c.hostname)
        if ctx.runners.held(c.hostname).get("deployment"):
            c.cancel_task_queue(schema.DEPLOYMENTS_QUEUE)  # one notebook at a time, adopted ones too
        self._timer = c.timer.call_repeatedly(ctx.config.runner_poll_interval, self._tick, (c,), priority=10)

    def _tick(self, c):
        try:
            supervise(get_context(), c.hostname, c)
        except Exception:  # keep supervising: a Redis or Docker hiccup must not stop the runner
            log.exception("supervising %s failed", c.hostname)

    def shutdown(self, c):
        if self._timer is not None:
            self._timer.cancel()
        ctx = get_context()
        held = ctx.runners.held(c.hostname)
        if held.get("deployment"):
            steps.release(ctx, held["deployment"], c.hostname, Phase.STOPPED, "The runner was shut down.")
        ctx.runners.retire(c.hostname)


def run_worker(config: Config, name: str | None = None, loglevel: str = "INFO") -> None:
    """Start one runner in this process (blocks until it is stopped)."""
    from booklab.tasks import app, configure

    configure(config)
    name = name or runner_name(config)
    os.makedirs(config.tmpdir, exist_ok=True)
    app.steps["consumer"].add(Supervisor)
    app.worker_main([
        "worker", "--hostname", name, "--concurrency", "1", "--pool", "prefork",
        "--queues", f"{schema.DEPLOYMENTS_QUEUE},{schema.runner_queue(name)}",
        "--loglevel", loglevel, "--task-events", "--without-gossip", "--without-mingle",
    ])
