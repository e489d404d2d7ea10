"""API throughput: ``GET /api/deployments`` completed per second by the web tier
(gunicorn, 2 gthread workers), authenticated by a personal access token
(``PRIVATE-TOKEN``; GitLab's answer cached ``web/token_cache`` seconds by each worker),
under ``BENCH_API_CLIENTS`` (16) concurrent keep-alive clients for ``BENCH_API_SECONDS``
(10) after a 2-second warm-up. The user has 10 finished deployments, seeded through
:class:`booklab.state.records.Deployments` and :class:`booklab.state.events.EventLog`. One sample per
second of load.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from bench import http_load
from bench.settings import Settings
from bench.stack import PROJECT, Stack
from bench.stats import Figure, median, percentile
from booklab.state.deployment import Deployment
from gitlab_standin.store import MAINTAINER

log = logging.getLogger(__name__)

READER = "reader"
DEPLOYMENTS = 10
WARMUP = 2.0


def _seed(stack: Stack) -> str:
    """The reader's token; the reader has :data:`DEPLOYMENTS` finished deployments."""
    user = stack.gitlab.store.user(READER) or stack.gitlab.add_user(READER)
    stack.gitlab.set_member(PROJECT, READER, MAINTAINER)
    for k in range(DEPLOYMENTS):
        dep = Deployment(PROJECT, f"bench-api-{k}", READER)
        stack.ctx.lifecycle.request(dep, stack.ctx.slug(dep.id), {}, stack.ctx.vault.seal(b"unused"), 60)
        stack.ctx.lifecycle.stop(dep.id)  # queued, so over at once
    return user.token


def run(stack: Stack, settings: Settings) -> list[Figure]:
    token = _seed(stack)
    url = urlsplit(stack.web_url)
    request = (
        f"GET /api/deployments HTTP/1.1\r\nHost: {url.netloc}\r\nPRIVATE-TOKEN: {token}\r\n"
        "Accept: application/json\r\n\r\n"
    ).encode()
    result = http_load.run(
        (url.hostname or "127.0.0.1", url.port or 80), request, settings.api_clients, WARMUP, settings.api_seconds
    )
    total = len(stack.ctx.deployments.all_statuses())
    log.info("api: %.0f requests/s (median), %d errors", median(result.per_second), result.errors)
    figure = Figure(
        "api",
        f"`GET /api/deployments` with a personal access token, {settings.api_clients} concurrent clients",
        "req/s",
        result.per_second,
        target=">= 1000 requests/s on 2 cores",
        meets=lambda f: f.median >= 1000 and result.errors == 0,
    )
    latencies = [s * 1000 for s in result.latencies]
    figure.notes.append(
        f"One sample per second of load. Latency median {median(latencies):.1f} ms, p99 "
        f"{percentile(latencies, 99):.1f} ms; {result.errors} errors (statuses {result.statuses}); "
        f"{result.closed_by_server} of the answers closed their connection (no keep-alive), so a request "
        "often includes a new TCP connection; "
        f"the user has {DEPLOYMENTS} deployments, Redis holds {total}. The load client shares the 2 cores."
    )
    return [figure]
