"""Where each step's message goes: the first to every idle runner, the others to the
runner that took the run (its clone is on that runner's disk). Steps carry a run's id,
``<deployment>#<n>``; a save names its queue itself."""

from __future__ import annotations

from booklab.context import get_context
from booklab.dispatch.queues import DEPLOYMENTS_QUEUE, runner_queue
from booklab.dispatch.send import STEPS
from booklab.state.lifecycle import Run

FIRST_STEP, *LATER_STEPS = STEPS


def route_step(name, args, kwargs, options, task=None, **kw):
    if name == FIRST_STEP:
        return {"queue": DEPLOYMENTS_QUEUE}
    if name in LATER_STEPS and args:
        runner = get_context().deployments.record(Run.parse(args[0]).deployment).get("runner")
        if runner:
            return {"queue": runner_queue(runner)}
    return None
