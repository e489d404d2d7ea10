"""The thin Celery tasks of a deployment: each runs one step of :mod:`booklab.pipeline.steps` for a
run (``<deployment>#<n>``) and passes the run's id on; a stopped run ends at its next step
(or at its next event) with ``stopped``; a failure ends the deployment with a ``failed``
event that says what to do, and frees the runner."""

from __future__ import annotations

import logging
from typing import Callable

import redis
from celery import Task
from celery.exceptions import Ignore, Reject

from booklab.context import Context, get_context
from booklab.dispatch import send
from booklab.dispatch.app import app
from booklab.dispatch.queues import runner_queue
from booklab.errors import BooklabError, DockerUnavailable, Moved
from booklab.phases import Phase
from booklab.pipeline import r2d_process, steps, teardown, warm_launch
from booklab.pipeline.transient import as_booklab_error, backoff
from booklab.state import schema
from booklab.state.lifecycle import Run
from booklab.state.spares import Spare, Taken
from booklab.state.vault import GITLAB_TOKEN

log = logging.getLogger(__name__)

Step = Callable[[Context, Run, str], None]


def _first_run(client: redis.Redis, task: Task) -> bool:
    """False when this message already ran (the broker gave it again); each retry of a
    step is a message of its own."""
    return bool(client.set(_taskrun(task), "1", nx=True, ex=schema.TASKRUN_TTL))


def _taskrun(task: Task) -> str:
    return schema.taskrun(f"{task.request.id}:{task.request.retries}")


def _from_own_queue(task: Task, runner: str) -> bool:
    """Whether the message came from the runner's own queue (a launch that claimed its spare)."""
    return (task.request.delivery_info or {}).get("routing_key") == runner_queue(runner)


def _run_step(task: Task, step: Step, run_id: str, claim: bool = False) -> str:
    ctx = get_context()
    runner, run = task.request.hostname, Run.parse(run_id)
    if claim and ctx.runners.held(runner).get("deployment") not in (None, run.deployment):
        if _from_own_queue(task, runner):  # a launch that claimed its spare, queued again since it never came
            log.warning("%s serves a notebook already; %s came too late to its spare", runner, run)
            raise Ignore()
        # taken in the instant a runner that serves a notebook reconnected to the broker
        log.warning("%s serves a notebook already; %s goes back to the queue", runner, run)
        raise Reject("the runner serves a notebook already", requeue=True)
    if not _first_run(ctx.redis, task):
        log.warning("%s for %s was delivered again; it already ran", task.name, run)
        raise Ignore()
    taken, spare = ctx.spares.take(runner, run.id) if claim else (Taken.NONE, None)
    if taken is Taken.OTHER:  # a launch claimed this idle runner's spare in the instant it took this run
        log.info("%s serves the launch that claimed its spare first; %s goes back to the queue", runner, run)
        ctx.redis.delete(_taskrun(task))  # given back, not run: its next delivery runs
        raise Reject("the runner's spare was claimed by another launch", requeue=True)
    if taken is Taken.DROPPED:
        warm_launch.remove(ctx, spare.container)  # before the run's steps: it takes memory a build may want
    done = False
    try:
        if claim and not task.request.retries:
            _claim(ctx, runner, run, spare if taken is Taken.MINE else None)
        status, current, _ = ctx.lifecycle.current(run.deployment)
        if current != run or status is None or not status.is_joinable:
            _end_stopped(ctx, run, runner)
        step(ctx, run, runner)
        done = True
    except Ignore:
        raise
    except Moved as moved:  # stopped while the step ran (or a move the table does not know: a bug)
        if moved.current == run.number and moved.phase is Phase.STOPPING:
            _end_stopped(ctx, run, runner)
        if moved.current == run.number and moved.phase is not None and moved.phase.is_active:
            _end_crashed(ctx, run, runner, task)
        raise Ignore() from None
    except Exception as exc:  # every failure ends in a retry or in a final event
        error = as_booklab_error(exc)
        if error is None:
            log.exception("%s crashed for %s", task.name, run)
            _end_crashed(ctx, run, runner, task)
            raise Ignore() from None
        message = str(error)
        if isinstance(error, DockerUnavailable) and not _engine_answers(ctx):
            if _hand_back(ctx, run, runner, error):
                raise Ignore() from None
            message += f" Gave up after {ctx.config.retry_attempts} tries."
        elif error.transient:
            try:
                _retry_later(task, ctx, run, runner, error)
            except Moved:  # stopped meanwhile: no try left to tell about
                _end_stopped(ctx, run, runner)
            message += f" Gave up after {ctx.config.retry_attempts} tries."
        log.info("%s failed for %s: %s", task.name, run, message)
        teardown.end(ctx, run, runner, Phase.FAILED, message)
        raise Ignore() from None
    finally:
        if not done:  # the run goes no further here: no build follows
            r2d_process.drop_ahead()
    return run_id


def _end_crashed(ctx: Context, run: Run, runner: str, task: Task) -> None:
    """End the run after a bug (Booklab's, not the repository's or GitLab's)."""
    teardown.end(
        ctx,
        run,
        runner,
        Phase.FAILED,
        f"Booklab failed unexpectedly while running {task.name}: try again, and tell the operator if it happens again.",
    )


