"""Where each step's message goes: the first to every idle runner, the others to the
runner that took the deployment (its clone is on that runner's disk)."""

from __future__ import annotations

from booklab import schema
from booklab.context import get_context

FIRST_STEP = "booklab.provision_key"


def route_step(name, args, kwargs, options, task=None, **kw):
    if name == FIRST_STEP:
        return {"queue": schema.DEPLOYMENTS_QUEUE}
    if name.startswith("booklab.") and args:
        runner = get_context().deployments.record(args[0]).get("runner")
        if runner:
            return {"queue": schema.runner_queue(runner)}
    return None
