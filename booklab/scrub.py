"""Secrets taken out of text a user downloads (a run's full log): GitLab tokens, OAuth
tokens, private keys, passwords in URLs, and the values of Booklab's own secret settings.
What a repository's build prints is not trusted to leave them out."""

from __future__ import annotations

import re

from booklab.config import SECRETS, Config

REMOVED = "[secret removed]"
_PATTERNS = (
    # GitLab's prefixed tokens: personal, OAuth application secrets, runners, deploy, ...
    re.compile(r"\bgl[a-z]{2,6}-[A-Za-z0-9_.\-]{10,}"),
    # an OAuth access or refresh token (64 hex digits), but not an image's sha256 digest
    re.compile(r"(?<![0-9a-fA-F:])(?<!sha256:)[0-9a-f]{64}(?![0-9a-fA-F])"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.DOTALL),
)
#: a password in a URL: ``scheme://user:password@host``
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^/\s:@]*:)[^/\s@]+@")
#: a secret setting shorter than this is not looked for (it would match ordinary words)
MIN_SECRET = 8


def scrub(text: str, config: Config) -> str:
    """``text`` without the secrets it may hold."""
    for name in SECRETS:
        value = str(getattr(config, name) or "")
        if len(value) >= MIN_SECRET:
            text = text.replace(value, REMOVED)
    for pattern in _PATTERNS:
        text = pattern.sub(REMOVED, text)
    return _URL_PASSWORD.sub(lambda m: m.group(1) + REMOVED + "@", text)
