"""Save back: commit a notebook's changed files as the user and push them to a new branch
``booklab/<user>/<yyyymmdd-hhmm>`` of the project, with a link that opens a merge request.

The runner that serves the notebook does it when the user chose it: on Stop, before
culling (idle, too old, its container exited) and at the runner's shutdown; and whenever
the user asks ("Save now"). Later saves of the same notebook add commits to the branch of
the first. The push uses a deploy key with write access added for that push only and
removed after it, or the user's own token when their role cannot add deploy keys (or
``clone/method`` is ``https``). A save that fails keeps the notebook and its work: the user
saves again, or stops and discards. The notebook of a lost runner is saved by the runner that
finds it lost, when that one's Docker Engine reaches the container.
"""

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

from booklab.pipeline import access, git
from booklab.pipeline import key_sweeper
from booklab.state import schema
from booklab.saveback import workspace
from booklab.context import Context
from booklab.dispatch import send
from booklab.state.deployment import Deployment
from booklab.errors import CloneError, SecretUnavailable, PushRejected, SaveError
from booklab.pipeline.gitlab_client import GitLabClient, Project
from booklab.state.vault import SAVE_TOKEN
from booklab.state.lifecycle import Run
from booklab.phases import SaveState
from booklab.pipeline.transient import as_booklab_error

log = logging.getLogger(__name__)

#: seconds a queued or running save holds off another (and its task's hard time limit)
SAVE_LOCK_TTL = 900
#: seconds within which a runner takes a save that was asked for (it looks every runner/poll_interval)
SAVE_PICKUP = 60
#: seconds each git fetch or push of a save may take
GIT_TIMEOUT = 120
#: seconds before a notebook whose save failed is tried again for an automatic end (culling)
RETRY_AFTER = 300
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


def wanted(ctx: Context, held: dict[str, str]) -> bool:
    """Whether the notebook a runner holds is to be saved before it ends: the user chose
    it, and its container (running or exited) is there to read its changes from."""
    if not held.get("container") or not ctx.deployments.record(held["deployment"]).get("save_back"):
        return False
    try:
        ctx.docker.containers.get(held["container"])
    except docker.errors.NotFound:
        return False
    return True


def request(ctx: Context, deployment_id: str, then_end: str = "", worker: str = "", run: Run | None = None,
            claim: str = "") -> bool:
    """Have the runner that serves the deployment (or ``worker``, for a lost one) save its
    notebook's changes, and then end its ``run``, whose end ``claim`` holds, with ``then_end``
    as the reason. False when a save is queued or running already, or failed less than
    :data:`RETRY_AFTER` s ago (see :func:`forget_failure`)."""
    if not ctx.redis.set(schema.saving(deployment_id), SaveState.SAVING, nx=True, ex=SAVE_LOCK_TTL):
        return False
    owner = ctx.deployments.record(deployment_id).get("runner", "")
    announce(ctx, deployment_id)
    send.save(worker or owner, deployment_id, then_end, owner, run.id if run else "", claim)
    return True


def announce(ctx: Context, deployment_id: str) -> None:
    """Show the deployment's save as under way (from the moment the user asks for it)."""
    ctx.deployments.update(deployment_id, save_state=SaveState.SAVING, save_message="Saving your changes to GitLab…",
                           save_asked_at=f"{time.time():.3f}")


def under_way(ctx: Context, deployment_id: str) -> bool:
    """Whether a save of the deployment is queued or running."""
    return ctx.redis.get(schema.saving(deployment_id)) == SaveState.SAVING


def locked(ctx: Context, deployment_id: str) -> bool:
    """Whether a save is queued or running, or failed less than :data:`RETRY_AFTER` s ago."""
    return bool(ctx.redis.exists(schema.saving(deployment_id)))


def interrupted(ctx: Context, deployment_id: str) -> None:
    """The runner that ran a save of the deployment restarted: that save died with its process,
    so another may start at once, and an end of the notebook waits no longer for it."""
    if ctx.redis.get(schema.saving(deployment_id)) == SaveState.SAVING:
        ctx.redis.delete(schema.saving(deployment_id))
        ctx.deployments.update(deployment_id, save_state=SaveState.FAILED,
                               save_message="The save did not finish (its runner restarted meanwhile): save again.")


def forget_failure(ctx: Context, deployment_id: str) -> None:
    """The user asks again: a save that failed may be tried at once."""
    lock = schema.saving(deployment_id)
    if ctx.redis.get(lock) == SaveState.FAILED:
        ctx.redis.delete(lock)


def save_and_report(ctx: Context, deployment_id: str) -> str | None:
    """:func:`save`, then record how it went; the sentence that says it worked, or None
    when it failed (the notebook is kept: :func:`report_failed`)."""
    ctx.redis.set(schema.saving(deployment_id), SaveState.SAVING, ex=SAVE_LOCK_TTL)  # from now, not from the request
    try:
        outcome = save(ctx, deployment_id)
    except Exception as exc:  # whatever went wrong, the notebook and its work stay
        error = as_booklab_error(exc)
        if error is None:
            log.exception("saving %s crashed", deployment_id)
        reason = str(error) if error else "Booklab failed unexpectedly (the operator finds why in the runner's log)."
        log.warning("saving %s failed: %s", deployment_id, reason)
        report_failed(ctx, deployment_id, reason)
        return None
    return report_saved(ctx, deployment_id, outcome)


def report_saved(ctx: Context, deployment_id: str, outcome: Outcome) -> str:
    """Record a save that worked (or found nothing to save); the sentence that says so.
    :func:`unlock` follows."""
    if outcome.saved is None:
        state, message = SaveState.UNCHANGED, "Nothing to save since the last save: nothing was pushed."
    else:
        state, message = SaveState.SAVED, (f"Saved your changes to branch {outcome.saved.branch}; "
                                           f"open a merge request: {outcome.saved.merge_request_url}")
    if outcome.left_out:
        message += f" Left out: {', '.join(outcome.left_out)}."
    ctx.deployments.update(deployment_id, save_state=state, save_message=message)
    return message


