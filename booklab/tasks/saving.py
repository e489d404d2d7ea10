"""The Celery task that saves a notebook's changes back to GitLab (:mod:`booklab.saveback`),
run by the runner that serves the notebook, on its own queue (or by the runner that found
that one lost); and then, when the save was asked for by an end of the notebook (Stop,
culling, a lost runner), ends it."""

from __future__ import annotations

import logging

from celery import Task

from booklab.context import get_context
from booklab.dispatch.app import app
from booklab.phases import SaveState
from booklab.saveback import protocol
from booklab.state.lifecycle import Run

log = logging.getLogger(__name__)


# the soft limit raises inside the save, whose clean-up (its deploy key) then runs
@app.task(
    bind=True, name="booklab.save", soft_time_limit=protocol.SAVE_LOCK_TTL - 60, time_limit=protocol.SAVE_LOCK_TTL
)
def save(
    self: Task,
    deployment_id: str,
    then_end: str = "",
    owner: str = "",
    run_id: str = "",
    claim: str = "",
    automatic: bool = False,
) -> str | None:
    """``owner``: the runner that holds the notebook, when it is not this one (it was lost);
    ``run_id`` and ``claim``: the run whose end waits for this save, and the claim of that end;
    ``automatic``: that end is not the user's Stop (a save that fails for good is given up).
    Returns how the save went (a :class:`~booklab.phases.SaveState` value, the result Flower
    shows), None when there was no save: the runner no longer serves the notebook."""
    ctx, runner = get_context(), self.request.hostname
    owner = owner or runner
    run = Run.parse(run_id) if run_id else None
    held = ctx.runners.held(owner)
    if held.get("deployment") != deployment_id or (run and Run.held(held) != run):
        log.info("%s no longer serves %s: nothing to save", owner, run or deployment_id)
        protocol.unlock(ctx, deployment_id)
        return None
    if then_end and run:
        ended = protocol.save_then_end(ctx, run, owner, claim, then_end, automatic)
        if ended and owner != runner:
            ctx.runners.retire(owner)  # reaped: saved and ended, the lost runner is forgotten
        return (SaveState.FAILED if ended is None else SaveState.SAVED).value
    if isinstance(protocol.save_and_report(ctx, deployment_id), protocol.Failed):
        return SaveState.FAILED.value
    protocol.unlock(ctx, deployment_id)
    return SaveState.SAVED.value
