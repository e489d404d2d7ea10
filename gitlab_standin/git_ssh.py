"""Git over SSH for the stand-in: a real OpenSSH ``sshd`` on a loopback port that accepts
exactly the deploy keys currently enabled through the API.

sshd runs as root with its own configuration and ed25519 host key; clients log in as the
OS user ``git`` (created if missing). Every enabled key gets one ``authorized_keys`` line
whose forced command (``git_serve``) allows git-upload-pack (and git-receive-pack for
``can_push``, unless the project is archived) on the key's own projects only. The file is
rewritten atomically whenever deploy keys change or a project is archived, so a key works
exactly while it is enabled.
"""

from __future__ import annotations

import logging
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from gitlab_standin import git_serve
from gitlab_standin.store import DeployKey

log = logging.getLogger(__name__)

SSHD = "/usr/sbin/sshd"
LOGIN_USER = "git"

_CONFIG = """\
ListenAddress {host}:{port}
HostKey {host_key}
PidFile none
AuthorizedKeysFile {authorized_keys}
AllowUsers {user}
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
StrictModes no
UsePAM no
UseDNS no
PermitTTY no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
PrintMotd no
PrintLastLog no
AcceptEnv GIT_PROTOCOL
LogLevel VERBOSE
"""


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def ensure_login_user() -> pwd.struct_passwd:
    """The ``git`` account, created when missing. Its password field is ``*`` (no password
    login) rather than useradd's ``!``: with ``UsePAM no`` sshd refuses "locked" accounts
    even for public keys."""
    try:
        return pwd.getpwnam(LOGIN_USER)
    except KeyError:
        created = subprocess.run(
            ["useradd", "--system", "--create-home", "--shell", "/bin/sh", "--password", "*", LOGIN_USER],
            capture_output=True,
            text=True,
            check=False,
        )
    try:
        return pwd.getpwnam(LOGIN_USER)  # also when a concurrent session created it first
    except KeyError:
        raise RuntimeError(f"cannot create user {LOGIN_USER!r}: {created.stderr}") from None


def _mode(can_push: bool, archived: bool) -> str:
    """git-serve's mode for a project a key is enabled on (GitLab checks archived first)."""
    return "archived" if archived else "rw" if can_push else "ro"


def _runs_as(user: str, *command: str) -> bool:
    return subprocess.run(["runuser", "-u", user, "--", *command], capture_output=True, check=False).returncode == 0


class SshServer:
    """sshd serving the bare repositories under ``repos_root``; its files live in ``state_dir``."""

    def __init__(self, state_dir: Path, repos_root: Path, host: str, port: int = 0) -> None:
        if os.geteuid() != 0:
            raise RuntimeError("the stand-in's sshd must run as root (clients log in as the OS user 'git')")
        self.host = host
        self.port = port or free_port(host)
        self.account = ensure_login_user()
        self._state = state_dir
        self._repos_root = repos_root
        self._authorized_keys = state_dir / "authorized_keys"
        self._script = state_dir / "git-serve"
        self._interpreter = sys.executable
        self._process: subprocess.Popen | None = None

    @property
    def known_hosts_line(self) -> str:
        """``[host]:port ssh-ed25519 AAAA...``, for a client's UserKnownHostsFile."""
        key_type, key = (self._state / "host_ed25519.pub").read_text().split()[:2]
        return f"[{self.host}]:{self.port} {key_type} {key}"

    def start(self) -> None:
        self._state.mkdir(parents=True, exist_ok=True)
        self._state.chmod(0o755)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        host_key = self._state / "host_ed25519"
        if not host_key.exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "gitlab-standin", "-f", str(host_key)], check=True
            )
        shutil.copyfile(git_serve.__file__, self._script)
        self._script.chmod(0o755)
        self.write_authorized_keys([])
        self._check_login_user_reach()
        config = self._state / "sshd_config"
        config.write_text(
            _CONFIG.format(
                host=self.host,
                port=self.port,
                host_key=host_key,
                authorized_keys=self._authorized_keys,
                user=self.account.pw_name,
            )
        )
        with open(self._state / "sshd.log", "ab") as sshd_log:
            self._process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL, stdout=sshd_log, stderr=sshd_log
            )
        self._wait_ready()
        log.info("sshd listening on %s:%d", self.host, self.port)

    def log_size(self) -> int:
        """Where sshd's log ends now; pass it to :meth:`logins` to see only later logins."""
        log_file = self._state / "sshd.log"
        return log_file.stat().st_size if log_file.exists() else 0

    def logins(self, since: int = 0) -> list[str]:
        """SHA256 fingerprints of the keys sshd accepted, in order, after offset ``since``."""
        with open(self._state / "sshd.log", "rb") as log_file:
            log_file.seek(since)
            text = log_file.read().decode(errors="replace")
        return re.findall(r"Accepted publickey for \S+ from \S+ port \d+ ssh2: \S+ (SHA256:\S+)", text)

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def write_authorized_keys(self, grants: Iterable[tuple[DeployKey, list[tuple[str, bool, bool]]]]) -> None:
        """Replace the authorized keys atomically with one line per enabled deploy key."""
        lines = [self._authorized_line(key, projects) for key, projects in grants if projects]
        temporary = self._authorized_keys.with_suffix(".tmp")
        temporary.write_text("".join(line + "\n" for line in lines))
        temporary.chmod(0o644)
        os.replace(temporary, self._authorized_keys)

    def _authorized_line(self, key: DeployKey, projects: list[tuple[str, bool, bool]]) -> str:
        words = [self._interpreter, str(self._script), str(self._repos_root)]
        words += [f"{_mode(can_push, archived)}:{path}" for path, can_push, archived in projects]
        command = shlex.join(words).replace('"', '\\"')
        options = f'restrict,command="{command}"'
        if key.expires_at is not None:
            options += f',expiry-time="{key.expires_at:%Y%m%d%H%M%S}Z"'
        return f"{options} {key.public.openssh}"

    def _check_login_user_reach(self) -> None:
        """Pick an interpreter the ``git`` user can run, and make sure it reaches our files
        (pytest's basetemp and /root are mode 0700: a data dir there cannot work)."""
        user = self.account.pw_name
        self._interpreter = next(
            (python for python in (sys.executable, "/usr/bin/python3") if _runs_as(user, python, "-c", "")), ""
        )
        if not self._interpreter:
            raise RuntimeError(f"no Python interpreter that user {user!r} may run")
        if not _runs_as(user, "test", "-r", str(self._script), "-a", "-x", str(self._repos_root)):
            raise RuntimeError(
                f"user {user!r} cannot reach {self._state.parent}: every parent "
                "directory must be world-searchable (use e.g. a directory under /tmp)"
            )

    def _wait_ready(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self._state / 'sshd.log').read_text()[-2000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    if sock.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd did not answer on {self.host}:{self.port} within {timeout} s")