def unlock(ctx: Context, deployment_id: str) -> None:
    """The save is over: another may start (once an end it asked for is done, so that the
    runner does not ask for a second save of a notebook being removed)."""
    ctx.redis.delete(schema.saving(deployment_id))


def report_failed(ctx: Context, deployment_id: str, reason: str) -> None:
    """Record a save that failed: the notebook keeps running with its work (the end that
    asked for the save is called off by its claimant), and an automatic end tries again after
    RETRY_AFTER s."""
    message = (f"Your changes could not be saved to GitLab: {reason} The notebook keeps running "
               "with your work: save again, or stop and discard your changes.")
    ctx.deployments.update(deployment_id, save_state=SaveState.FAILED, save_message=message)
    ctx.redis.set(schema.saving(deployment_id), SaveState.FAILED, ex=RETRY_AFTER)


def describe(ctx: Context, deployment_id: str, record: dict[str, str]) -> dict[str, object] | None:
    """The deployment's last save as the API shows it; None before any."""
    if not record.get("save_state"):
        return None
    state, message = record["save_state"], record.get("save_message", "")
    if state == SaveState.SAVING and _lost(ctx, deployment_id, record):
        state, message = SaveState.FAILED, "The save did not finish (its runner stopped meanwhile): save again."
    out: dict[str, object] = {"state": state, "message": message}
    for name, field in (("branch", "saved_branch"), ("merge_request_url", "merge_request_url")):
        if record.get(field):
            out[name] = record[field]
    if record.get("saved_at"):
        out["saved_at"] = float(record["saved_at"])
    return out


def _lost(ctx: Context, deployment_id: str, record: dict[str, str]) -> bool:
    """A save shown as under way that no runner holds (its runner takes a save asked for
    within :data:`SAVE_PICKUP` s)."""
    asked = float(record.get("save_asked_at") or 0)
    return time.time() - asked > SAVE_PICKUP and not ctx.redis.exists(schema.saving(deployment_id))


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
    token = _user_token(ctx, deployment_id)
    gl = ctx.gitlab(token)
    author = gl.identity()
    project = gl.project(dep.project)
    now = datetime.now(timezone.utc)
    message = (f"Save notebook changes from Booklab\n\nSaved from {dep.project} at {dep.ref} "
               f"({record['commit'][:12]}) on {now:%Y-%m-%d %H:%M} UTC.\n")
    with tempfile.TemporaryDirectory(prefix="booklab-save-", dir=ctx.config.tmpdir) as work, \
            _write_access(ctx, gl, project, deployment_id, token) as (url, credentials):
        checkout = Path(work) / "checkout"
        # the notebook's own commit plus every change since its start: the tree to save
        git.fetch_commit(url, record["commit"], checkout, credentials, GIT_TIMEOUT)
        left_out = workspace.copy_into(container, found, checkout, git.tracked_files(checkout))
        parent, branch = _last_save(checkout, url, credentials, record)
        commit = git.commit_work_tree(checkout, parent, author, message)
        if commit is None:
            return Outcome(None, tuple(left_out))
        branch = _push(gl, project, checkout, url, credentials, commit, branch, dep.user, now)
    saved = Saved(branch, commit, merge_request_url(project, branch, dep.ref))
    ctx.deployments.update(deployment_id, saved_branch=branch, saved_commit=commit,
                           merge_request_url=saved.merge_request_url, saved_at=f"{now.timestamp():.3f}")
    log.info("saved %s to branch %s at %s", deployment_id, branch, commit[:12])
    return Outcome(saved, tuple(left_out))


def _last_save(checkout: Path, url: str, credentials: git.SshCredentials | git.HttpsCredentials,
               record: dict[str, str]) -> tuple[str, str | None]:
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


def _user_token(ctx: Context, deployment_id: str) -> str:
    try:
        return ctx.vault.get(deployment_id, SAVE_TOKEN).decode()
    except SecretUnavailable:
        raise SaveError("Booklab no longer holds your GitLab login for this notebook: log in "
                        "to Booklab again, then save.") from None


def _push(gl: GitLabClient, project: Project, checkout: Path, url: str,
          credentials: git.SshCredentials | git.HttpsCredentials, commit: str, branch: str | None, user: str,
          now: datetime) -> str:
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
    raise SaveError(f"Branches {branch_name(user, now)} to -{BRANCH_NAMES} all exist already: save again in a minute.")


@contextmanager
def _write_access(ctx: Context, gl: GitLabClient, project: Project, deployment_id: str,
                  token: str) -> Iterator[tuple[str, git.SshCredentials | git.HttpsCredentials]]:
    """(URL, credentials) that may push to the project: a new deploy key with write access,
    removed on leaving, or else the user's token."""
    if ctx.config.clone_method == "ssh":
        title = access.key_title("save", Deployment.from_id(deployment_id).user)
        # swept later unless removed below (the runner may die before; GitLab's answer may be lost)
        key_sweeper.expect(ctx, project.id, title, token, due=time.time() + SAVE_LOCK_TTL)
        keys = access.add_deploy_key(ctx, gl, project, title, can_push=True)
        if keys is None:
            key_sweeper.forget(ctx, project.id, title)
            log.info("GitLab refused a write deploy key on %s; pushing with the user's token", project.path)
        else:
            try:
                yield project.ssh_url, access.ssh(ctx, keys.private_openssh)
            finally:
                key_sweeper.remove(ctx, project.id, title, token)
            return
    yield project.http_url, access.https(token)
