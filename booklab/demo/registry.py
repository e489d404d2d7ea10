"""The configuration of an image registry on this machine (Debian's ``docker-registry``, distribution
2.8), as the demo of several hosts and the tests run it: its storage in a directory of its own, deletes
allowed (``images/registry_max_age`` prunes through the API), optionally TLS and basic auth."""

from __future__ import annotations

from pathlib import Path


def config_text(
    storage: Path,
    address: str,
    tls: tuple[Path, Path] | None = None,
    htpasswd: Path | None = None,
    realm: str = "booklab",
) -> str:
    """The registry's ``config.yml``: listening on ``address`` (``host:port``); with ``tls``, its
    certificate and key files; with ``htpasswd``, basic auth for the users there (bcrypt)."""
    text = (
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {address}\n"
    )
    if tls:
        text += f"  tls:\n    certificate: {tls[0]}\n    key: {tls[1]}\n"
    if htpasswd:
        text += f"auth:\n  htpasswd:\n    realm: {realm}\n    path: {htpasswd}\n"
    return text
