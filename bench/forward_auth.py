"""Forward-auth with many deployments: the web tier's answer to Traefik's question before
every notebook request (``GET /auth/notebook/<slug>``) while Redis holds
``BENCH_AUTH_DEPLOYMENTS`` (100 000) live deployments, seeded as the web tier writes them
(status and ``slug:`` index). Two loads of ``BENCH_AUTH_CLIENTS`` (4) keep-alive clients
for ``BENCH_API_SECONDS`` each (more clients on 2 cores measure their own queue, not the
check): the owner of a notebook with their personal access token
(GitLab's answer cached, as for every request after the first), and anonymous visitors
asking for hosts that do not exist (404, or 429 once the client is over its rate limit).
The target is on the p99 of each: a lookup must not grow with the number of deployments.
The stack's per-client limit of anonymous requests is off (the load comes from one
address), so the anonymous figure measures the lookup, not the 429.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from bench import http_load
from bench.settings import Settings
from bench.stack import PROJECT, Stack
from bench.stats import Figure, median, percentile
from booklab.phases import Phase
from booklab.state import schema
from gitlab_standin.store import MAINTAINER

log = logging.getLogger(__name__)

OWNER = "gatekeeper"
WARMUP = 1.0
BATCH = 5000
TARGET_MS = 20.0


def _seed(stack: Stack, count: int) -> tuple[str, str, list[str]]:
    """The owner's token, the slug of one of their notebooks, and every key seeded."""
    user = stack.gitlab.store.user(OWNER) or stack.gitlab.add_user(OWNER)
    stack.gitlab.set_member(PROJECT, OWNER, MAINTAINER)
    keys: list[str] = []
    with stack.ctx.redis.pipeline(transaction=False) as pipe:
        for start in range(0, count, BATCH):
            ids = [f"bench/forward-auth-{n}:main:{OWNER}" for n in range(start, min(count, start + BATCH))]
            pipe.hset(schema.STATUS, mapping=dict.fromkeys(ids, Phase.READY.value))
            slugs = {schema.slug(stack.ctx.slug(i)): i for i in ids}
            pipe.mset(slugs)
            keys += slugs
            pipe.execute()
    return user.token, stack.ctx.slug(f"bench/forward-auth-{count // 2}:main:{OWNER}"), keys


def _unseed(stack: Stack, count: int, keys: list[str]) -> None:
    ids = [f"bench/forward-auth-{n}:main:{OWNER}" for n in range(count)]
    with stack.ctx.redis.pipeline(transaction=False) as pipe:
        for start in range(0, count, BATCH):
            pipe.hdel(schema.STATUS, *ids[start : start + BATCH])
            pipe.delete(*keys[start : start + BATCH])
        pipe.execute()


def _request(netloc: str, slug: str, fqdn: str, token: str | None) -> bytes:
    credential = f"PRIVATE-TOKEN: {token}\r\n" if token else ""
    return (
        f"GET /auth/notebook/{slug} HTTP/1.1\r\nHost: {netloc}\r\nX-Forwarded-Method: GET\r\n"
        f"X-Forwarded-Proto: http\r\nX-Forwarded-Host: {slug}.{fqdn}\r\nX-Forwarded-Uri: /api/status\r\n"
        f"{credential}Accept: application/json\r\n\r\n"
    ).encode()


def _figure(key: str, title: str, result: http_load.LoadResult, count: int, clients: int, expected: str) -> Figure:
    latencies = [s * 1000 for s in result.latencies]
    figure = Figure(
        key,
        title,
        "ms",
        latencies,
        target=f"p99 < {TARGET_MS:g} ms",
        show_p99=True,
        meets=lambda f: f.p(99) < TARGET_MS,
    )
    figure.notes.append(
        f"{count} live deployments in Redis; {len(latencies)} requests from {clients} keep-alive clients, "
        f"{median(result.per_second):.0f} per second "
        f"(median), p99 {percentile(latencies, 99):.1f} ms; answers {result.statuses} ({expected}). "
        "The load client shares the 2 cores."
    )
    return figure


def run(stack: Stack, settings: Settings) -> list[Figure]:
    count = settings.auth_deployments
    token, slug, keys = _seed(stack, count)
    try:
        url = urlsplit(stack.web_url)
        address = (url.hostname or "127.0.0.1", url.port or 80)
        fqdn = stack.ctx.config.fqdn
        owner = http_load.run(
            address, _request(url.netloc, slug, fqdn, token), settings.auth_clients, WARMUP, settings.api_seconds
        )
        anonymous = http_load.run(
            address,
            _request(url.netloc, "no-such-notebook-0123456789abcdef", fqdn, None),
            settings.auth_clients,
            WARMUP,
            settings.api_seconds,
        )
    finally:
        _unseed(stack, count, keys)
    log.info(
        "forward-auth: owner p99 %.1f ms, anonymous p99 %.1f ms",
        percentile([s * 1000 for s in owner.latencies], 99),
        percentile([s * 1000 for s in anonymous.latencies], 99),
    )
    clients = settings.auth_clients
    return [
        _figure(
            "forward-auth",
            f"forward-auth of the owner's request, {count} deployments",
            owner,
            count,
            clients,
            "200 expected",
        ),
        _figure(
            "forward-auth-anonymous",
            f"forward-auth of an anonymous request for an unknown host, {count} deployments",
            anonymous,
            count,
            clients,
            "404 expected",
        ),
    ]
