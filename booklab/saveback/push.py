"""Save back's git work: commit a notebook's changed files as the user on top of its last save
(or of its own commit) and push them to a branch ``booklab/<user>/<yyyymmdd-hhmm>`` of the
project, with a link that opens a merge request. The push uses a deploy key with write
access added for that push only (waited for while GitLab does not accept it yet, as a
clone's) and removed after it, or the user's own token when their role cannot add deploy
keys (or ``clone/method`` is ``https``)."""

from __future__ import annotations

import logging
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator
from urllib.parse import urlencode

import docker

from booklab.context import Context
from booklab.errors import BranchNamesTaken, CloneError, PushRejected, SaveError, SecretUnavailable
from booklab.pipeline import access, git, gitlab_tokens, key_sweeper
from booklab.pipeline.gitlab_client import GitLabClient, Project
from booklab.saveback import workspace
from booklab.state.deployment import Deployment
from booklab.state.vault import SAVE_TOKEN

log = logging.getLogger(__name__)

#: seconds a save may take at most (its task's hard time limit); its deploy key is swept after
TIME_LIMIT = 900
#: seconds each git fetch or push of a save may take
GIT_TIMEOUT = 120
#: names tried for a new branch before giving up (``-2``, ``-3``, ... after the first)
BRANCH_NAMES = 5


@dataclass(frozen=True)
class Saved:
    branch: str
    commit: str
    merge_request_url: str


@dataclass(frozen=True)
class Outcome:
    saved: Saved | None
    """None when there was nothing to push"""
    left_out: tuple[str, ...] = ()
    """changed files not saved, each with the reason"""


def branch_name(user: str, moment: datetime, attempt: int = 1) -> str:
    name = f"booklab/{user}/{moment:%Y%m%d-%H%M}"
    return name if attempt == 1 else f"{name}-{attempt}"


def merge_request_url(project: Project, branch: str, target: str) -> str:
    query = urlencode({"merge_request[source_branch]": branch, "merge_request[target_branch]": target})
    return f"{project.web_url}/-/merge_requests/new?{query}"


def save(ctx: Context, deployment_id: str) -> Outcome:
    """Commit and push what changed in the deployment's notebook since its start, as a
    commit on top of its last save (or of its own commit)."""
    record = ctx.deployments.record(deployment_id)
    dep = Deployment.from_id(deployment_id)
    try:
        container = ctx.docker.containers.get(record.get("container") or "")
    except docker.errors.NotFound:
        raise SaveError("The notebook's container is gone: there is nothing left to save.") from None
    found = workspace.changes(container)
    if not found and not record.get("saved_commit"):  # (after a save, a file may have gone since)
        return Outcome(None)
    token, grant_id = _user_token(ctx, deployment_id)
    with gitlab_tokens.client(ctx, token, grant_id) as gl:
        author = gl.identity()
        project = gl.project(dep.project)
        now = datetime.now(timezone.utc)
        message = (
            f"Save notebook changes from Booklab\n\nSaved from {dep.project} at {dep.ref} "
            f"({record['commit'][:12]}) on {now:%Y-%m-%d %H:%M} UTC.\n"
        )
        with (
            tempfile.TemporaryDirectory(prefix="booklab-save-", dir=ctx.config.tmpdir) as work,
            _write_access(ctx, gl, project, deployment_id, grant_id) as (url, credentials),
        ):
            checkout = Path(work) / "checkout"
            # the notebook's own commit plus every change since its start: the tree to save. The first git
            # command with a new deploy key: GitLab may not accept the key yet
            access.once_accepted(
                ctx,
                lambda: git.fetch_commit(url, record["commit"], checkout, credentials, GIT_TIMEOUT),
                tell=lambda why: log.info("%s: %s", deployment_id, why),
            )
            left_out = workspace.copy_into(container, found, checkout, git.tracked_files(checkout))
            parent, branch = _last_save(checkout, url, credentials, record)
            commit = git.commit_work_tree(checkout, parent, author, message)
            if commit is None:
                return Outcome(None, tuple(left_out))
            branch = _push(gl, project, checkout, url, credentials, commit, branch, dep.user, now)
    saved = Saved(branch, commit, merge_request_url(project, branch, dep.ref))
    ctx.deployments.update(
        deployment_id,
        saved_branch=branch,
        saved_commit=commit,
        merge_request_url=saved.merge_request_url,
        saved_at=f"{now.timestamp():.3f}",
    )
    log.info("saved %s to branch %s at %s", deployment_id, branch, commit[:12])
    return Outcome(saved, tuple(left_out))


