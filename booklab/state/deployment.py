"""What a deployment is: one GitLab project path, one branch, one GitLab user.

Its id is ``<path>:<branch>:<username>``; none of the three can hold a colon (GitLab
forbids it in paths and usernames, git in branch names), so the id splits back
unambiguously. Two collaborators never share a notebook.

Its slug, the DNS label of its notebook's host, ends in a keyed hash of the id: without
the key nobody can compute another deployment's slug, nor choose a name whose slug
collides with it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from booklab.errors import InvalidDeployment

#: hex digits of the keyed hash that ends a slug (64 bits)
SLUG_SUFFIX_LENGTH = 16


@dataclass(frozen=True)
class Deployment:
    project: str
    ref: str
    user: str

    def __post_init__(self) -> None:
        for what, value in (("project path", self.project), ("branch", self.ref), ("user", self.user)):
            if not value or ":" in value or "\n" in value or "\0" in value:
                raise InvalidDeployment(
                    f"The {what} {value!r} is not valid: it must be non-empty, without colons or line breaks."
                )

    @property
    def id(self) -> str:
        return f"{self.project}:{self.ref}:{self.user}"

    @classmethod
    def from_id(cls, deployment_id: str) -> "Deployment":
        parts = deployment_id.split(":")
        if len(parts) != 3:
            raise InvalidDeployment(
                f"{deployment_id!r} is not a deployment id: expected <project path>:<branch>:<user>."
            )
        return cls(*parts)

    def file_name(self, run: int, what: str) -> str:
        """``<project>-<branch>-run<n>-<what>`` (``what``: ``changes.tar.gz``, ``log.txt``), in
        characters safe in any file name and header: what a branch name may hold (quotes,
        slashes, non-ASCII letters) becomes ``-``."""
        stem = f"{self.project.rsplit('/', 1)[-1]}-{self.ref}-run{run}"
        return "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in stem) + f"-{what}"

    def slug_with(self, key: bytes) -> str:
        """A DNS label (at most 63 characters, lowercase) readable from path, branch and
        user, made unique by 64 bits of HMAC-SHA256 of the id under ``key``."""
        digest = hmac.new(key, self.id.encode(), hashlib.sha256).hexdigest()[:SLUG_SUFFIX_LENGTH]
        readable = "-".join(_label_part(p) for p in (self.project.rsplit("/", 1)[-1], self.ref, self.user))
        readable = re.sub(r"-+", "-", readable).strip("-")[: 63 - len(digest) - 1].rstrip("-")
        return f"{readable}-{digest}" if readable else digest


def _label_part(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
