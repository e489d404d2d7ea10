"""The end of a run, whatever step or whoever ends it (its chain on a failure, its runner's
supervisor on a Stop, a cull or an exit, recovery, a runner's shutdown, a save before the
end): :func:`end` claims it, :func:`release` undoes what the steps left behind (deploy key,
secrets, checkout, route, container, the claim of its image's build), frees the runner and starts
the run queued behind."""

from __future__ import annotations

import contextlib
import logging
import shutil
import time

import docker
import requests

from booklab.context import Context
from booklab.dispatch.send import queue_run
from booklab.phases import Phase
from booklab.pipeline import access, hub_launch, launcher, one_build
from booklab.pipeline.steps import checkout_dir
from booklab.state import metrics
from booklab.state.lifecycle import Run
from booklab.state.vault import NOTEBOOK_TOKEN, SAVE_TOKEN

log = logging.getLogger(__name__)


def end(ctx: Context, run: Run, runner: str, phase: Phase, message: str, take_over_from: str = "") -> bool:
    """Claim the end of ``run``, which ``runner`` holds, and :func:`release` it in ``phase``;
    False when someone else ends it (or it is over). ``take_over_from``: a runner known to
    be gone whose claim is taken over."""
    claim = ctx.lifecycle.claim_end(run, runner, take_over_from=take_over_from)
    if claim is None:
        return False
    release(ctx, run, runner, claim.token, phase, message)
    return True


def hand_back(ctx: Context, run: Run, runner: str, reason: str) -> bool:
    """Give the run ``runner`` holds back to the queue, in its place, for a runner whose Docker Engine answers
    (``runner``'s did not: ``reason``), and send its chain again; what its steps left here goes first (the
    next runner adds a deploy key of its own), the user's GitLab token stays for the next runner. False when
    the runner no longer holds the run, or it is no longer being prepared."""
    deployment_id = run.deployment
    access.remove_deploy_key(ctx, deployment_id)
    shutil.rmtree(checkout_dir(ctx, deployment_id), ignore_errors=True)
    one_build.release(ctx, run)  # the next runner claims the build again, if it must build
    _end_notebook(ctx, deployment_id, ctx.deployments.record(deployment_id).get("container"), engine_answers=False)
    told = f"{reason} The notebook goes back to the queue, in its place, for a runner of another Docker Engine."
    if not ctx.lifecycle.hand_back(run, runner, told):
        return False
    log.warning("%s gave %s back to the queue: %s", runner, run, reason)
    queue_run(ctx, run)
    return True


def release(ctx: Context, run: Run, runner: str, claim: str, phase: Phase, message: str) -> bool:
    """End the run whose end ``claim`` holds in ``phase`` (failed or stopped): remove what it
    left behind, free its runner, and queue the run that waited for this end, if any. False,
    touching nothing, when the claim no longer holds (taken over by a runner that found this
    one gone)."""
    deployment_id = run.deployment
    if not ctx.lifecycle.holds(run, claim):
        log.warning("the end of %s is no longer claimed by %s: left to its new claimant", run, claim)
        return False
    access.revoke(ctx, deployment_id)
    ctx.vault.delete(deployment_id, NOTEBOOK_TOKEN, SAVE_TOKEN)
    shutil.rmtree(checkout_dir(ctx, deployment_id), ignore_errors=True)
    one_build.release(ctx, run)  # ended before its build, or before its image was shared
    ctx.routes.remove(ctx.slug(deployment_id))
    record = ctx.deployments.record(deployment_id)
    _end_notebook(ctx, deployment_id, record.get("container"))
    ctx.queue.leave(deployment_id)
    behind = ctx.lifecycle.finish(run, claim, phase, message)
    if phase is Phase.FAILED and record.get("requested_at") and not record.get("ready_at"):  # a launch failed
        metrics.observe_launch(ctx.redis, metrics.Outcome.FAILED, float(record["requested_at"]), time.time())
    if behind is not None:
        log.info("%s ended; %s queued behind it starts", run, behind)
        queue_run(ctx, behind)
    ctx.runners.release(runner, deployment_id, run.number)
    ctx.deployments.forget_long_ended()
    return True


def _end_notebook(ctx: Context, deployment_id: str, container: str | None, engine_answers: bool = True) -> None:
    """Remove the deployment's notebook ``container``, if it has one; in hub mode the hub's server goes first,
    so that the hub forgets the server too, and the container the hub names goes with it. An engine that did
    not answer a moment ago may still not."""
    containers = [container]
    if ctx.config.launch_target == "jupyterhub":
        containers.append(hub_launch.stop(ctx, deployment_id))
    for container in dict.fromkeys(filter(None, containers)):
        if engine_answers:
            launcher.stop(ctx.docker, container)
            continue
        with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
            launcher.stop(ctx.docker, container)
