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
from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Sweep:
    """One kind of sweep: its set, the names of its secrets, and what an operator is told when the user's token
    expired before the sweep could be done."""

    due_set: str
    token_name: str
    grant_name: str
    lost: str


USUAL = Sweep(
    schema.KEY_SWEEP,
    SWEEP_TOKEN,
    SWEEP_GRANT,
    "deploy key %r of project %s could not be removed before the user's token expired: "
    "remove it by hand in the project's settings",
)
LATE = Sweep(
    schema.KEY_SWEEP_LATE,
    LATE_TOKEN,
    LATE_GRANT,
    "deploy key %r of project %s, whose adding got no answer, was not looked for before the user's token "
    "expired: if the project's settings list it, remove it by hand",
)
SWEEPS = (USUAL, LATE)
#: a runner's checks start sweeps for this many seconds at most: its heartbeat waits for them
SWEEP_BUDGET = 10
#: a sweep is taken for as long as this many GitLab calls may wait (``ctx.gitlab_timeout`` each: in a runner's
#: checks, 5 s at most): a login's token renewed, the keys listed, one removed, and one more
SWEEP_LEASE_CALLS = 4


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


def _schedule(ctx: Context, kind: Sweep, member: str, token: str, grant_id: str, due: float, ttl: int) -> None:
    """``member`` in the sweep ``kind``, due at ``due``, with the secrets it is swept with kept ``ttl`` seconds."""
    ctx.vault.put(member, kind.token_name, token.encode(), ttl=ttl)
    if grant_id:
        ctx.vault.put(member, kind.grant_name, grant_id.encode(), ttl=ttl)
    ctx.key_sweeps.due(kind.due_set, member, due)


def forget(ctx: Context, project_id: int, title: str) -> None:
    """No key titled ``title`` is left to sweep."""
    _done(ctx, USUAL, f"{project_id} {title}")


def remove(ctx: Context, project_id: int, title: str, token: str, grant_id: str = "") -> None:
    """Remove the project's deploy keys titled ``title``, now or, when GitLab fails to
    answer, by a later sweep."""
    if _removed(ctx, project_id, title, token, grant_id):
        forget(ctx, project_id, title)
        return
    expect(ctx, project_id, title, token, due=time.time() + ctx.config.retry_max_delay, grant_id=grant_id)


def sweep(ctx: Context, beat: Callable[[], None] = lambda: None) -> None:
    """Try again the removals that are due, and the late sweeps, starting them for :data:`SWEEP_BUDGET` seconds
    at most (the rest at the next check); ``beat`` the runner's heartbeat before each. Each is taken by one
    runner at a time, for as long as one sweep may take: should the runner die meanwhile, another takes it after
    that; when GitLab fails to answer, it is due again ``retry/max_delay`` seconds later."""
    lease = SWEEP_LEASE_CALLS * ctx.gitlab_timeout
    deadline = time.monotonic() + SWEEP_BUDGET
    for kind in SWEEPS:
        while time.monotonic() < deadline:
            member = ctx.key_sweeps.take_due(kind.due_set, time.time(), lease)
            if member is None:
                break
            beat()  # the sweep may take its whole lease
            _sweep_one(ctx, kind, member)


def _sweep_one(ctx: Context, kind: Sweep, member: str) -> None:
    project_id, title = member.split(" ", 1)
    try:
        token = ctx.vault.get(member, kind.token_name).decode()
    except SecretUnavailable:
        if ctx.key_sweeps.done(kind.due_set, member):  # else it was removed meanwhile, its token with it
            log.error(kind.lost, title, project_id)
        return
    grant_id = (ctx.vault.find(member, kind.grant_name) or b"").decode()
    if _removed(ctx, int(project_id), title, token, grant_id):
        _done(ctx, kind, member)
    else:
        ctx.key_sweeps.put_off(kind.due_set, member, time.time() + ctx.config.retry_max_delay)


def _done(ctx: Context, kind: Sweep, member: str) -> None:
    ctx.key_sweeps.done(kind.due_set, member)
    ctx.vault.delete(member, kind.token_name, kind.grant_name)


def _removed(ctx: Context, project_id: int, title: str, token: str, grant_id: str) -> bool:
    try:
        with gitlab_tokens.client(ctx, token, grant_id) as gl:
            count = gl.delete_deploy_keys_titled(project_id, title)
    except BooklabError as e:
        log.warning("could not remove deploy key %r of project %s (%s); it will be swept", title, project_id, e)
        return False
    log.info("removed %d deploy key(s) %r of project %s", count, title, project_id)
    return True
