"""Redis memory per finished deployment: ``BENCH_MEMORY_DEPLOYMENTS`` (10) deployments of
distinct users (so each leaves its own keys), each relaunched to ``ready`` through a real
runner and stopped. Every key that was not there before is sized with ``MEMORY USAGE``
(``SAMPLES 0``: exact), grouped by deployment (the keys named after its id or its slug);
keys named after neither (Celery's ``taskrun:`` guards) and the growth of the ``status``
hash are shared out evenly. ``INFO memory``'s ``used_memory`` before and after is given
as a cross-check only (the whole server's memory moves with client buffers and Celery's
traffic). A sample is one deployment's bytes.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from bench.settings import Settings
from bench.stack import PROJECT, Stack, ensure_image
from bench.stats import Figure, median
from booklab.state import schema
from gitlab_standin.store import MAINTAINER

log = logging.getLogger(__name__)


def _kind(key: str) -> str:
    return key.split(":", 1)[0] if ":" in key else key


def _ttl(seconds: int) -> str:
    if seconds < 0:
        return "none"
    return f"{seconds / 86400:.0f} d" if seconds >= 86400 else f"{seconds} s"


def run(stack: Stack, settings: Settings) -> list[Figure]:
    ensure_image(stack)
    client = stack.redis
    users = []
    for k in range(settings.memory_deployments):
        name = f"mem{k}"
        users.append(stack.gitlab.store.user(name) or stack.gitlab.add_user(name))
        stack.gitlab.set_member(PROJECT, name, MAINTAINER)
    stack.wait_free()
    before_keys = set(client.scan_iter(count=1000))
    before_used = int(client.info("memory")["used_memory"])
    before_status = client.memory_usage(schema.STATUS, samples=0) or 0
    ids = []
    for user in users:
        run_ = stack.deploy("main", token=user.token)
        stack.stop(run_.id)
        ids.append(run_.id)
    after_used = int(client.info("memory")["used_memory"])
    new_keys = set(client.scan_iter(count=1000)) - before_keys
    sizes = {key: client.memory_usage(key, samples=0) or 0 for key in new_keys}
    ttls = {key: client.ttl(key) for key in new_keys}
    status_growth = (client.memory_usage(schema.STATUS, samples=0) or 0) - before_status

    own: dict[str, int] = defaultdict(int)
    by_kind: dict[str, list[int]] = defaultdict(list)
    shared = status_growth
    names = {dep_id: (dep_id, stack.ctx.slug(dep_id)) for dep_id in ids}
    for key, size in sizes.items():
        owner = next((d for d, (dep_id, slug) in names.items() if dep_id in key or key.endswith(slug)), None)
        if owner is None:
            shared += size
        else:
            own[owner] += size
        by_kind[_kind(key)].append(size)
    count = len(ids)
    samples = [(own[d] + shared / count) / 1024 for d in ids]
    kinds = ", ".join(
        f"`{kind}` {sum(v) / count:.0f} B (TTL {_ttl(min(ttls[k] for k in new_keys if _kind(k) == kind))})"
        for kind, v in sorted(by_kind.items(), key=lambda item: -sum(item[1]))
    )
    logs = [size for key, size in sizes.items() if key.startswith(schema.log(""))] or [0]
    figure = Figure(
        "redis-memory",
        "Redis memory per finished deployment (relaunched, then stopped)",
        "KiB",
        samples,
        target="<= 64 KiB",
        meets=lambda f: f.median <= 64,
    )
    figure.notes.append(
        f"{count} deployments; per deployment: {kinds}, and {status_growth / count:.0f} B of the `status` hash. "
        f"Cross-check: the server-wide `used_memory` moved by {(after_used - before_used) / count / 1024:.1f} KiB "
        f"per deployment, too noisy to use (client buffers and Celery's own traffic move it by more than "
        f"these keys weigh). Keys without TTL stay forever. A deployment's log is capped at `log/max_events` "
        f"({stack.ctx.config.log_max_events}) events, so one with a long build log weighs more: "
        f"median log of a run here {median(logs) / 1024:.1f} KiB."
    )
    log.info("redis memory: %.1f KiB per finished deployment", median(samples))
    return [figure]