def _end_stopped(ctx: Context, run: Run, runner: str) -> None:
    """The run was stopped (or is over): end it, unless someone else does; the chain goes no further."""
    teardown.end(ctx, run, runner, Phase.STOPPED, "Stopped on request.")
    raise Ignore()


def _engine_answers(ctx: Context) -> bool:
    """Whether this runner's Docker Engine answers now (a failure of one of its calls says only that it
    failed: a 5xx is tried again here, not elsewhere, where a hostile repository would be built again)."""
    try:
        return bool(ctx.docker.ping())
    except Exception:  # whatever docker-py raises for an engine gone: none of it is a bug here
        return False


def _hand_back(ctx: Context, run: Run, runner: str, error: BooklabError) -> bool:
    """This runner's Docker Engine does not answer: give the run back to the queue for a runner whose engine
    answers (this one takes none until its own does), unless it went back ``retry/attempts`` times already,
    its notebook started (the user's GitLab token is gone: no one could prepare it again) or it is no longer
    this runner's; False then, and the error ends the run."""
    handed_back = int(ctx.deployments.record(run.deployment).get("handed_back") or 0)
    return (
        handed_back + 1 < ctx.config.retry_attempts
        and ctx.vault.find(run.deployment, GITLAB_TOKEN) is not None
        and teardown.hand_back(ctx, run, runner, str(error))
    )


def _retry_later(task: Task, ctx: Context, run: Run, runner: str, error: BooklabError) -> None:
    """Send the step again to this runner after a backoff, telling the run's log; returns
    only when the tries are used up (the error then ends the deployment)."""
    tries, config = task.request.retries + 1, ctx.config
    if tries >= config.retry_attempts:
        return
    delay = max(backoff(task.request.retries, config.retry_first_delay, config.retry_max_delay), error.retry_after)
    log.warning("%s for %s: %s; try %d of %d in %.1f s", task.name, run, error, tries + 1, config.retry_attempts, delay)
    phase = ctx.deployments.status(run.deployment) or Phase.FETCHING
    ctx.lifecycle.say(
        run, phase, f"{error} Trying again in {delay:.1f} s (try {tries + 1} of {config.retry_attempts})."
    )
    # shown in Flower as a retry of the task, with the error
    raise task.retry(exc=error, countdown=delay, max_retries=None, queue=runner_queue(runner))


def _claim(ctx: Context, runner: str, run: Run, spare: Spare | None) -> None:
    """Hold the run (its runner's main process stopped taking others when it received this step:
    :func:`booklab.runner.worker.take_no_other_deployment`); the runner's ``spare``, which the run claimed, is
    the run's."""
    if not ctx.lifecycle.claim(run, runner):
        if spare is not None:
            warm_launch.remove(ctx, spare.container)
        raise Ignore()  # stopped, or taken already, while it waited
    if spare is not None:
        warm_launch.hand_to(ctx, run, runner, spare)
    ctx.queue.announce_positions()


# its time limit is configured (booklab.dispatch.app): a wait for another launch's build of the image included
@app.task(bind=True, name="booklab.provision_key")
def provision_key(self: Task, run_id: str, warm: bool = False) -> str:
    """The first step; ``warm``: the run claimed this runner's spare, and this one step serves it
    (:func:`booklab.dispatch.send.queue_run`)."""
    return _run_step(self, _serve_with_spare if warm else steps.provision_key, run_id, claim=True)


def _serve_with_spare(ctx: Context, run: Run, runner: str) -> None:
    """Check the branch with its user's token (:func:`steps.serve_spare`), then launch the spare as the run's
    notebook and announce ``ready``; a try again once the branch was checked (its run past ``fetching``) goes
    on from the launch. A spare of no use (the branch moved) and the run is prepared as any other."""
    if ctx.deployments.status(run.deployment) is Phase.FETCHING and not steps.serve_spare(ctx, run, runner):
        steps.provision_key(ctx, run, runner)
        send.prepare_after_all(run)  # this step ends well: the build's repo2docker started ahead is kept
        return
    steps.run(ctx, run, runner)  # a run that only builds never claims a spare
    steps.register_token(ctx, run, runner)


@app.task(bind=True, name="booklab.clone", time_limit=900)
def clone(self: Task, run_id: str) -> str:
    return _run_step(self, steps.clone, run_id)


@app.task(bind=True, name="booklab.build")
def build(self: Task, run_id: str) -> str:
    return _run_step(self, steps.build, run_id)


@app.task(bind=True, name="booklab.run")
def run(self: Task, run_id: str) -> str:
    return _run_step(self, _launch_unless_build_only, run_id)


def _launch_unless_build_only(ctx: Context, run: Run, runner: str) -> None:
    """Launch the notebook; a run that only builds an image for warm spares ends here instead."""
    if not ctx.deployments.record(run.deployment).get("build_only"):
        steps.run(ctx, run, runner)
        return
    teardown.end(ctx, run, runner, Phase.STOPPED, steps.built_for_spares(ctx, run, runner))
    raise Ignore()


@app.task(bind=True, name="booklab.register_token", time_limit=60)
def register_token(self: Task, run_id: str) -> str:
    return _run_step(self, steps.register_token, run_id)
