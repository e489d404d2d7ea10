"""A runner: one Celery worker with concurrency 1 that serves one notebook at a time.

While it holds a deployment it consumes only its own queue (the rest of that deployment's
chain); once the notebook is stopped, exits or is culled, it removes the container and
consumes the shared ``deployments`` queue again. It refreshes its heartbeat all along, and
when it starts again under the same name it adopts or removes what it left (:mod:`booklab.runner.recovery`).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from contextlib import closing

import docker
from celery import bootsteps
from celery.worker import state as worker_state

from booklab.pipeline import key_sweeper
from booklab.pipeline import notebook_network
from booklab.runner import recovery
from booklab.saveback import save_back
from booklab.state import schema
from booklab.pipeline import teardown
from booklab.config import Config
from booklab.context import Context, get_context
from booklab.runner.culling import reason_to_end
from booklab.state.lifecycle import Run
from booklab.dispatch.app import app, configure
from booklab.dispatch.queues import CONCURRENCY, DEPLOYMENTS_QUEUE, runner_queue
from booklab.dispatch.send import queue_run
from booklab.phases import Phase

log = logging.getLogger(__name__)

#: seconds a deployment in preparation may have no step in hand before it is ended
CHAIN_GAP = 15


def runner_name(config: Config) -> str:
    """The configured name, or a new unique one."""
    return config.runner_name or f"runner-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"


class ChainWatch:
    """Notices a run whose chain of steps died without a word: held by this runner, being
    prepared or ending, and no step of it running, queued or scheduled here for
    :data:`CHAIN_GAP` seconds (a step that failed while Redis did not answer could not even
    say so; a process killed while it ended the run left its claim)."""

    def __init__(self) -> None:
        self.idle_since: float | None = None

    def died(self, status: Phase) -> bool:
        if status is Phase.READY or _steps_in_hand():
            self.idle_since = None
            return False
        now = time.monotonic()
        if self.idle_since is None:
            self.idle_since = now
        if now - self.idle_since < CHAIN_GAP:
            return False
        self.idle_since = None
        return True


class QueueWatch:
    """Notices a queued run that no runner takes: first in the queue for :data:`CHAIN_GAP`
    seconds while this runner was free to take it, so its chain was never sent (the process
    that queued it, behind the end of the run before, died first). Sends it again: a second
    chain of a run that is taken after all is refused by the claim."""

    def __init__(self) -> None:
        self.first: str | None = None
        self.since = 0.0

    def check(self, ctx: Context) -> None:
        first = next(iter(ctx.redis.zrange(schema.QUEUE, 0, 0)), None)
        now = time.monotonic()
        if first != self.first:
            self.first, self.since = first, now
            return
        if first is None or now - self.since < CHAIN_GAP:
            return
        self.since = now
        status, run, _ = ctx.lifecycle.current(first)
        if status is Phase.TODO and run is not None:
            log.warning("%s waited first in the queue with no runner taking it; sending it again", run)
            queue_run(ctx, run)

    def pause(self) -> None:
        """The runner holds a notebook: it is not free to take the first of the queue."""
        self.first = None


def _steps_in_hand() -> bool:
    return bool(worker_state.active_requests or worker_state.reserved_requests or worker_state.scheduled_requests)


def supervise(ctx: Context, name: str, consumer, watch: ChainWatch, queue: QueueWatch) -> None:
    """One check of the runner: heartbeat, lost runners, deploy keys to sweep, its notebook's
    life (or its preparation's), the shared queue."""
    ctx.runners.beat(name)
    for lost in recovery.lost_runners(ctx):
        recovery.reap(ctx, lost, by=name)
    key_sweeper.sweep(ctx)
    held = ctx.runners.held(name)
    if held.get("deployment") and _still_holds(ctx, name, held, watch):
        queue.pause()
        return
    if not consumer.task_consumer.consuming_from(DEPLOYMENTS_QUEUE):
        consumer.add_task_queue(DEPLOYMENTS_QUEUE)
        log.info("%s is free and takes deployments again", name)
        queue.pause()  # from now on
    elif not _steps_in_hand():
        queue.check(ctx)


def _still_holds(ctx: Context, name: str, held: dict[str, str], watch: ChainWatch) -> bool:
    """Look after the run the runner holds: end it when it must end; False once the runner is free."""
    run = Run.held(held)
    status, current, ending = ctx.lifecycle.current(run.deployment)
    if current != run or status is None or not status.is_active:
        log.warning("%s held %s, which is over; it is free again", name, run)
        ctx.runners.release(name, run.deployment, run.number)
        return False
    if not ending and (status is Phase.READY or (status is Phase.STOPPING and not _steps_in_hand())):
        watch.idle_since = None
        return _end_if_due(ctx, name, held, run, status)
    if watch.died(status):  # its steps, or its own end, were cut off: a claim they left is this runner's
        log.warning("the steps of %s ended without a word; ending it", run)
        if ctx.deployments.record(run.deployment).get("ready_at"):
            phase, message = Phase.STOPPED, "Stopping this notebook was cut off halfway; it is stopped now."
        else:
            phase, message = Phase.FAILED, ("Preparing this notebook stopped halfway (Booklab lost its state "
                                            "store for a moment): retry.")
        teardown.end(ctx, run, name, phase, message, take_over_from=name)
        return False
    return True


def _end_if_due(ctx: Context, name: str, held: dict[str, str], run: Run, status: Phase) -> bool:
    """End the runner's notebook if it was stopped, exited, idled or aged (saving it first when
    asked); False once it ended."""
    reason = reason_to_end(ctx, held, status)
    if reason is None:
        return True
    deployment_id = held["deployment"]
    saves = save_back.wanted(ctx, held)
    if save_back.under_way(ctx, deployment_id) or (saves and save_back.locked(ctx, deployment_id)):
        return True  # a save still reads the container (or failed a moment ago): end it after
    claim = ctx.lifecycle.claim_end(run, name)
    if claim is None:
        return True
    if saves:
        if save_back.request(ctx, deployment_id, then_end=reason, run=run, claim=claim.token):
            log.info("saving %s before it ends: %s", run, reason)
        else:
            ctx.lifecycle.give_back(run, claim)  # a Save now started in between: end it after
        return True  # the save ends it, or keeps it when it fails
    log.info("ending %s: %s", run, reason)
    teardown.release(ctx, run, name, claim.token, Phase.STOPPED, reason)
    return False


class Supervisor(bootsteps.StartStopStep):
    """Runs :func:`supervise` every ``runner/poll_interval`` seconds in the worker's main process."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        self._timer = None
        self._resumed = False
        self._watch = ChainWatch()
        self._queue = QueueWatch()

    def start(self, c):
        """At the runner's start, and again each time the consumer reconnects to the broker."""
        ctx = get_context()
        ctx.runners.beat(c.hostname)
        if not self._resumed:  # this process just started: what did an earlier one leave?
            try:
                recovery.resume(ctx, c.hostname)
            except Exception:  # Docker down: supervise() ends the held notebook if it is gone
                log.exception("%s could not look for what it left before a restart", c.hostname)
            self._resumed = True
        if ctx.runners.held(c.hostname).get("deployment"):
            c.cancel_task_queue(DEPLOYMENTS_QUEUE)  # one notebook at a time, adopted ones too
        self._timer = c.timer.call_repeatedly(ctx.config.runner_poll_interval, self._tick, (c,), priority=10)

    def _tick(self, c):
        try:
            supervise(get_context(), c.hostname, c, self._watch, self._queue)
        except Exception:  # keep supervising: a Redis or Docker hiccup must not stop the runner
            log.exception("supervising %s failed", c.hostname)

    def stop(self, c):
        """The consumer restarts (its broker connection was lost): start() runs again after."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def shutdown(self, c):
        self.stop(c)
        ctx = get_context()
        held = ctx.runners.held(c.hostname)
        run = Run.held(held)
        # its own steps are being stopped with it: their claim is taken over
        claim = ctx.lifecycle.claim_end(run, c.hostname, take_over_from=c.hostname) if run else None
        if run and claim and save_back.wanted(ctx, held) and not _saved_before_shutdown(ctx, held):
            ctx.lifecycle.keep(run, claim.token)
            log.error("%s keeps the notebook of %s, whose changes could not be saved: start the "
                      "runner again under the same name to serve it", c.hostname, held["deployment"])
            return
        if run and claim:
            teardown.release(ctx, run, c.hostname, claim.token, Phase.STOPPED, "The runner was shut down.")
        ctx.runners.retire(c.hostname)


def _saved_before_shutdown(ctx: Context, held: dict[str, str]) -> bool:
    """Save the held notebook now (the runner stops taking tasks); False when that failed
    and the notebook stays for the runner's next start."""
    if save_back.save_and_report(ctx, held["deployment"]) is None:
        return False
    save_back.unlock(ctx, held["deployment"])
    return True


def _check_notebook_network(config: Config) -> None:
    """Create the notebook network when missing; refuse to start on one where notebooks reach each other."""
    try:
        with closing(docker.from_env()) as client:
            notebook_network.ensure_isolated(client, config.notebook_network)
    except docker.errors.DockerException as e:  # the runner waits for Docker as for any outage
        log.warning("notebook/network was not checked: the Docker Engine did not answer (%s)", e)


def run_worker(config: Config, name: str | None = None, loglevel: str = "INFO") -> None:
    """Start one runner in this process (blocks until it is stopped)."""
    configure(config)
    name = name or runner_name(config)
    _check_notebook_network(config)
    os.makedirs(config.tmpdir, exist_ok=True)
    app.steps["consumer"].add(Supervisor)
    app.worker_main([
        "worker", "--hostname", name, "--concurrency", str(CONCURRENCY), "--pool", "prefork",
        "--queues", f"{DEPLOYMENTS_QUEUE},{runner_queue(name)}",
        "--loglevel", loglevel, "--task-events", "--without-gossip", "--without-mingle",
    ])
