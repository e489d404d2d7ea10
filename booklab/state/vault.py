"""Secrets of one deployment: a vault that keeps a secret (a private key, a user's token) in
Redis encrypted with Fernet, for a short time only."""

from __future__ import annotations

import base64

import redis
from cryptography.fernet import Fernet, InvalidToken

from booklab.derived_keys import vault_key
from booklab.errors import SecretUnavailable
from booklab.state import schema

#: the names of a deployment's secrets in the vault
GITLAB_TOKEN = "gitlab-token"
DEPLOY_KEY = "deploy-key"
NOTEBOOK_TOKEN = "notebook-token"
#: the user's GitLab token, kept while the notebook lives when its changes are to be saved back
SAVE_TOKEN = "save-token"
SECRETS = (GITLAB_TOKEN, DEPLOY_KEY, NOTEBOOK_TOKEN, SAVE_TOKEN)
#: the prefix of the secrets of a run queued behind its deployment's end (they become its own when it starts)
PENDING = "next-"


class Vault:
    """Encrypted, expiring secrets per deployment in Redis."""

    def __init__(self, client: redis.Redis, secret_key: str, ttl: int) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(vault_key(secret_key)))
        self.redis = client
        self.ttl = ttl

    def put(self, deployment_id: str, name: str, value: bytes, ttl: int | None = None) -> None:
        self.redis.set(schema.secret(deployment_id, name), self.seal(value), ex=ttl or self.ttl)

    def seal(self, value: bytes) -> bytes:
        """``value`` encrypted as the vault keeps it (for a script that stores it atomically with other writes)."""
        return self._fernet.encrypt(value)

    def unseal(self, sealed: bytes | str) -> bytes | None:
        """What :meth:`seal` sealed; None when another ``secret_key`` sealed it."""
        try:
            return self._fernet.decrypt(sealed)
        except InvalidToken:
            return None

    def find(self, deployment_id: str, name: str) -> bytes | None:
        """The secret, or None when there is none (or another ``secret_key`` sealed it)."""
        token = self.redis.get(schema.secret(deployment_id, name))
        try:
            return None if token is None else self._fernet.decrypt(token)
        except InvalidToken:
            return None

    def notebook_token(self, deployment_id: str) -> str | None:
        """The Jupyter token of the deployment's notebook; None before its launch and after its
        end. Give it only to the deployment's owner."""
        token = self.find(deployment_id, NOTEBOOK_TOKEN)
        return None if token is None else token.decode()

    def get(self, deployment_id: str, name: str) -> bytes:
        token = self.redis.get(schema.secret(deployment_id, name))
        if token is None:
            raise SecretUnavailable(
                f"The {name} of this deployment expired before it was used "
                "(the runner waited too long): start the deployment again."
            )
        try:
            return self._fernet.decrypt(token)
        except InvalidToken:
            raise SecretUnavailable(
                f"The {name} of this deployment cannot be decrypted: the web tier and the "
                "runners must share the same secret_key."
            ) from None

    def delete(self, deployment_id: str, *names: str) -> None:
        if names:
            self.redis.delete(*(schema.secret(deployment_id, n) for n in names))
