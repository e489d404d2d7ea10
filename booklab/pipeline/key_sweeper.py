"""Deploy keys Booklab must not leave on GitLab.

Every deploy key Booklab adds has a unique title, recorded before the key is added, so that
the key can be removed by title even when Booklab never learnt its id (the runner died, or
GitLab's answer was lost): a clone's key in its deployment's record, a save's key (which
can push) here, as a sweep due when its save must be over (:func:`expect`). When GitLab
does not answer the removal, the key is swept later: the runners try again every
``retry/max_delay`` seconds, with the user's token kept encrypted for that purpose until
``keys/token_ttl`` runs out (then the key is named in an error log line, to remove by hand).

A key whose adding never got its answer (lost, or its runner gone) may still be added by GitLab after its title's
keys were removed: its title is swept once more, ``keys/late_sweep`` seconds later (:func:`expect_late`), in a set
of its own, so that neither a removal nor a sweep of the title meanwhile cancels it.
"""

from __future__ import annotations

import logging
import time

from booklab.context import Context
from booklab.errors import BooklabError, SecretUnavailable
from booklab.pipeline import gitlab_tokens
from booklab.state import schema

log = logging.getLogger(__name__)

SWEEP_TOKEN = "sweep-token"
#: the user's GitLab login the token belongs to, when they launched logged in
SWEEP_GRANT = "sweep-grant"
#: the same, for the late sweep of a title (:func:`expect_late`)
LATE_TOKEN = "late-sweep-token"
LATE_GRANT = "late-sweep-grant"
#: the sweeps, the usual one and the late one: their set, and the names of their secrets
USUAL = (schema.KEY_SWEEP, SWEEP_TOKEN, SWEEP_GRANT)
LATE = (schema.KEY_SWEEP_LATE, LATE_TOKEN, LATE_GRANT)
SWEEPS = (USUAL, LATE)


def expect(ctx: Context, project_id: int, title: str, token: str, due: float, grant_id: str = "") -> None:
    """A key titled ``title`` is about to be added: sweep it at ``due`` unless it was
    removed (or :func:`forget` called) by then, with ``token`` (or the newest token of the
    login ``grant_id``)."""
    _schedule(ctx, USUAL, f"{project_id} {title}", token, grant_id, due, ttl=ctx.config.token_ttl)


def expect_late(ctx: Context, project_id: int, title: str, token: str, grant_id: str = "") -> None:
    """An adding of a key titled ``title`` got no answer: GitLab may still add that key, after its title's keys
    are removed. Sweep the title once more when GitLab can no longer be adding it (``keys/late_sweep``)."""
    late = ctx.config.key_late_sweep
    _schedule(ctx, LATE, f"{project_id} {title}", token, grant_id, time.time() + late, ttl=late + ctx.config.token_ttl)


def _schedule(
    ctx: Context, sweep: tuple[str, str, str], member: str, token: str, grant_id: str, due: float, ttl: int
) -> None:
    """``member`` in the sweep ``sweep`` (its set, and the names of its secrets), due at ``due``, with the
    secrets it is swept with kept ``ttl`` seconds."""
    due_set, token_name, grant_name = sweep
    ctx.vault.put(member, token_name, token.encode(), ttl=ttl)
    if grant_id:
        ctx.vault.put(member, grant_name, grant_id.encode(), ttl=ttl)
    ctx.redis.zadd(due_set, {member: due})


def forget(ctx: Context, project_id: int, title: str) -> None:
    """No key titled ``title`` is left to sweep."""
    member = f"{project_id} {title}"
    ctx.redis.zrem(schema.KEY_SWEEP, member)
    ctx.vault.delete(member, SWEEP_TOKEN, SWEEP_GRANT)


def remove(ctx: Context, project_id: int, title: str, token: str, grant_id: str = "") -> None:
    """Remove the project's deploy keys titled ``title``, now or, when GitLab fails to
    answer, by a later sweep."""
    if _removed(ctx, project_id, title, token, grant_id):
        forget(ctx, project_id, title)
        return
    expect(ctx, project_id, title, token, due=time.time() + ctx.config.retry_max_delay, grant_id=grant_id)


def sweep(ctx: Context) -> None:
    """Try again the removals that are due, and the late sweeps; each is taken by one runner only."""
    for due_set, token_name, grant_name in SWEEPS:
        for member in ctx.redis.zrangebyscore(due_set, 0, time.time()):
            if not ctx.redis.zrem(due_set, member):
                continue  # another runner took it
            project_id, title = member.split(" ", 1)
            try:
                token = ctx.vault.get(member, token_name).decode()
            except SecretUnavailable:
                log.error(
                    "deploy key %r of project %s could not be removed before the user's token "
                    "expired: remove it by hand in the project's settings",
                    title,
                    project_id,
                )
                continue
            grant_id = (ctx.vault.find(member, grant_name) or b"").decode()
            if _removed(ctx, int(project_id), title, token, grant_id):
                ctx.vault.delete(member, token_name, grant_name)
            else:
                ctx.redis.zadd(due_set, {member: time.time() + ctx.config.retry_max_delay})


def _removed(ctx: Context, project_id: int, title: str, token: str, grant_id: str) -> bool:
    try:
        with gitlab_tokens.client(ctx, token, grant_id) as gl:
            count = gl.delete_deploy_keys_titled(project_id, title)
    except BooklabError as e:
        log.warning("could not remove deploy key %r of project %s (%s); it will be swept", title, project_id, e)
        return False
    log.info("removed %d deploy key(s) %r of project %s", count, title, project_id)
    return True
