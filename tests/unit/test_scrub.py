"""What a downloaded log never shows: tokens, private keys, passwords in URLs, Booklab's own
secret settings; and what it keeps (commits, image digests, ordinary words)."""

from __future__ import annotations

from booklab.config import Config
from booklab.scrub import REMOVED, scrub

OAUTH = "a" * 20 + "0123456789abcdef" * 2 + "b" * 12


def test_secrets_are_removed_and_the_rest_is_kept():
    config = Config(secret_key="the-secret-key-of-this-site", gitlab_consumer_secret="gloas-consumer-secret-x")
    text = (
        "Step 3/9 : RUN pip install -r requirements.txt\n"
        "token glpat-AbCdEf0123456789xyz used\n"
        f"Authorization: Bearer {OAUTH}\n"
        "cloning https://oauth2:s3cr3t-pass@gitlab.example.org/group/project.git\n"
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
        "the key is the-secret-key-of-this-site, the app's gloas-consumer-secret-x\n"
        "commit 0123456789abcdef0123456789abcdef01234567, image sha256:" + "c" * 64 + "\n"
    )
    out = scrub(text, config)
    for secret in ("glpat-AbCdEf", OAUTH, "s3cr3t-pass", "b3BlbnNzaC1r", "the-secret-key", "gloas-consumer"):
        assert secret not in out, secret
    assert out.count(REMOVED) == 6
    assert "https://oauth2:[secret removed]@gitlab.example.org/group/project.git" in out
    assert "Step 3/9 : RUN pip install -r requirements.txt" in out
    assert "commit 0123456789abcdef0123456789abcdef01234567" in out and "sha256:" + "c" * 64 in out
