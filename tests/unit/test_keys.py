"""Deploy key pairs and the encrypted, expiring vault (on a real Redis)."""

import pytest
from cryptography.hazmat.primitives.serialization import load_ssh_private_key

from booklab.derived_keys import vault_key
from booklab.errors import SecretUnavailable
from booklab.pipeline.access import generate_keypair
from booklab.state import schema
from booklab.state.vault import Vault


def test_keypair_is_ed25519_openssh():
    pair = generate_keypair("booklab@example.org")
    assert pair.public_openssh.startswith("ssh-ed25519 ") and pair.public_openssh.endswith(" booklab@example.org")
    load_ssh_private_key(pair.private_openssh, password=None)
    assert "PRIVATE" not in repr(pair)


def test_vault_stores_ciphertext_with_ttl(redis_client):
    vault = Vault(redis_client, "s3cret", ttl=60)
    vault.put("g/p:main:alice", "deploy-key", b"PRIVATE KEY BYTES")
    stored = redis_client.get(schema.secret("g/p:main:alice", "deploy-key"))
    assert "PRIVATE" not in stored
    assert 0 < redis_client.ttl(schema.secret("g/p:main:alice", "deploy-key")) <= 60
    assert vault.get("g/p:main:alice", "deploy-key") == b"PRIVATE KEY BYTES"
    vault.delete("g/p:main:alice", "deploy-key")
    with pytest.raises(SecretUnavailable, match="expired"):
        vault.get("g/p:main:alice", "deploy-key")


def test_vault_with_another_secret_cannot_read(redis_client):
    Vault(redis_client, "one", ttl=60).put("d:b:u", "x", b"v")
    with pytest.raises(SecretUnavailable, match="same secret_key"):
        Vault(redis_client, "two", ttl=60).get("d:b:u", "x")


def test_the_vault_key_is_the_one_derived_before_upgrades():
    """SHA-256 of the secret key alone, byte for byte: secrets sealed before an upgrade stay readable."""
    assert vault_key("s3cret") == bytes.fromhex("1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0")
