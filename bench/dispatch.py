"""Dispatch: milliseconds from a request accepted (the record's ``requested_at``, set when
:func:`booklab.service.request_deployment` queues it) to the first step running on an idle
runner (``started_at``, set by :func:`booklab.pipeline.steps.provision_key` once the runner has
claimed the deployment and stopped taking others). Both are timestamps the product
already keeps; nothing is added to it.

Each round asks for a branch that does not exist, so the first step ends the deployment
(``failed``) right after it starts; the runner is free and consuming the shared queue
again before the next round.
"""

from __future__ import annotations

import logging

from bench.settings import Settings
from bench.stack import PROJECT, Stack
from bench.stats import Figure
from booklab import service
from booklab.phases import Phase
from tests.fixtures.services import wait_until

log = logging.getLogger(__name__)


def run(stack: Stack, settings: Settings) -> list[Figure]:
    ctx = stack.ctx
    samples: list[float] = []
    stack.wait_free()
    for i in range(settings.dispatch_rounds):
        before = stack.free_counts()
        request = service.request_deployment(ctx, PROJECT, f"bench-dispatch-{i}", stack.owner.token)
        wait_until(lambda r=request.id: ctx.deployments.status(r) is Phase.FAILED, 60, f"{request.id} to end")
        record = ctx.deployments.record(request.id)
        samples.append((float(record["started_at"]) - float(record["requested_at"])) * 1000)
        stack.wait_free(before)
    log.info("dispatch: %d rounds", len(samples))
    return [
        Figure(
            "dispatch",
            "dispatch: request accepted -> first step running on an idle runner",
            "ms",
            samples,
            target="p50 <= 50 ms, p99 <= 200 ms",
            meets=lambda f: f.median <= 50 and f.p(99) <= 200,
            show_p99=True,
        )
    ]
