"""The git work of a deployment, without ever putting a secret in argv, a URL or a log
line: a shallow ``git clone`` of one branch; and, to save a notebook's changes, a shallow
fetch of one commit, a commit as the user and a push of a new branch.

Git talks to GitLab over SSH with a deploy key or over HTTPS with a token. The key goes to
git through ``GIT_SSH_COMMAND`` and a 0600 file in a private temporary directory that is
always removed; a token goes in an HTTP header set through git's ``GIT_CONFIG_*``
environment variables. The GitLab host's SSH key is always checked: against the configured
known_hosts lines, or learned on first use and kept.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from booklab.errors import CloneError, CloneUnavailable, DeployKeyNotAccepted, GitError, PushRejected

_FORBIDDEN_IN_BRANCH = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|/\.|\.lock(/|$)")


@dataclass
class SshCredentials:
    private_key: bytes
    #: known_hosts lines; after a clone that learned the host key, they include it
    known_hosts: str = ""

    def __repr__(self) -> str:
        return "SshCredentials(private_key=<hidden>)"


@dataclass(frozen=True)
class HttpsCredentials:
    token: str
    username: str = "oauth2"

    def __repr__(self) -> str:
        return f"HttpsCredentials(username={self.username!r}, token=<hidden>)"


def check_branch_name(branch: str) -> None:
    """Refuse what git would refuse as a branch name, and anything shaped like an option."""
    if (
        not branch
        or branch.startswith(("-", "/", "."))
        or branch.endswith(("/", "."))
        or branch == "@"
        or _FORBIDDEN_IN_BRANCH.search(branch)
    ):
        raise CloneError(f"{branch!r} is not a valid branch name: pick an existing branch of the project.")


def clone(
    url: str, branch: str, dest: Path, credentials: SshCredentials | HttpsCredentials, timeout: float = 600
) -> Iterator[str]:
    """Clone ``branch`` of ``url`` into ``dest`` (depth 1), yielding git's progress lines."""
    check_branch_name(branch)
    yield from _remote(
        ["clone", "--progress", "--depth", "1", "--single-branch", f"--branch={branch}", "--", url, str(dest)],
        credentials,
        timeout,
        what="clone",
        branch=branch,
    )


def fetch_commit(
    url: str, commit: str, dest: Path, credentials: SshCredentials | HttpsCredentials, timeout: float = 600
) -> None:
    """A new repository at ``dest`` whose work tree holds ``commit`` of ``url`` (depth 1)."""
    _local(dest.parent, "init", "--quiet", str(dest))
    fetch_more(dest, url, commit, credentials, timeout)
    _local(dest, *_inside(dest), "checkout", "--quiet", "--detach", commit)


def fetch_more(
    checkout: Path, url: str, commit: str, credentials: SshCredentials | HttpsCredentials, timeout: float = 600
) -> None:
    """Fetch one more commit of ``url`` (depth 1) into the repository ``checkout``."""
    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit):
        raise ValueError(f"{commit!r} is not a full commit SHA")
    for _ in _remote(
        [*_inside(checkout), "fetch", "--quiet", "--no-tags", "--depth", "1", "--", url, commit],
        credentials,
        timeout,
        what="fetch",
    ):
        pass


def tracked_files(checkout: Path) -> set[str]:
    """The paths the checked-out commit tracks."""
    return set(_local(checkout, *_inside(checkout), "ls-files", "-z").split("\0")) - {""}


def commit_work_tree(checkout: Path, parent: str, author: tuple[str, str], message: str) -> str | None:
    """A commit of the whole work tree (what ``.gitignore`` ignores aside) whose parent is
    ``parent``, by ``author`` (name, e-mail); its SHA, or None when its tree is the parent's."""
    inside = _inside(checkout)
    _local(checkout, *inside, "add", "--all")
    tree = _local(checkout, *inside, "write-tree").strip()
    if tree == _local(checkout, *inside, "rev-parse", f"{parent}^{{tree}}").strip():
        return None
    name, email = author
    identity = {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }
    return _local(checkout, *inside, "commit-tree", tree, "-p", parent, stdin=message, env=identity).strip()


def push(
    checkout: Path,
    url: str,
    commit: str,
    branch: str,
    credentials: SshCredentials | HttpsCredentials,
    timeout: float = 600,
) -> None:
    """Push ``commit`` to the branch ``branch`` of ``url``, never by force."""
    check_branch_name(branch)
    for _ in _remote(
        [*_inside(checkout), "push", "--porcelain", "--", url, f"{commit}:refs/heads/{branch}"],
        credentials,
        timeout,
        what="push",
        branch=branch,
    ):
        pass


def _inside(checkout: Path) -> list[str]:
    """Options that pin git to the checkout's own repository and turn off every command a
    repository's configuration could run (its files came from a notebook's container)."""
    return [
        "-c",
        "core.fsmonitor=false",
        "-c",
        "core.hooksPath=/dev/null",
        f"--git-dir={checkout / '.git'}",
        f"--work-tree={checkout}",
    ]


