"""Shallow ``git clone`` of one branch, over SSH with a deploy key or over HTTPS with a
token, without ever putting a secret in argv, a URL or a log line.

The key goes to git through ``GIT_SSH_COMMAND`` and a 0600 file in a private temporary
directory that is always removed; a token goes in an HTTP header set through git's
``GIT_CONFIG_*`` environment variables. The GitLab host's SSH key is always checked:
against the configured known_hosts lines, or learned on first use and kept.
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

from booklab.errors import CloneError, CloneUnavailable

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
    if (not branch or branch.startswith(("-", "/", ".")) or branch.endswith(("/", ".")) or branch == "@"
            or _FORBIDDEN_IN_BRANCH.search(branch)):
        raise CloneError(f"{branch!r} is not a valid branch name: pick an existing branch of the project.")


def clone(url: str, branch: str, dest: Path, credentials: SshCredentials | HttpsCredentials,
          timeout: float = 600) -> Iterator[str]:
    """Clone ``branch`` of ``url`` into ``dest`` (depth 1), yielding git's progress lines."""
    check_branch_name(branch)
    private = Path(tempfile.mkdtemp(prefix="booklab-git-"))
    try:
        env = _git_env(private, credentials)
        cmd = ["git", "clone", "--progress", "--depth", "1", "--single-branch",
               f"--branch={branch}", "--", url, str(dest)]
        lines: list[str] = []
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        try:
            for line in _lines(proc.stderr):
                lines.append(line)
                yield line
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise CloneError(f"git clone took longer than {timeout:.0f} s: try again later.") from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()
        if proc.returncode != 0:
            raise _explain(lines, branch)
        if isinstance(credentials, SshCredentials):
            credentials.known_hosts = (private / "known_hosts").read_text()
    finally:
        shutil.rmtree(private, ignore_errors=True)


def head_commit(checkout: Path) -> str:
    """The SHA of the commit checked out in ``checkout``."""
    out = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


def _git_env(private: Path, credentials: SshCredentials | HttpsCredentials) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(private), "LANG": "C.UTF-8",
           "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}
    if isinstance(credentials, SshCredentials):
        key = private / "id_ed25519"
        key.touch(mode=0o600)
        key.write_bytes(credentials.private_key)
        known = private / "known_hosts"
        known.write_text(credentials.known_hosts)
        checking = "yes" if credentials.known_hosts.strip() else "accept-new"
        env["GIT_SSH_COMMAND"] = " ".join(shlex.quote(a) for a in [
            "ssh", "-F", "/dev/null", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={known}", "-o", f"StrictHostKeyChecking={checking}",
            "-o", "ConnectTimeout=20",
        ])
    else:
        basic = base64.b64encode(f"{credentials.username}:{credentials.token}".encode()).decode()
        env.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
                    "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}"})
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


def _explain(lines: list[str], branch: str) -> CloneError:
    text = "\n".join(lines[-5:])
    if "Remote branch" in text and "not found" in text:
        return CloneError(f"Branch {branch!r} was not found in the repository: pick an existing branch.")
    if "Host key verification failed" in text or "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
        return CloneError("The GitLab server's SSH host key does not match the known one: check "
                          "gitlab/known_hosts in the configuration.")
    if "Permission denied" in text or "Authentication failed" in text or re.search(r"returned error: 40[134]", text):
        return CloneError(_NO_ACCESS)
    if _UNREACHABLE.search(text):
        return CloneUnavailable(f"git could not reach GitLab: {text}")
    if "could not read" in text:
        return CloneError(_NO_ACCESS)
    return CloneError(f"git clone failed: {text}")
