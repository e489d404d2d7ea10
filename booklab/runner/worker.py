"""A runner: one Celery worker with concurrency 1 that serves one notebook at a time.

While it holds a deployment it consumes only its own queue (the rest of that deployment's
chain); once the notebook is stopped, exits or is culled, it removes the container and
consumes the shared ``deployments`` queue again. What it checks all along is
:mod:`booklab.runner.supervisor`; when it starts again under the same name it adopts or removes
what it left (:mod:`booklab.runner.recovery`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from contextlib import closing

import docker
import requests
from celery import bootsteps, signals
from celery.worker import state as worker_state

from booklab.config import Config, is_loopback
from booklab.context import Context, get_context, set_context
from booklab.dispatch.app import app, configure
from booklab.dispatch.queues import (
    CONCURRENCY,
    DEPLOYMENTS_QUEUE,
    FIRST_STEP,
    is_host_queue,
    runner_queue,
    shared_queues,
)
from booklab.phases import Phase
from booklab.pipeline import image_cleaner, notebook_firewall, notebook_network, teardown
from booklab.runner import recovery, warming
from booklab.runner.culling import ActivityWatch
from booklab.runner.supervisor import GITLAB_WAIT, ChainWatch, QueueWatch, supervise
from booklab.saveback import protocol
from booklab.state.lifecycle import Run

log = logging.getLogger(__name__)

#: why a runner's notebook ends when the runner stops
SHUT_DOWN = "The runner was shut down."
#: seconds after its start before a runner first cleans its host's images
FIRST_CLEANING = 5


def runner_name(config: Config) -> str:
    """The configured name, or a new unique one."""
    return config.runner_name or f"runner-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"


def _steps_in_hand() -> bool:
    """Whether a task is running, queued or scheduled in this worker."""
    state = worker_state
    return bool(state.active_requests or state.reserved_requests or state.scheduled_requests)


class ImageCleaning(threading.Thread):
    """Cleans the images of the runner's Docker Engine (:mod:`booklab.pipeline.image_cleaner`)
    soon after the runner starts, which reports what the host keeps, then every
    ``images/clean_interval`` seconds: in a thread of its own, with a context of its own, so that a
    long cleaning never holds up the runner's heartbeat or its supervision."""

    def __init__(self, config: Config, runner: str) -> None:
        super().__init__(name=f"image-cleaning-{runner}", daemon=True)
        self.config = config
        self.runner = runner
        self.stopped = threading.Event()

    def run(self) -> None:
        ctx = Context(self.config)
        try:
            wait = FIRST_CLEANING
            while not self.stopped.wait(wait):
                try:
                    image_cleaner.clean(ctx)
                except Exception:  # clean next time: a Redis or Docker hiccup must not stop the runner
                    log.exception("%s could not clean the images of its Docker Engine", self.runner)
                wait = self.config.images_clean_interval
        finally:
            ctx.close()

    def stop(self) -> None:
        self.stopped.set()