def _remote(
    args: list[str], credentials: SshCredentials | HttpsCredentials, timeout: float, what: str, branch: str = ""
) -> Iterator[str]:
    """Run ``git <args>`` that talks to GitLab with ``credentials``, yielding its stderr lines;
    learn GitLab's SSH host key into the credentials."""
    private = Path(tempfile.mkdtemp(prefix="booklab-git-"))
    try:
        env = _git_env(private, credentials)
        lines: list[str] = []
        proc = subprocess.Popen(
            ["git", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            for line in _lines(proc.stdout):
                lines.append(line)
                yield line
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise CloneError(f"git {what} took longer than {timeout:.0f} s: try again later.") from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        if proc.returncode != 0:
            raise _explain(lines, what, branch)
        if isinstance(credentials, SshCredentials):
            credentials.known_hosts = (private / "known_hosts").read_text()
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _local(checkout: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
    """Run a git command that stays on this machine, with no user configuration; its output."""
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/nonexistent",
        "LANG": "C.UTF-8",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
    }
    done = subprocess.run(
        ["git", "-C", str(checkout), *args],
        input=stdin,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        command = next(a for a in args if not a.startswith("-") and "=" not in a)
        raise GitError(f"git {command} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def head_commit(checkout: Path) -> str:
    """The SHA of the commit checked out in ``checkout``."""
    out = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _git_env(private: Path, credentials: SshCredentials | HttpsCredentials) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(private),
        "LANG": "C.UTF-8",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    if isinstance(credentials, SshCredentials):
        key = private / "id_ed25519"
        key.touch(mode=0o600)
        key.write_bytes(credentials.private_key)
        known = private / "known_hosts"
        known.write_text(credentials.known_hosts)
        checking = "yes" if credentials.known_hosts.strip() else "accept-new"
        env["GIT_SSH_COMMAND"] = " ".join(
            shlex.quote(a)
            for a in [
                "ssh",
                "-F",
                "/dev/null",
                "-i",
                str(key),
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                f"UserKnownHostsFile={known}",
                "-o",
                f"StrictHostKeyChecking={checking}",
                "-o",
                "ConnectTimeout=20",
            ]
        )
    else:
        basic = base64.b64encode(f"{credentials.username}:{credentials.token}".encode()).decode()
        env.update(
            {
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": "http.extraHeader",
                "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
            }
        )
    return env


def _lines(stream) -> Iterator[str]:
    """Split git's stderr on both newlines and the carriage returns of its progress meter."""
    buf = b""
    while chunk := stream.read1(4096):
        buf += chunk
        *done, buf = re.split(rb"[\r\n]", buf)
        for line in done:
            if line.strip():
                yield line.decode(errors="replace")
    if buf.strip():
        yield buf.decode(errors="replace")


#: what git and ssh print when GitLab could not be reached or failed on its side
_UNREACHABLE = re.compile(
    r"Could not resolve host|Failed to connect to|Connection refused|Connection timed out|Connection reset|"
    r"Connection closed by|kex_exchange_identification|Operation timed out|early EOF|"
    r"unexpected disconnect|RPC failed|returned error: 5\d\d|Empty reply from server"
)
_NO_ACCESS = "GitLab refused access to the repository: check that you can still read the project."


def _explain(lines: list[str], what: str, branch: str) -> CloneError:
    text = "\n".join(lines[-5:])
    if "Remote branch" in text and "not found" in text:
        return CloneError(f"Branch {branch!r} was not found in the repository: pick an existing branch.")
    if "Host key verification failed" in text or "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
        return CloneError(
            "The GitLab server's SSH host key does not match the known one: check "
            "gitlab/known_hosts in the configuration."
        )
    if what == "push" and re.search(
        r"\[rejected\].*\((fetch first|non-fast-forward|already exists|stale info)\)", text
    ):
        return PushRejected(f"Branch {branch!r} moved on GitLab.")
    if what == "push" and "push code to an archived project" in text:
        return CloneError(f"GitLab refused the push to branch {branch!r}: the project is archived (read-only).")
    if what == "push" and "[remote rejected]" in text:
        remote = "\n".join(line for line in lines if line.startswith("remote:")) or text
        return CloneError(f"GitLab refused the push to branch {branch!r}: {remote}")
    if what == "push" and re.search(r"not allowed to push|does not have write access|returned error: 403", text):
        return CloneError(f"GitLab refused the push to branch {branch!r}: your role cannot push to this project.")
    if "Permission denied (publickey" in text:
        return DeployKeyNotAccepted(_NO_ACCESS)
    if "Permission denied" in text or "Authentication failed" in text or re.search(r"returned error: 40[134]", text):
        return CloneError(_NO_ACCESS)
    if _UNREACHABLE.search(text):
        return CloneUnavailable(f"git could not reach GitLab: {text}")
    if "could not read" in text:
        return CloneError(_NO_ACCESS)
    return CloneError(f"git {what} failed: {text}")
