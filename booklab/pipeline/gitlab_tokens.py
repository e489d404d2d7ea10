"""The user's GitLab token, as the web tier and the runners act with it: a personal access
token (API and CLI) as it is; an OAuth login's access token from its grant
(:mod:`booklab.state.grants`), refreshed through GitLab's token endpoint when it expires
within :data:`REFRESH_MARGIN` seconds or GitLab refused it, by one process at a time. GitLab's
OAuth access tokens last 2 hours and a refresh revokes the old pair, so a runner that acts
hours after the launch (a queued deployment, a save on cull) uses the login's newest pair."""

from __future__ import annotations

import logging

from booklab.context import Context
from booklab.errors import ConfigError, TokenRejected
from booklab.pipeline.gitlab_client import GitLabClient, refresh_oauth
from booklab.state.grants import LOCK_WAIT, Pair

log = logging.getLogger(__name__)

#: seconds before its expiry an access token is refreshed
REFRESH_MARGIN = 300


def fresh(ctx: Context, grant_id: str, rejected: str = "") -> str:
    """An access token of the login ``grant_id`` that GitLab should accept: the one kept,
    unless it expires within :data:`REFRESH_MARGIN` s or is ``rejected`` (GitLab just refused
    it); then a new one, refreshed once whichever process asks first (a process whose context waits less
    for GitLab, :attr:`~booklab.context.Context.gitlab_wait`, waits as little for another's refresh).
    TokenRejected when the login is gone or GitLab no longer accepts it; GitLabUnavailable when another
    process's refresh takes too long."""
    return _fresh(ctx, grant_id, ctx.grants.get(grant_id), rejected)


def _fresh(ctx: Context, grant_id: str, pair: Pair | None, rejected: str) -> str:
    """:func:`fresh`, the login's pair already read (None: gone)."""
    if pair is not None and not _stale(pair, rejected):
        return pair.access_token
    with ctx.grants.lock(grant_id, LOCK_WAIT if ctx.gitlab_wait is None else ctx.gitlab_timeout):
        pair = ctx.grants.get(grant_id)  # another process may have refreshed it meanwhile
        if pair is None:
            raise TokenRejected("Booklab no longer holds your GitLab login: log in again.")
        if not _stale(pair, rejected):
            return pair.access_token
        config = ctx.config
        if not (config.gitlab_consumer_key and config.gitlab_consumer_secret):
            raise ConfigError(
                "Set gitlab/consumer_key and gitlab/consumer_secret on every runner too: they refresh "
                "the users' GitLab logins."
            )
        pair = refresh_oauth(
            config.gitlab_host,
            config.gitlab_consumer_key,
            config.gitlab_consumer_secret,
            pair.refresh_token,
            # never cut short, not even in a runner's checks: GitLab revokes the old pair as it refreshes, and an
            # answer given up on would lose the login
            config.gitlab_timeout,
        )
        ctx.grants.put(grant_id, pair)
        log.info("refreshed GitLab login %s…", grant_id[:6])
        return pair.access_token


def _stale(pair: Pair, rejected: str) -> bool:
    return pair.access_token == rejected or pair.expires_within(REFRESH_MARGIN)


def client(ctx: Context, token: str, grant_id: str = "") -> GitLabClient:
    """A GitLab client acting with ``token``; for a login (``grant_id``), a token GitLab refuses
    is renewed once."""
    renew = (lambda rejected: fresh(ctx, grant_id, rejected)) if grant_id else None
    return ctx.gitlab(token, renew)


def of_deployment(ctx: Context, deployment_id: str, name: str) -> tuple[str, str]:
    """(token, grant id) the deployment acts with for its user: its sealed secret ``name`` (a
    deployment may act as its user only while that lives: SecretUnavailable after), or, when
    the user launched it logged in, their login's fresh token (grant id '' for a personal
    access token)."""
    token = ctx.vault.get(deployment_id, name).decode()
    grant_id = ctx.deployments.record(deployment_id).get("grant", "")
    pair = ctx.grants.get(grant_id) if grant_id else None
    if pair is None:
        return token, ""
    return _fresh(ctx, grant_id, pair, ""), grant_id
