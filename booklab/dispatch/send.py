"""The messages Booklab sends to the runners, by task name: the chain of a run just queued,
and a save."""

from __future__ import annotations

from celery import chain

from booklab.context import Context
from booklab.dispatch import placement
from booklab.dispatch.app import app
from booklab.dispatch.queues import DEPLOYMENTS_QUEUE, runner_queue
from booklab.state.lifecycle import Run

#: the steps of a run, in order (:mod:`booklab.tasks.pipeline`)
STEPS = ("booklab.provision_key", "booklab.clone", "booklab.build", "booklab.run", "booklab.register_token")
SAVE = "booklab.save"


def deployment_chain(run: Run, queue: str = DEPLOYMENTS_QUEUE) -> chain:
    """provision key -> clone -> build -> run -> register token, for one run of a deployment
    (each task carries the run's id, ``<deployment>#<n>``, and passes it on); the first step to ``queue``."""
    first, *later = STEPS
    return chain(app.signature(first, args=(run.id,), queue=queue), *(app.signature(name) for name in later))


def queue_run(ctx: Context, run: Run, prefer: bool = True) -> None:
    """Send the chain of a run just queued to the runners (``prefer``: to a host that holds its image, when
    one of its runners is idle: :mod:`booklab.dispatch.placement`), and tell it its place."""
    ctx.queue.announce_positions(only=run.deployment)
    deployment_chain(run, placement.first_queue(ctx, run, prefer)).apply_async()


def save(runner: str, deployment_id: str, then_end: str, owner: str, run_id: str, claim: str, automatic: bool) -> None:
    """Have ``runner`` save the deployment's notebook (:mod:`booklab.tasks.saving`)."""
    args = [deployment_id, then_end, owner, run_id, claim, automatic]
    app.send_task(SAVE, args=args, queue=runner_queue(runner))
