"""The thin Celery tasks of a deployment: each runs one step of :mod:`booklab.steps` for a
deployment id and passes the id on; a failure ends the deployment with a ``failed``
event that says what to do, and frees the runner."""

from __future__ import annotations

import logging
from typing import Callable

import redis
from celery import Task
from celery.exceptions import Ignore

from booklab import schema, steps
from booklab.context import Context, get_context
from booklab.errors import BooklabError
from booklab.phases import Phase
from booklab.queueing import leave_queue
from booklab.tasks import app

log = logging.getLogger(__name__)

Step = Callable[[Context, str, str], None]


def _first_run(client: redis.Redis, task_id: str) -> bool:
    """False when this message already ran (the broker gave it again)."""
    return bool(client.set(schema.taskrun(task_id), "1", nx=True, ex=schema.TASKRUN_TTL))


def _run_step(task: Task, step: Step, deployment_id: str, claim: bool = False) -> str:
    ctx = get_context()
    runner = task.request.hostname
    if not _first_run(ctx.redis, task.request.id):
        log.warning("%s for %s was delivered again; it already ran", task.name, deployment_id)
        raise Ignore()
    if claim:
        _claim(ctx, runner, deployment_id)
    if ctx.deployments.stop_requested(deployment_id):
        steps.release(ctx, deployment_id, runner, Phase.STOPPED, "Stopped on request.")
        raise Ignore()
    try:
        step(ctx, deployment_id, runner)
    except BooklabError as e:
        log.info("%s failed for %s: %s", task.name, deployment_id, e)
        steps.release(ctx, deployment_id, runner, Phase.FAILED, str(e))
        raise Ignore() from None
    except Exception:
        log.exception("%s crashed for %s", task.name, deployment_id)
        steps.release(ctx, deployment_id, runner, Phase.FAILED,
                      f"Booklab failed unexpectedly while running {task.name}: "
                      "try again, and tell the operator if it happens again.")
        raise Ignore() from None
    return deployment_id


def _claim(ctx: Context, runner: str, deployment_id: str) -> None:
    """Hold the deployment and stop taking new ones until its notebook ends."""
    if ctx.deployments.status(deployment_id) is not Phase.TODO:
        leave_queue(ctx, deployment_id)
        raise Ignore()  # stopped, or taken already, while it waited
    ctx.runners.hold(runner, deployment_id)
    app.control.cancel_consumer(schema.DEPLOYMENTS_QUEUE, destination=[runner], reply=True, timeout=5)


@app.task(bind=True, name="booklab.provision_key", time_limit=180)
def provision_key(self: Task, deployment_id: str) -> str:
    return _run_step(self, steps.provision_key, deployment_id, claim=True)


@app.task(bind=True, name="booklab.clone", time_limit=900)
def clone(self: Task, deployment_id: str) -> str:
    return _run_step(self, steps.clone, deployment_id)


@app.task(bind=True, name="booklab.build")
def build(self: Task, deployment_id: str) -> str:
    return _run_step(self, steps.build, deployment_id)


@app.task(bind=True, name="booklab.run")
def run(self: Task, deployment_id: str) -> str:
    return _run_step(self, steps.run, deployment_id)


@app.task(bind=True, name="booklab.register_token", time_limit=60)
def register_token(self: Task, deployment_id: str) -> str:
    return _run_step(self, steps.register_token, deployment_id)
