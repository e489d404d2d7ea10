"""A user's GitLab OAuth login, shared by the web tier and every runner that acts for them:
the access token, its refresh token and when the access token expires, sealed in Redis under
``grant:<id>`` (the session and each deployment name the id, never the tokens). GitLab
revokes a pair when it is refreshed, so the pair lives in this one place and one process at
a time refreshes it (:meth:`Grants.lock`); the others wait, then read the new pair (a runner's checks wait
briefly, then give up: :attr:`booklab.context.Context.gitlab_wait`)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import redis

from booklab.errors import GitLabUnavailable
from booklab.state import schema
from booklab.state.vault import Vault

#: seconds one process may hold a login's refresh: well beyond one answer of GitLab's token
#: endpoint (each wait for it is cut at ``gitlab/timeout``, in every process), so the lock never
#: expires under a refresh and no refresh token is sent twice
LOCK_TTL = 60
#: seconds a process waits for another's refresh before it gives up
LOCK_WAIT = LOCK_TTL + 5
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


@dataclass(frozen=True)
class Pair:
    access_token: str
    refresh_token: str
    #: when the access token expires (Unix time); 0 when GitLab did not say
    expires_at: float = 0.0

    def __repr__(self) -> str:  # never show the tokens
        return f"Pair(expires_at={self.expires_at})"

    def expires_within(self, seconds: float) -> bool:
        return bool(self.expires_at) and self.expires_at < time.time() + seconds


class Grants:
    """The logins in one Redis (``ctx.grants``)."""

    def __init__(self, client: redis.Redis, vault: Vault) -> None:
        self.redis, self.vault = client, vault

    def create(self, pair: Pair, ttl: int) -> str:
        """Keep a new login for ``ttl`` seconds; its id."""
        grant_id = secrets.token_urlsafe(18)
        self.redis.set(schema.grant(grant_id), self._seal(pair), ex=ttl)
        return grant_id

    def get(self, grant_id: str) -> Pair | None:
        """The login's pair; None when it is gone (expired) or another ``secret_key`` sealed it."""
        sealed = self.redis.get(schema.grant(grant_id)) if grant_id else None
        opened = None if sealed is None else self.vault.unseal(sealed)
        return None if opened is None else Pair(**json.loads(opened))

    def put(self, grant_id: str, pair: Pair) -> None:
        """Replace the login's pair (after a refresh), keeping how long it lives; a login that
        expired meanwhile stays gone."""
        self.redis.set(schema.grant(grant_id), self._seal(pair), keepttl=True, xx=True)

    def keep_for(self, grant_id: str, ttl: int) -> None:
        """Have the login live at least ``ttl`` seconds more (a deployment acts with it)."""
        if self.redis.ttl(schema.grant(grant_id)) < ttl:
            self.redis.expire(schema.grant(grant_id), ttl)

    @contextmanager
    def lock(self, grant_id: str, wait: float = LOCK_WAIT) -> Iterator[None]:
        """Hold the login's refresh, waiting while another process holds it (GitLabUnavailable
        after ``wait`` s)."""
        key, mine = schema.grant_lock(grant_id), secrets.token_hex(8)
        deadline = time.monotonic() + wait
        while not self.redis.set(key, mine, nx=True, ex=LOCK_TTL):
            if time.monotonic() > deadline:
                raise GitLabUnavailable("Refreshing your GitLab login takes too long: try again shortly.")
            time.sleep(0.05)
        try:
            yield
        finally:
            self.redis.eval(_RELEASE, 1, key, mine)

    def _seal(self, pair: Pair) -> bytes:
        return self.vault.seal(json.dumps(asdict(pair)).encode())
