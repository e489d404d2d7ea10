"""Where a run's first step goes: to the idle runner holding a warm spare of the image its branch launched
last, when the run claims that spare (:mod:`booklab.state.spares`: one run a spare); else to the runners of a
host whose Docker Engine already holds that image, when one of them is idle (no pull, no build) and no run
waits ahead of it; else to the shared queue, which every idle runner takes from in order (it pulls the image,
or builds it). A run never waits for its preferred host: placed on a host whose runners all turned busy
meanwhile, it is sent to the shared queue once it has waited :data:`PLACEMENT_GAP` seconds while
another runner was free (:class:`booklab.runner.supervisor.QueueWatch`); a runner whose spare a run claimed
is idle, and takes it at once."""

from __future__ import annotations

from booklab.context import Context
from booklab.dispatch.queues import DEPLOYMENTS_QUEUE, host_queue, runner_queue
from booklab.state.lifecycle import Run

#: seconds a run placed on a host waits for that host's runners before any runner may take it
PLACEMENT_GAP = 2.0


def preferred_host(ctx: Context, run: Run) -> str:
    """A host holding the image the run's branch launched last and with an idle runner; empty: none, or runs
    wait ahead of this one (placed, it could pass them: they wait in the shared queue)."""
    if ctx.queue.ahead_of(run.deployment):
        return ""
    record = ctx.deployments.record(run.deployment)
    image = ctx.images.latest(record.get("project", ""), record.get("ref", ""))
    if not image:
        return ""
    holders = ctx.images.hosts_of(image) & ctx.runners.idle_hosts()
    return min(holders) if holders else ""


def spare_runner(ctx: Context, run: Run) -> str:
    """The runner whose warm spare of the image the run's branch launched last the run claimed; empty: none
    (none offered; or the run builds its image again, or only builds one, or its user picked a machine profile
    other than the default, whose limits a spare has). The run's route to the spare goes up at once, so that
    Traefik serves it by the time the runner hands the spare over (only the run's owner passes forward-auth,
    and only its token opens the notebook)."""
    record = ctx.deployments.record(run.deployment)
    image = ctx.images.latest(record.get("project", ""), record.get("ref", ""))
    other_profile = record.get("profile_asked", "") not in ("", ctx.config.profiles_default)
    if not image or record.get("rebuild") or record.get("build_only") or other_profile:
        return ""
    claimed = ctx.spares.claim(image, run.id)
    if claimed is None:
        return ""
    ctx.routes.prepare(ctx.slug(run.deployment), claimed.url)
    return claimed.runner


def first_queue(ctx: Context, run: Run, prefer: bool = True) -> str:
    """The queue of the run's first step; its record says which host it was placed on (empty: none)."""
    runner = spare_runner(ctx, run) if prefer else ""
    if runner:
        ctx.deployments.update(run.deployment, placed_on="")
        return runner_queue(runner)
    host = preferred_host(ctx, run) if prefer else ""
    ctx.deployments.update(run.deployment, placed_on=host)
    return host_queue(host) if host else DEPLOYMENTS_QUEUE
