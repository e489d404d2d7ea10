"""Clean-up after a lost or restarted runner.

A lost runner is one declared in ``runners`` whose heartbeat expired (killed, or its host
gone). What it held ends, ``failed`` while it was being prepared or ``stopped`` when it
served a notebook (saved first, when the user chose save back and this host reaches its
container), its container is removed where this host can reach it, and the runner is
forgotten. Every live runner looks at each check; one cleans up (a failed clean-up is
tried again when the lock expires).

A restarted runner (same name) calls :func:`resume` first: it adopts the notebook it
served if that still answers, and removes whatever else it left behind."""

from __future__ import annotations

import logging

from booklab.context import Context
from booklab.phases import Phase
from booklab.pipeline import launcher, teardown
from booklab.runner import warming
from booklab.saveback import protocol
from booklab.state import schema
from booklab.state.lifecycle import Claim, Run

log = logging.getLogger(__name__)

REAP_LOCK_TTL = 120


def lost_runners(ctx: Context) -> list[str]:
    """Runners still declared whose heartbeat expired."""
    declared = set(ctx.redis.smembers(schema.RUNNERS))
    return sorted(declared - set(ctx.runners.alive()))


def reap(ctx: Context, runner: str, by: str) -> bool:
    """End what ``runner`` held and forget it; False when another runner does it. A
    notebook whose changes are to be saved is saved first, by runner ``by``; the save ends
    it, or keeps it (and the lost runner's record) while it fails."""
    if not ctx.redis.set(schema.reaping(runner), "1", nx=True, ex=REAP_LOCK_TTL):
        return False
    held = ctx.runners.held(runner)
    run = Run.held(held)
    claim = ctx.lifecycle.claim_end(run, by, take_over_from=runner) if run else None
    if run and claim and protocol.wanted(ctx, held):
        if protocol.request(
            ctx,
            run.deployment,
            then_end="The runner serving this notebook was lost.",
            worker=by,
            run=run,
            claim=claim.token,
            automatic=claim.before is not Phase.STOPPING,  # its user's Stop keeps the notebook if the save fails
        ):
            log.warning("runner %s lost; %s saves %s before ending it", runner, by, run)
        else:
            ctx.lifecycle.keep(run, claim.token)
        return True
    if run and claim:
        log.warning("runner %s lost; ending %s", runner, run)
        _end_held(ctx, runner, run, claim, "was lost")
    warming.forget(ctx, runner)
    ctx.runners.retire(runner)
    return True


def resume(ctx: Context, runner: str) -> str | None:
    """At the start of ``runner``, after a restart: adopt the notebook it served if that
    still answers, end what it was preparing, and remove every other container it left.
    Returns the adopted deployment's id, or None when the runner is free."""
    warming.forget(ctx, runner)  # its spare's container goes with the others below
    held = ctx.runners.held(runner)
    run, adopted = Run.held(held), None
    if run and _still_serving(ctx, run, held):
        adopted = run.deployment
        log.info("runner %s adopts the notebook of %s it served before its restart", runner, run)
        protocol.interrupted(ctx, run.deployment)  # a save it was running died with its process
        if ctx.lifecycle.current(run.deployment)[2]:  # so did the end it had claimed: its supervisor ends it again
            claim = ctx.lifecycle.claim_end(run, runner, take_over_from=runner)
            if claim:
                ctx.lifecycle.give_back(run, claim)
    elif run:
        claim = ctx.lifecycle.claim_end(run, runner, take_over_from=runner)  # its earlier process is gone
        if claim:
            _end_held(ctx, runner, run, claim, "restarted")
        else:
            ctx.runners.release(runner, run.deployment, run.number)
    for container in launcher.find_notebooks(ctx.docker, {"booklab.runner": runner}):
        if adopted and container.id == held.get("container"):
            continue
        log.info("runner %s removes the container %s it left", runner, container.name)
        deployment = container.labels.get("booklab.deployment", "")
        # labels alone prove nothing (a repository's build containers carry its Dockerfile's):
        # a route goes only with the container its deployment's record names
        if deployment and ctx.deployments.record(deployment).get("container") == container.id:
            ctx.routes.remove(ctx.slug(deployment))
        launcher.stop(ctx.docker, container.id)
    return adopted


def _still_serving(ctx: Context, run: Run, held: dict[str, str]) -> bool:
    """Whether the runner's notebook was served (ready, or being stopped since) and still answers."""
    status, current, _ = ctx.lifecycle.current(run.deployment)
    token = ctx.vault.notebook_token(run.deployment)
    served = status is Phase.READY or (
        status is Phase.STOPPING and ctx.deployments.record(run.deployment).get("ready_at")
    )
    return (
        bool(served)
        and current == run
        and bool(held.get("url"))
        and token is not None
        and launcher.api_status(held["url"], token) is not None
    )


def _end_held(ctx: Context, runner: str, run: Run, claim: Claim, what: str) -> None:
    if claim.before in (Phase.READY, Phase.STOPPING):
        phase, message = Phase.STOPPED, f"The runner serving this notebook {what}; launch it again."
    else:
        phase, message = Phase.FAILED, f"The runner preparing this notebook {what}: retry."
    teardown.release(ctx, run, runner, claim.token, phase, message)
