"""How Booklab reaches a project's repository, for a clone and for a save alike: a new
ed25519 deploy key (read-only to clone, with write access to save), waited for while GitLab
does not accept it yet, or the user's own token over HTTPS when GitLab refuses a deploy key;
and the GitLab host's SSH key, configured (``gitlab/known_hosts``) or learnt at the first SSH
clone and kept."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from booklab.context import Context
from booklab.errors import BooklabError, DeployKeyNotAccepted, DeployKeyRefused, GitLabUnavailable
from booklab.pipeline import gitlab_tokens, key_sweeper
from booklab.pipeline.git import HttpsCredentials, SshCredentials
from booklab.pipeline.gitlab_client import GitLabClient, Project
from booklab.pipeline.transient import backoff
from booklab.state import schema
from booklab.state.vault import DEPLOY_KEY, GITLAB_TOKEN

log = logging.getLogger(__name__)

Credentials = SshCredentials | HttpsCredentials

T = TypeVar("T")

#: seconds between tries of a deploy key GitLab does not accept yet: the first, and the longest
KEY_RETRY_FIRST, KEY_RETRY_MAX = 1.0, 8.0

#: the field of Booklab's shared settings (``schema.CONF``) that keeps a learnt host key
KNOWN_HOSTS = "known_hosts"


@dataclass(frozen=True)
class KeyPair:
    private_openssh: bytes
    public_openssh: str

    def __repr__(self) -> str:  # never show the private half
        return f"KeyPair(public_openssh={self.public_openssh!r})"


def generate_keypair(comment: str = "") -> KeyPair:
    """A new ed25519 key pair in OpenSSH formats."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return KeyPair(private, f"{public} {comment}".strip())


#: GitLab's longest deploy key title
MAX_TITLE = 255


def key_title(*words: str) -> str:
    """A deploy key's title, unique by its time to the microsecond: ``Booklab <words> <UTC time>``,
    the words cut short to fit GitLab's 255 characters (a branch name may be longer). Booklab
    removes its keys by title, so a key is named before it is added."""
    moment = f" {datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%S.%fZ}"
    return f"Booklab {' '.join(words)}"[: MAX_TITLE - len(moment)] + moment


def add_deploy_key(ctx: Context, gl: GitLabClient, project: Project, title: str, can_push: bool = False) -> KeyPair:
    """A new key pair whose public half the project now has as a deploy key titled ``title``.
    DeployKeyRefused, saying why, when GitLab refuses it (the user's role, deploy keys or
    ed25519 keys disabled on the instance): then the user's token over HTTPS (:func:`https`)
    is the way in."""
    keys = generate_keypair(f"booklab@{ctx.config.fqdn}")
    gl.add_deploy_key(project, title, keys.public_openssh, can_push=can_push)
    return keys


def deploy_key_or_token(
    ctx: Context, gl: GitLabClient, project: Project, title: str, tell: Callable[[str], None], can_push: bool = False
) -> KeyPair | None:
    """:func:`add_deploy_key`, or None when GitLab refuses it, having told ``tell`` why and
    that the user's token over HTTPS (:func:`https`) is used instead: the one decision of a
    clone (read-only key) and of a save (``can_push``)."""
    try:
        return add_deploy_key(ctx, gl, project, title, can_push)
    except DeployKeyRefused as refused:
        tell(f"{refused}: {'pushing' if can_push else 'cloning'} over HTTPS with your own token instead.")
        return None


def once_accepted(ctx: Context, use_key: Callable[[], T], tell: Callable[[str], None]) -> T:
    """``use_key()``, the first git command with a deploy key just added, tried again with
    backoff while GitLab does not accept the key yet (a self-hosted GitLab writes its keys from
    a background job), for ``gitlab/deploy_key_wait`` s at most: then DeployKeyNotAccepted.
    ``tell`` hears of each wait."""
    deadline, attempt = time.monotonic() + ctx.config.gitlab_deploy_key_wait, 0
    while True:
        try:
            return use_key()
        except DeployKeyNotAccepted:
            delay = backoff(attempt, KEY_RETRY_FIRST, KEY_RETRY_MAX)
            if time.monotonic() + delay > deadline:
                raise
            tell(f"GitLab does not accept the new deploy key yet: trying again in {delay:.0f} s.")
            time.sleep(delay)  # a runner serves one deployment: nothing else waits for it
            attempt += 1


def ssh(ctx: Context, private_key: bytes) -> SshCredentials:
    """Credentials of a deploy key, with the GitLab host keys known so far."""
    return SshCredentials(private_key, ctx.config.gitlab_known_hosts or ctx.redis.hget(schema.CONF, KNOWN_HOSTS) or "")


def https(token: str) -> HttpsCredentials:
    """Credentials of the user's own token."""
    return HttpsCredentials(token)


def learn_host_key(ctx: Context, credentials: Credentials) -> None:
    """Keep the GitLab host key an SSH clone learnt, unless the operator configured them."""
    if isinstance(credentials, SshCredentials) and not ctx.config.gitlab_known_hosts:
        ctx.redis.hset(schema.CONF, KNOWN_HOSTS, credentials.known_hosts)


def revoke(ctx: Context, deployment_id: str) -> None:
    """Remove the deployment's clone key (:func:`remove_deploy_key`) and the user's GitLab token from Redis:
    nothing of Booklab's reaches its repository any more."""
    try:
        remove_deploy_key(ctx, deployment_id)
    finally:
        ctx.vault.delete(deployment_id, GITLAB_TOKEN)


@contextlib.contextmanager
def removing_deploy_key(ctx: Context, deployment_id: str) -> Iterator[None]:
    """Remove the deployment's clone key (:func:`remove_deploy_key`) while the block runs (a build: the key's
    removal, two GitLab calls, need not hold it up), and be done with it when the block ends, however it ends."""
    worker = threading.Thread(target=remove_deploy_key, args=(ctx, deployment_id), name=f"remove-key-{deployment_id}")
    worker.start()
    try:
        yield
    finally:
        worker.join()


def remove_deploy_key(ctx: Context, deployment_id: str) -> None:
    """Remove the deployment's clone key from GitLab (or leave it to the key sweeper when GitLab does not
    answer) and from Redis; a key whose adding got no answer is swept once more later
    (:func:`~booklab.pipeline.key_sweeper.expect_late`)."""
    record = ctx.deployments.record(deployment_id)
    try:
        if record.get("deploy_key_title"):
            project_id, title = int(record["project_id"]), record["deploy_key_title"]
            try:
                token, grant_id = gitlab_tokens.of_deployment(ctx, deployment_id, GITLAB_TOKEN)
                fresh = True
            except GitLabUnavailable:  # the login's refresh did not come in time: the sweeper refreshes it later
                token, grant_id = ctx.vault.get(deployment_id, GITLAB_TOKEN).decode(), record.get("grant", "")
                fresh = False
            if not record.get("deploy_key_added"):  # its adding got no answer: GitLab may add it yet
                key_sweeper.expect_late(ctx, project_id, title, token, grant_id)
            if fresh:
                key_sweeper.remove(ctx, project_id, title, token, grant_id)
            else:
                key_sweeper.expect(ctx, project_id, title, token, time.time() + ctx.config.retry_max_delay, grant_id)
            ctx.deployments.update(deployment_id, deploy_key_title="", deploy_key_added="")
    except BooklabError as e:
        log.error(
            "deploy key %r of %s cannot be removed (%s): remove it by hand",
            record["deploy_key_title"],
            deployment_id,
            e,
        )
    finally:
        ctx.vault.delete(deployment_id, DEPLOY_KEY)
