"""Keys for one purpose each, derived from the installation's ``secret_key``: a key that
leaks or is misused for one purpose opens nothing of another. Every key Booklab derives
from ``secret_key`` is derived here (:func:`derive_key`, and :func:`vault_key` kept as it was)."""

from __future__ import annotations

import hashlib

#: encrypts web sessions in Redis (:mod:`booklab.web.sessions`)
WEB_SESSION = "web session"
#: seals the notebook path that travels through the web tier's URLs (:mod:`booklab.web.notebook_auth`)
NOTEBOOK_NEXT = "notebook next"
#: keys the suffix of notebook host names (:meth:`booklab.state.deployment.Deployment.slug_with`)
NOTEBOOK_SLUG = "notebook slug"
#: the value of the label that admits a container to Traefik's docker provider (:mod:`booklab.pipeline.routes.names`)
TRAEFIK_ROUTE = "traefik route"


def derive_key(secret_key: str, purpose: str) -> bytes:
    """32 bytes for ``purpose`` alone: SHA-256 of ``booklab <purpose>``, a NUL and the secret key."""
    return hashlib.sha256(f"booklab {purpose}\0".encode() + secret_key.encode()).digest()


def vault_key(secret_key: str) -> bytes:
    """The vault's 32 bytes (:class:`booklab.state.vault.Vault`): SHA-256 of the secret key
    alone, without a purpose. The one derivation kept from before :func:`derive_key`, for
    compatibility: secrets sealed before an upgrade must stay readable after it."""
    return hashlib.sha256(secret_key.encode()).digest()
