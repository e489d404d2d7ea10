"""The Celery task that saves a notebook's changes back to GitLab (:mod:`booklab.save_back`),
run by the runner that serves the notebook, on its own queue; and then, when the save was
asked for by an end of the notebook (Stop, culling), ends it."""

from __future__ import annotations

import logging

from celery import Task

from booklab import save_back, steps
from booklab.context import get_context
from booklab.phases import Phase
from booklab.tasks import app
from booklab.transient import as_booklab_error

log = logging.getLogger(__name__)


@app.task(bind=True, name="booklab.save", time_limit=save_back.SAVE_LOCK_TTL)
def save(self: Task, deployment_id: str, then_end: str = "") -> str:
    ctx, runner = get_context(), self.request.hostname
    if ctx.runners.held(runner).get("deployment") != deployment_id:
        log.info("%s no longer serves %s: nothing to save", runner, deployment_id)
        save_back.unlock(ctx, deployment_id)
        return "gone"
    try:
        saved = save_back.save(ctx, deployment_id)
    except Exception as exc:  # whatever went wrong, the notebook and its work stay
        error = as_booklab_error(exc)
        if error is None:
            log.exception("saving %s crashed", deployment_id)
        reason = str(error) if error else "Booklab failed unexpectedly (the operator finds why in the runner's log)."
        log.warning("saving %s failed: %s", deployment_id, reason)
        save_back.report_failed(ctx, deployment_id, reason)
        return save_back.FAILED
    message = save_back.report_saved(ctx, deployment_id, saved)
    if then_end:
        steps.release(ctx, deployment_id, runner, Phase.STOPPED, f"{then_end} {message}")
    save_back.unlock(ctx, deployment_id)
    return save_back.SAVED if saved else save_back.UNCHANGED