class Supervisor(bootsteps.StartStopStep):
    """Runs :func:`~booklab.runner.supervisor.supervise` every ``runner/poll_interval`` seconds in
    the worker's main process, and takes deployments again once the runner is free."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        self._timer = None
        self._cleaning: ImageCleaning | None = None
        self._resumed = False
        self._watch = ChainWatch()
        self._activity = ActivityWatch()
        self._queue = QueueWatch()

    def start(self, c):
        """At the runner's start, and again each time the consumer reconnects to the broker."""
        ctx = get_context()
        ctx.runners.beat(c.hostname, _docker_host(ctx))  # its host first: a claim stops that host's queue too
        if not self._resumed:  # this process just started: what did an earlier one leave?
            try:
                recovery.resume(ctx, c.hostname)
            except Exception:  # Docker down: supervise() ends the held notebook if it is gone
                log.exception("%s could not look for what it left before a restart", c.hostname)
            self._resumed = True
        if ctx.runners.held(c.hostname).get("deployment"):
            _stop_consuming_shared_queues(c)  # one notebook at a time, adopted ones too
        self._timer = c.timer.call_repeatedly(ctx.config.runner_poll_interval, self._tick, (c,), priority=10)
        if self._cleaning is None:  # one for the process: it goes on while the consumer reconnects
            self._cleaning = ImageCleaning(ctx.config, c.hostname)
            self._cleaning.start()

    def _tick(self, c):
        try:
            self._supervise(get_context(), c)
        except Exception:  # keep supervising: a Redis or Docker hiccup must not stop the runner
            log.exception("supervising %s failed", c.hostname)

    def _supervise(self, ctx: Context, c) -> None:
        in_hand = _steps_in_hand()
        host = _docker_host(ctx)
        if not supervise(ctx, c.hostname, self._watch, in_hand, host, self._activity):
            self._queue.pause()  # it holds a notebook: not free to take the first of the queue
            return
        if not host:  # a deployment it took would go back to the queue: leave them to runners of other engines
            if _stop_consuming_shared_queues(c):
                log.warning("%s takes no deployment until its Docker Engine answers", c.hostname)
            warming.forget(ctx, c.hostname)  # no launch may claim a spare here now
            self._queue.pause()
            return
        warm = ctx.config.warm_projects or ctx.config.warm_recent
        if warm and not in_hand and warming.claimed(ctx, c.hostname):
            warming.tend(ctx, c.hostname)  # a launch on its way to its spare: it takes no other first
            self._queue.pause()
            return
        missing = [queue for queue in shared_queues(host) if not c.task_consumer.consuming_from(queue)]
        if missing and not in_hand:  # a run received and not yet claimed holds it too
            notebook_firewall.ensure(ctx.docker, ctx.config)  # no deployment without the rules it asks for
            for queue in missing:
                c.add_task_queue(queue)
            log.info("%s is free and takes deployments again", c.hostname)
            self._queue.pause()  # from now on
        elif not in_hand:
            self._queue.check(ctx)
            if warm:
                warming.tend(ctx, c.hostname)
                warming.refresh(ctx, c.hostname, beat=lambda: ctx.runners.beat(c.hostname, host))

    def stop(self, c):
        """The consumer restarts (its broker connection was lost): start() runs again after."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def shutdown(self, c):
        self.stop(c)
        if self._cleaning is not None:
            self._cleaning.stop()
        ctx = get_context()
        ctx.gitlab_wait = None  # its checks are over: a save of its notebook waits for GitLab as a step does
        held = ctx.runners.held(c.hostname)
        run = Run.held(held)
        # its own steps are being stopped with it: their claim is taken over
        claim = ctx.lifecycle.claim_end(run, c.hostname, take_over_from=c.hostname) if run else None
        if run and claim and protocol.wanted(ctx, held):
            automatic = claim.before is not Phase.STOPPING  # its user's Stop keeps the notebook if the save fails
            if protocol.save_then_end(ctx, run, c.hostname, claim.token, SHUT_DOWN, automatic) is None:
                log.error(
                    "%s keeps the notebook of %s, whose changes could not be saved: start the "
                    "runner again under the same name to serve it",
                    c.hostname,
                    held["deployment"],
                )
                return
        elif run and claim:
            teardown.release(ctx, run, c.hostname, claim.token, Phase.STOPPED, SHUT_DOWN)
        warming.forget(ctx, c.hostname)
        ctx.runners.retire(c.hostname)


@signals.task_received.connect
def take_no_other_deployment(sender, request, **_) -> None:
    """The runner's main process received the first step of a run (from the shared queue, its host's or its own):
    it stops consuming the shared queues, in its event loop right after this, before the step's message is done
    with, so that this run is the last it takes until it is free again (:meth:`Supervisor._supervise`)."""
    if request.name == FIRST_STEP:
        sender.call_soon(_stop_consuming_shared_queues, sender)


def _stop_consuming_shared_queues(c) -> bool:
    """Stop consuming the queues of an idle runner (its own stays); whether it consumed any."""
    taken = [q.name for q in c.task_consumer.queues if q.name == DEPLOYMENTS_QUEUE or is_host_queue(q.name)]
    for queue in taken:
        c.cancel_task_queue(queue)
    return bool(taken)


def _docker_host(ctx: Context) -> str:
    """The host of the runner's Docker Engine (the operator's page shows it); empty while the
    engine does not answer."""
    try:
        ctx.docker.ping()
        return ctx.docker_host
    except (docker.errors.DockerException, requests.RequestException):
        return ""


def _check_notebook_network(config: Config) -> str:
    """Create the notebook network when missing; refuse to start on one where notebooks reach each other, or
    without the firewall rules notebook/reachable_from and notebook/unreachable ask for. The Docker Engine's
    host; empty when the engine does not answer."""
    try:
        with closing(docker.from_env()) as client:
            notebook_network.ensure_isolated(client, config.notebook_network)
            notebook_firewall.ensure(client, config)
            if (
                config.notebook_publish
                and not notebook_firewall.wanted(config)
                and not is_loopback(config.notebook_host)
            ):
                log.warning(
                    "notebooks are published on %s for anyone who reaches it: set notebook/reachable_from to "
                    "Traefik's host (docs/SCALING.md)",
                    config.notebook_host,
                )
            return client.info()["Name"]
    except docker.errors.DockerException as e:  # the runner waits for Docker as for any outage
        log.warning("notebook/network was not checked: the Docker Engine did not answer (%s)", e)
        return ""


def _check_images_disk(config: Config) -> None:
    """Refuse to start when images/max_disk is a share of a Docker data disk the runner cannot see."""
    try:
        with closing(docker.from_env()) as client:
            image_cleaner.check_disk(config, client)
    except docker.errors.DockerException as e:  # checked again at each cleaning
        log.warning("images/max_disk was not checked: the Docker Engine did not answer (%s)", e)


def run_worker(config: Config, name: str | None = None, loglevel: str = "INFO") -> None:
    """Start one runner in this process (blocks until it is stopped)."""
    configure(config)
    name = name or runner_name(config)
    host = _check_notebook_network(config)
    _check_images_disk(config)
    os.makedirs(config.tmpdir, exist_ok=True)
    # the context of this (main) process, where the runner's checks run; its pool process makes its own
    set_context(Context(config, gitlab_wait=GITLAB_WAIT))
    app.steps["consumer"].add(Supervisor)
    app.worker_main(
        [
            "worker",
            "--hostname",
            name,
            "--concurrency",
            str(CONCURRENCY),
            "--pool",
            "prefork",
            "--queues",
            ",".join([*shared_queues(host), runner_queue(name)]),
            "--loglevel",
            loglevel,
            "--task-events",
            "--without-gossip",
            "--without-mingle",
        ]
    )
