"""What a runner checks every ``runner/poll_interval`` seconds, as plain functions of the
process context: its heartbeat, runners lost, deploy keys to sweep, and the run it holds:
a notebook to end (stopped, exited, idle, too old: :mod:`booklab.runner.culling`), saved first
when its user asked; a chain of steps that died without a word; a queued run no runner took.
:mod:`booklab.runner.worker` calls them from the Celery worker."""

from __future__ import annotations

import logging
import time

from booklab.context import Context
from booklab.dispatch.placement import PLACEMENT_GAP
from booklab.dispatch.send import queue_run
from booklab.phases import Phase
from booklab.pipeline import key_sweeper, teardown
from booklab.runner import recovery
from booklab.runner.culling import ActivityWatch, reason_to_end
from booklab.saveback import protocol
from booklab.state import schema
from booklab.state.lifecycle import Run

log = logging.getLogger(__name__)

#: seconds a deployment in preparation may have no step in hand before it is ended
CHAIN_GAP = 15
#: seconds a runner's checks wait for each GitLab call at most (``gitlab/timeout`` when shorter; not a login's
#: refresh, which must not be given up on), and as long for another process refreshing a user's login: the checks
#: beat the runner's heartbeat, which lives :data:`~booklab.state.schema.HEARTBEAT_TTL` seconds, again before each
#: thing that may call GitLab (the end of a lost runner's run, a deploy key sweep, a warm branch's refresh), and
#: each makes a few such calls. A key GitLab was too slow to remove is swept later; a warm branch, refreshed later
GITLAB_WAIT = 5


class ChainWatch:
    """Notices a run whose chain of steps died without a word: held by this runner, being
    prepared or ending, and no step of it running, queued or scheduled here for
    :data:`CHAIN_GAP` seconds (a step that failed while Redis did not answer could not even
    say so; a process killed while it ended the run left its claim)."""

    def __init__(self) -> None:
        self.idle_since: float | None = None

    def died(self, status: Phase, steps_in_hand: bool) -> bool:
        if status is Phase.READY or steps_in_hand:
            self.idle_since = None
            return False
        now = time.monotonic()
        if self.idle_since is None:
            self.idle_since = now
        if now - self.idle_since < CHAIN_GAP:
            return False
        self.idle_since = None
        return True


class QueueWatch:
    """Notices a queued run that no runner takes: first in the queue for :data:`CHAIN_GAP`
    seconds while this runner was free to take it, so its chain was never sent (the process
    that queued it, behind the end of the run before, died first); or for :data:`PLACEMENT_GAP`
    seconds when it was placed on a host whose runners all turned busy meanwhile. Sends it again,
    to the shared queue: a second chain of a run that is taken after all is refused by the claim."""

    def __init__(self) -> None:
        self.first: str | None = None
        self.since = 0.0

    def check(self, ctx: Context) -> None:
        first = next(iter(ctx.redis.zrange(schema.QUEUE, 0, 0)), None)
        now = time.monotonic()
        if first != self.first:
            self.first, self.since = first, now
            return
        if first is None:
            return
        placed_on = ctx.deployments.record(first).get("placed_on")
        if now - self.since < (PLACEMENT_GAP if placed_on else CHAIN_GAP):
            return
        self.since = now
        status, run, _ = ctx.lifecycle.current(first)
        if status is Phase.TODO and run is not None:
            if placed_on:
                log.info("%s waited for a runner of %s, which holds its image: any runner may take it", run, placed_on)
            else:
                log.warning("%s waited first in the queue with no runner taking it; sending it again", run)
            queue_run(ctx, run, prefer=False)

    def pause(self) -> None:
        """The runner holds a notebook: it is not free to take the first of the queue."""
        self.first = None


def supervise(
    ctx: Context,
    name: str,
    watch: ChainWatch,
    steps_in_hand: bool,
    host: str = "",
    activity: ActivityWatch | None = None,
) -> bool:
    """One check of the runner ``name``: its heartbeat, lost runners, deploy keys to sweep, and
    the life of the notebook it holds (or of its preparation). ``steps_in_hand``: whether a
    task of its run is running, queued or scheduled in this runner; ``host``: its Docker Engine's
    host, when known; ``activity``: what the runner's checks before learnt of its notebook's activity
    (none: Jupyter is asked). True when the runner is free to take a deployment."""

    def beat() -> None:
        ctx.runners.beat(name, host)

    beat()
    for lost in recovery.lost_runners(ctx):
        recovery.reap(ctx, lost, by=name)
        beat()  # the end of its run may have waited for GitLab (the removal of its deploy key)
    key_sweeper.sweep(ctx, beat=beat)
    held = ctx.runners.held(name)
    return not (
        held.get("deployment") and _still_holds(ctx, name, held, watch, steps_in_hand, activity or ActivityWatch())
    )


def _still_holds(
    ctx: Context, name: str, held: dict[str, str], watch: ChainWatch, steps_in_hand: bool, activity: ActivityWatch
) -> bool:
    """Look after the run the runner holds: end it when it must end; False once the runner is free."""
    run = Run.held(held)
    status, current, ending = ctx.lifecycle.current(run.deployment)
    if current != run or status is None or not status.is_active:
        log.warning("%s held %s, which is over; it is free again", name, run)
        ctx.runners.release(name, run.deployment, run.number)
        return False
    if not ending and (status is Phase.READY or (status is Phase.STOPPING and not steps_in_hand)):
        watch.idle_since = None
        return _end_if_due(ctx, name, held, run, status, activity)
    if watch.died(status, steps_in_hand):  # its steps, or its own end, were cut off: a claim they left is this runner's
        log.warning("the steps of %s ended without a word; ending it", run)
        if ctx.deployments.record(run.deployment).get("ready_at"):
            phase, message = Phase.STOPPED, "Stopping this notebook was cut off halfway; it is stopped now."
        else:
            phase, message = (
                Phase.FAILED,
                ("Preparing this notebook stopped halfway (Booklab lost its state store for a moment): retry."),
            )
        teardown.end(ctx, run, name, phase, message, take_over_from=name)
        return False
    return True


def _end_if_due(
    ctx: Context, name: str, held: dict[str, str], run: Run, status: Phase, activity: ActivityWatch
) -> bool:
    """End the runner's notebook if it was stopped, exited, idled or aged (saving it first when
    asked); False once it ended."""
    reason = reason_to_end(ctx, held, status, activity)
    if reason is None:
        return True
    deployment_id = held["deployment"]
    saves = protocol.wanted(ctx, held)
    if protocol.under_way(ctx, deployment_id) or (saves and protocol.locked(ctx, deployment_id)):
        return True  # a save still reads the container (or failed a moment ago): end it after
    claim = ctx.lifecycle.claim_end(run, name)
    if claim is None:
        return True
    if saves:
        automatic = status is not Phase.STOPPING  # culled, not stopped by its user
        if protocol.request(ctx, deployment_id, then_end=reason, run=run, claim=claim.token, automatic=automatic):
            log.info("saving %s before it ends: %s", run, reason)
        else:
            ctx.lifecycle.give_back(run, claim)  # a Save now started in between: end it after
        return True  # the save ends it, or keeps it when it fails
    log.info("ending %s: %s", run, reason)
    teardown.release(ctx, run, name, claim.token, Phase.STOPPED, reason)
    return False
