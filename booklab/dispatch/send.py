"""The messages Booklab sends to the runners, by task name: the chain of a run just queued,
and a save."""

from __future__ import annotations

from celery import chain

from booklab.context import Context
from booklab.dispatch import placement
from booklab.dispatch.app import app
from booklab.dispatch.queues import DEPLOYMENTS_QUEUE, FIRST_STEP, runner_queue
from booklab.state.lifecycle import Run

#: the steps of a run, in order (:mod:`booklab.tasks.pipeline`)
STEPS = (FIRST_STEP, "booklab.clone", "booklab.build", "booklab.run", "booklab.register_token")
SAVE = "booklab.save"


def deployment_chain(run: Run, queue: str = DEPLOYMENTS_QUEUE, steps: tuple[str, ...] = STEPS) -> chain:
    """provision key -> clone -> build -> run -> register token (or other ``steps``), for one run of a
    deployment (each task carries the run's id, ``<deployment>#<n>``, and passes it on); the first step to
    ``queue`` (empty: where :mod:`booklab.dispatch.routing` sends it)."""
    first, *later = steps
    to_queue = {"queue": queue} if queue else {}
    return chain(app.signature(first, args=(run.id,), **to_queue), *(app.signature(name) for name in later))


def queue_run(ctx: Context, run: Run, prefer: bool = True) -> None:
    """Send the chain of a run just queued to the runners (``prefer``: to the runner of a warm spare it claims,
    else to a host that holds its image when one of its runners is idle: :mod:`booklab.dispatch.placement`),
    and tell it its place. A run that claimed a spare is one step: its first, which checks the branch, then
    launches the spare and announces ``ready`` (no message between them while its user waits;
    :func:`prepare_after_all` when it cannot use the spare)."""
    ctx.queue.announce_positions(only=run.deployment)
    queue = placement.first_queue(ctx, run, prefer)
    # a runner's own queue has a first step only when the run claimed that runner's spare
    if queue.startswith(runner_queue("")):
        app.signature(FIRST_STEP, args=(run.id,), kwargs={"warm": True}, queue=queue).apply_async()
    else:
        deployment_chain(run, queue).apply_async()


def prepare_after_all(run: Run) -> None:
    """A run that claimed a warm spare it cannot use (its branch moved): its clone, build, launch and token
    follow, on its runner (:mod:`booklab.dispatch.routing`)."""
    deployment_chain(run, queue="", steps=STEPS[1:]).apply_async()


def save(runner: str, deployment_id: str, then_end: str, owner: str, run_id: str, claim: str, automatic: bool) -> None:
    """Have ``runner`` save the deployment's notebook (:mod:`booklab.tasks.saving`)."""
    args = [deployment_id, then_end, owner, run_id, claim, automatic]
    app.send_task(SAVE, args=args, queue=runner_queue(runner))
