"""Validation and fingerprints of OpenSSH public keys, as GitLab reports them for deploy keys."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_ssh_public_key


@dataclass(frozen=True)
class PublicKey:
    """A validated public key: ``openssh`` is ``<type> <base64>`` without the comment."""

    openssh: str
    fingerprint: str
    fingerprint_sha256: str


def parse_public_key(text: str) -> PublicKey:
    """Parse one ``authorized_keys``-style public key line; raise ValueError if invalid."""
    fields = text.strip().split()
    if len(fields) < 2 or "\n" in text.strip():
        raise ValueError("not an OpenSSH public key")
    key_type, encoded = fields[0], fields[1]
    try:
        blob = base64.b64decode(encoded, validate=True)
        load_ssh_public_key(f"{key_type} {encoded}".encode())
    except (binascii.Error, ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError("not an OpenSSH public key") from exc
    md5 = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    sha256 = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return PublicKey(
        openssh=f"{key_type} {encoded}",
        fingerprint=":".join(md5[i : i + 2] for i in range(0, len(md5), 2)),
        fingerprint_sha256=f"SHA256:{sha256}",
    )
