"""Save back's states: when a notebook is saved, by which runner, and what its user is told.
The git work of a save is :mod:`booklab.saveback.push`.

The runner that serves the notebook saves it when the user chose it: on Stop, before
culling (idle, too old, its container exited) and at the runner's shutdown; and whenever
the user asks ("Save now"). Later saves of the same notebook add commits to the branch of
the first. A save that fails keeps the notebook and its work: the user saves again, or
stops and discards. The notebook of a lost runner is saved by the runner that finds it
lost, when that one's Docker Engine reaches the container.

An automatic save (culling, a runner's shutdown or loss) never holds its runner for ever:
when GitLab refuses it for good (an archived project, a protected branch, a role or a
token that may not push, a project gone), or has not answered for ``save/give_up_after``,
it is given up: the changes are kept for download (:mod:`booklab.saveback.kept`), and the
notebook ends. Until then it is tried again after a growing wait.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import docker

from booklab.context import Context
from booklab.dispatch import send
from booklab.errors import BooklabError, CloneError, DeployKeyNotAccepted, GitLabError, SaveError, SecretUnavailable
from booklab.phases import Phase, SaveState
from booklab.pipeline import teardown
from booklab.pipeline.transient import as_booklab_error, backoff
from booklab.saveback import kept, push
from booklab.state import schema
from booklab.state.lifecycle import Run

log = logging.getLogger(__name__)

#: seconds a queued or running save holds off another
SAVE_LOCK_TTL = push.TIME_LIMIT
#: seconds within which a runner takes a save that was asked for (it looks every runner/poll_interval)
SAVE_PICKUP = 60
#: seconds before a notebook whose save failed is first tried again for an automatic end (culling),
#: doubled after each failure up to RETRY_AFTER (with jitter)
RETRY_FIRST = 60
RETRY_AFTER = 600


@dataclass(frozen=True)
class Failed:
    """A save that failed, and why."""

    reason: str
    for_good: bool
    """GitLab refused it, and will until someone changes something there (or the user logs in
    again); else (GitLab did not answer, Booklab failed) trying again may work"""
    retry_after: float = 0.0
    """seconds GitLab asked to wait at least (its Retry-After)"""


def refused_for_good(error: BooklabError | None) -> bool:
    """Whether ``error`` (None: a bug) says GitLab refuses the save for good: an archived
    project, a protected branch, a role or token that may not push, a login it no longer
    accepts, a project gone. Anything else is tried again, a key GitLab accepts late too."""
    if error is None or error.transient or isinstance(error, DeployKeyNotAccepted):
        return False
    return isinstance(error, (GitLabError, CloneError, SecretUnavailable, SaveError))


def wanted(ctx: Context, held: dict[str, str]) -> bool:
    """Whether the notebook a runner holds is to be saved before it ends: the user chose
    it, and its container (running or exited) is there to read its changes from."""
    if not held.get("container") or not ctx.deployments.record(held["deployment"]).get("save_back"):
        return False
    try:
        ctx.docker.containers.get(held["container"])
    except docker.errors.NotFound:
        return False
    return True


def request(
    ctx: Context,
    deployment_id: str,
    then_end: str = "",
    worker: str = "",
    run: Run | None = None,
    claim: str = "",
    automatic: bool = False,
) -> bool:
    """Have the runner that serves the deployment (or ``worker``, for a lost one) save its
    notebook's changes, and then end its ``run``, whose end ``claim`` holds, with ``then_end``
    as the reason (``automatic``: not the user's Stop, see :func:`save_then_end`). False when
    a save is queued or running already, or failed a moment ago (see :func:`forget_failure`)."""
    if not ctx.redis.set(schema.saving(deployment_id), SaveState.SAVING, nx=True, ex=SAVE_LOCK_TTL):
        return False
    owner = ctx.deployments.record(deployment_id).get("runner", "")
    announce(ctx, deployment_id)
    send.save(worker or owner, deployment_id, then_end, owner, run.id if run else "", claim, automatic)
    return True


def announce(ctx: Context, deployment_id: str) -> None:
    """Show the deployment's save as under way (from the moment the user asks for it)."""
    ctx.deployments.update(
        deployment_id,
        save_state=SaveState.SAVING,
        save_message="Saving your changes to GitLab…",
        save_asked_at=f"{time.time():.3f}",
    )


def under_way(ctx: Context, deployment_id: str) -> bool:
    """Whether a save of the deployment is queued or running."""
    return ctx.redis.get(schema.saving(deployment_id)) == SaveState.SAVING


def locked(ctx: Context, deployment_id: str) -> bool:
    """Whether a save is queued or running, or failed a moment ago (:func:`report_failed`)."""
    return bool(ctx.redis.exists(schema.saving(deployment_id)))


def interrupted(ctx: Context, deployment_id: str) -> None:
    """The runner that ran a save of the deployment restarted: that save died with its process,
    so another may start at once, and an end of the notebook waits no longer for it."""
    if ctx.redis.get(schema.saving(deployment_id)) == SaveState.SAVING:
        ctx.redis.delete(schema.saving(deployment_id))
        ctx.deployments.update(
            deployment_id,
            save_state=SaveState.FAILED,
            save_message="The save did not finish (its runner restarted meanwhile): save again.",
        )


def forget_failure(ctx: Context, deployment_id: str) -> None:
    """The user asks again: a save that failed may be tried at once."""
    lock = schema.saving(deployment_id)
    if ctx.redis.get(lock) == SaveState.FAILED:
        ctx.redis.delete(lock)


def save_and_report(ctx: Context, deployment_id: str) -> str | Failed:
    """:func:`~booklab.saveback.push.save`, then record how it went: the sentence that says it
    worked, or how it failed (the notebook is kept: :func:`report_failed`)."""
    ctx.redis.set(schema.saving(deployment_id), SaveState.SAVING, ex=SAVE_LOCK_TTL)  # from now, not from the request
    try:
        outcome = push.save(ctx, deployment_id)
    except Exception as exc:  # whatever went wrong, the notebook and its work stay
        error = as_booklab_error(exc)
        if error is None:
            log.exception("saving %s crashed", deployment_id)
        reason = str(error) if error else "Booklab failed unexpectedly (the operator finds why in the runner's log)."
        log.warning("saving %s failed: %s", deployment_id, reason)
        failed = Failed(reason, refused_for_good(error), error.retry_after if error else 0.0)
        report_failed(ctx, deployment_id, failed)
        return failed
    return report_saved(ctx, deployment_id, outcome)


def report_saved(ctx: Context, deployment_id: str, outcome: push.Outcome) -> str:
    """Record a save that worked (or found nothing to save); the sentence that says so.
    :func:`unlock` follows."""
    if outcome.saved is None:
        state, message = SaveState.UNCHANGED, "Nothing to save since the last save: nothing was pushed."
    else:
        state, message = (
            SaveState.SAVED,
            (
                f"Saved your changes to branch {outcome.saved.branch}; "
                f"open a merge request: {outcome.saved.merge_request_url}"
            ),
        )
    if outcome.left_out:
        message += f" Left out: {', '.join(outcome.left_out)}."
    ctx.deployments.update(
        deployment_id, save_state=state, save_message=message, save_failing_since="", save_failures="", save_failure=""
    )
    return message


def unlock(ctx: Context, deployment_id: str) -> None:
    """The save is over: another may start (once an end it asked for is done, so that the
    runner does not ask for a second save of a notebook being removed)."""
    ctx.redis.delete(schema.saving(deployment_id))


def report_failed(ctx: Context, deployment_id: str, failed: Failed, also: str = "") -> None:
    """Record a save that failed: the notebook keeps running with its work (the end that
    asked for the save is called off by its claimant, unless it gives up: :func:`gives_up`),
    and an automatic end tries again after a wait that grows with each failure. ``also``:
    a sentence for the user after the reason (the reason alone is kept for a later give-up)."""
    message = (
        f"Your changes could not be saved to GitLab: {failed.reason}{' ' + also if also else ''} The notebook "
        "keeps running with your work: save again, or stop and discard your changes."
    )
    record = ctx.deployments.record(deployment_id)
    failures = int(record.get("save_failures") or 0) + 1
    ctx.deployments.update(
        deployment_id,
        save_state=SaveState.FAILED,
        save_message=message,
        save_failing_since=record.get("save_failing_since") or f"{time.time():.3f}",
        save_failures=str(failures),
        save_failure=failed.reason,
    )
    wait = max(failed.retry_after, backoff(failures - 1, RETRY_FIRST, RETRY_AFTER))
    ctx.redis.set(schema.saving(deployment_id), SaveState.FAILED, ex=max(1, round(wait)))


def gives_up(ctx: Context, deployment_id: str, failed: Failed | None = None) -> bool:
    """Whether an automatic save is given up: it ``failed`` for good, or saves of the notebook
    have failed for ``save/give_up_after`` seconds (then no more is tried)."""
    since = ctx.deployments.record(deployment_id).get("save_failing_since")
    too_long = bool(since) and time.time() - float(since) >= ctx.config.save_give_up_after
    return (failed is not None and failed.for_good) or too_long


def give_up(ctx: Context, run: Run, claim: str, reason: str) -> str | None:
    """Keep the changes of ``run``'s notebook for download, as its save is given up, while
    ``claim`` holds its end: the sentence that tells its user; None when they could not be
    kept (the notebook stays, and its end is tried again later)."""
    if not ctx.lifecycle.holds(run, claim):
        return f"Your changes could not be saved to GitLab: {reason}"  # its end is another's now
    container = ctx.deployments.record(run.deployment).get("container") or ""
    try:
        changes = kept.keep(ctx, run, ctx.docker.containers.get(container), reason)
    except Exception as exc:  # Docker or Redis failed: the notebook stays, with its work
        log.exception("the changes of %s could not be kept", run)
        error = as_booklab_error(exc)
        report_failed(ctx, run.deployment, Failed(reason, False), f"Nor could Booklab keep them ({error or 'a bug'}).")
        return None
    log.info("save of %s given up; %d files kept (%d bytes)", run, changes.files, changes.size)
    left_out = f"; {changes.left_out} left out, named in BOOKLAB.txt" if changes.left_out else ""
    message = (
        f"Your changes could not be saved to GitLab: {reason} They are kept for {kept.lifetime(ctx)} "
        f"({changes.files} files{left_out}): download them from your Booklab home page (or `booklab save "
        "--download`)."
    )
    ctx.deployments.update(run.deployment, save_state=SaveState.KEPT, save_message=message)
    return message


def describe(ctx: Context, deployment_id: str, record: dict[str, str]) -> dict[str, object] | None:
    """The deployment's last save as the API shows it; None before any."""
    if not record.get("save_state"):
        return None
    state, message = record["save_state"], record.get("save_message", "")
    if state == SaveState.SAVING and _lost(ctx, deployment_id, record):
        state, message = SaveState.FAILED, "The save did not finish (its runner stopped meanwhile): save again."
    out: dict[str, object] = {"state": state, "message": message}
    for name, field in (("branch", "saved_branch"), ("merge_request_url", "merge_request_url")):
        if record.get(field):
            out[name] = record[field]
    if record.get("saved_at"):
        out["saved_at"] = float(record["saved_at"])
    return out


def _lost(ctx: Context, deployment_id: str, record: dict[str, str]) -> bool:
    """A save shown as under way that no runner holds (its runner takes a save asked for
    within :data:`SAVE_PICKUP` s)."""
    asked = float(record.get("save_asked_at") or 0)
    return time.time() - asked > SAVE_PICKUP and not ctx.redis.exists(schema.saving(deployment_id))


def save_then_end(ctx: Context, run: Run, runner: str, claim: str, reason: str, automatic: bool = False) -> bool | None:
    """Save the notebook of ``run``, whose end ``claim`` holds, then end it with ``reason`` and
    what the save did: whether it ended (:func:`~booklab.pipeline.teardown.release`). None
    when the save failed: the notebook is kept, its end called off, and its user told; but an
    ``automatic`` end (not the user's Stop) that :func:`gives_up` keeps the changes and ends it."""
    if automatic and gives_up(ctx, run.deployment):  # failed for too long: no more tries
        last = ctx.deployments.record(run.deployment).get("save_failure") or "GitLab did not take them for too long."
        outcome: str | Failed | None = give_up(ctx, run, claim, last)
    else:
        outcome = save_and_report(ctx, run.deployment)
        if isinstance(outcome, Failed) and automatic and gives_up(ctx, run.deployment, outcome):
            outcome = give_up(ctx, run, claim, outcome.reason)
    if outcome is None or isinstance(outcome, Failed):
        ctx.lifecycle.keep(run, claim)
        return None
    try:
        return teardown.release(ctx, run, runner, claim, Phase.STOPPED, f"{reason} {outcome}")
    finally:
        unlock(ctx, run.deployment)