def _last_save(
    checkout: Path, url: str, credentials: git.SshCredentials | git.HttpsCredentials, record: dict[str, str]
) -> tuple[str, str | None]:
    """(parent commit, branch) of this save: the notebook's last save and its branch, or,
    before the first (or when its commit is gone from GitLab), the notebook's commit."""
    if not record.get("saved_commit"):
        return record["commit"], None
    try:
        git.fetch_more(checkout, url, record["saved_commit"], credentials, GIT_TIMEOUT)
    except CloneError as e:
        if e.transient:
            raise
        log.info("the last save %s is gone from GitLab; saving on a new branch", record["saved_commit"])
        return record["commit"], None
    return record["saved_commit"], record.get("saved_branch")


def _user_token(ctx: Context, deployment_id: str) -> tuple[str, str]:
    try:
        return gitlab_tokens.of_deployment(ctx, deployment_id, SAVE_TOKEN)
    except SecretUnavailable:
        raise SaveError(
            "Booklab no longer holds your GitLab login for this notebook: log in to Booklab again, then save."
        ) from None


def _push(
    gl: GitLabClient,
    project: Project,
    checkout: Path,
    url: str,
    credentials: git.SshCredentials | git.HttpsCredentials,
    commit: str,
    branch: str | None,
    user: str,
    now: datetime,
) -> str:
    """Push ``commit`` to ``branch`` (the notebook's earlier saves), or to the first free new
    branch name; a branch that moved on GitLab meanwhile is left alone for a new one."""
    if branch:
        try:
            git.push(checkout, url, commit, branch, credentials, GIT_TIMEOUT)
            return branch
        except PushRejected:
            log.info("branch %s moved on GitLab; saving to a new branch", branch)
    for attempt in range(1, BRANCH_NAMES + 1):
        name = branch_name(user, now, attempt)
        if name == branch or gl.branch_exists(project, name):
            continue
        try:
            git.push(checkout, url, commit, name, credentials, GIT_TIMEOUT)
            return name
        except PushRejected:
            continue  # created in the meantime
    raise BranchNamesTaken(
        f"Branches {branch_name(user, now)} to -{BRANCH_NAMES} all exist already: save again in a minute."
    )


@contextmanager
def _write_access(
    ctx: Context, gl: GitLabClient, project: Project, deployment_id: str, grant_id: str
) -> Iterator[tuple[str, git.SshCredentials | git.HttpsCredentials]]:
    """(URL, credentials) that may push to the project: a new deploy key with write access,
    removed on leaving, or else the user's token (the one ``gl`` acts with, renewed if GitLab
    refused it)."""
    token = gl.token
    if ctx.config.clone_method == "ssh":
        title = access.key_title("save", Deployment.from_id(deployment_id).user)
        # swept later unless removed below (the runner may die before; GitLab's answer may be lost)
        key_sweeper.expect(ctx, project.id, title, token, due=time.time() + TIME_LIMIT, grant_id=grant_id)
        keys = access.deploy_key_or_token(
            ctx, gl, project, title, tell=lambda why: log.info("%s: %s", project.path, why), can_push=True
        )
        if keys is None:
            key_sweeper.forget(ctx, project.id, title)
        else:
            try:
                yield project.ssh_url, access.ssh(ctx, keys.private_openssh)
            finally:
                key_sweeper.remove(ctx, project.id, title, token, grant_id)
            return
    yield project.http_url, access.https(token)
