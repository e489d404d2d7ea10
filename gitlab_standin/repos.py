"""The stand-in's bare git repositories, ``<root>/<path_with_namespace>.git``: creation,
import of a local repository's branches, branch/commit facts for the API, and the local
repositories found in a directory (what ``--repos`` serves).

Repositories belong to the SSH login user (``git``) so that pushes over SSH can write
them; the stand-in itself (root) reaches them with ``safe.directory=*`` given in the
environment, which git treats as command-line (trusted) configuration, and runs what
writes them on behalf of a client (git over HTTP) as that user. Each has the stand-in's
``pre-receive`` hook and the list of protected branch patterns it reads (see ``hooks``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gitlab_standin.hooks import PRE_RECEIVE, PROTECTED_BRANCHES

_FIELDS = (
    "%(refname:lstrip=2)",
    "%(objectname)",
    "%(parent)",
    "%(authorname)",
    "%(authoremail:trim)",
    "%(authordate:iso-strict)",
    "%(committername)",
    "%(committeremail:trim)",
    "%(committerdate:iso-strict)",
    "%(contents)",
)


@dataclass(frozen=True)
class Commit:
    id: str
    parent_ids: list[str]
    author_name: str
    author_email: str
    authored_date: str
    committer_name: str
    committer_email: str
    committed_date: str
    message: str

    @property
    def title(self) -> str:
        return self.message.split("\n", 1)[0]


@dataclass(frozen=True)
class Branch:
    name: str
    commit: Commit
    merged: bool
    """Whether it is merged into the default branch (never true for that branch itself)."""


def git_env() -> dict[str, str]:
    """The environment for git commands the stand-in runs on repositories it does not own."""
    return {**os.environ, "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*"}


def _run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *map(str, args)], env=git_env(), capture_output=True, check=False)


def _git(*args: str | Path) -> str:
    done = _run(*args)
    if done.returncode:
        raise RuntimeError(f"git {' '.join(map(str, args))} failed: {done.stderr.decode(errors='replace')}")
    return done.stdout.decode()


def is_repository(directory: Path) -> bool:
    """Whether ``directory`` is itself a git repository (bare, or the top of a work tree),
    not merely a directory inside one."""
    directory = directory.resolve()
    git_dir = _run("-C", directory, "rev-parse", "--absolute-git-dir")
    if git_dir.returncode:
        return False
    if Path(git_dir.stdout.decode().strip()) == directory:
        return True
    top = _run("-C", directory, "rev-parse", "--show-toplevel")
    return top.returncode == 0 and Path(top.stdout.decode().strip()) == directory


def find_repositories(directory: Path) -> list[Path]:
    """The git repositories directly in ``directory``, sorted by name."""
    return sorted(entry for entry in directory.iterdir() if entry.is_dir() and is_repository(entry))


def local_branches(source_dir: Path) -> list[str]:
    """The branch names of the local repository ``source_dir``, sorted."""
    return sorted(_git("-C", source_dir, "for-each-ref", "--format=%(refname:lstrip=2)", "refs/heads").split())


def head_branch(source_dir: Path) -> str | None:
    """The branch the local repository's HEAD names, when it names one that exists."""
    head = _run("-C", source_dir, "symbolic-ref", "--quiet", "--short", "HEAD")
    name = head.stdout.decode().strip()
    return name if head.returncode == 0 and name in local_branches(source_dir) else None


class Repositories:
    """Bare repositories under ``root``, chowned to ``owner`` (uid, gid) when given."""

    def __init__(self, root: Path, owner: tuple[int, int] | None) -> None:
        self.root = root
        self._owner = owner
        root.mkdir(parents=True, exist_ok=True)

    def path(self, project_path: str) -> Path:
        return self.root / f"{project_path}.git"

    def create(self, project_path: str, default_branch: str) -> None:
        repo = self.path(project_path)
        _git("init", "--quiet", "--bare", "--template=", f"--initial-branch={default_branch}", repo)
        for directory in repo.relative_to(self.root).parents:
            (self.root / directory).chmod(0o755)  # the SSH user must reach it whatever the umask
        hook = repo / "hooks" / "pre-receive"
        hook.parent.mkdir(exist_ok=True)
        hook.write_text(PRE_RECEIVE)
        hook.chmod(0o755)
        self._chown(repo)

    def set_protected_branches(self, project_path: str, patterns: list[str]) -> None:
        """Write the patterns the pre-receive hook protects, world-readable."""
        listing = self.path(project_path) / PROTECTED_BRANCHES
        listing.write_text("".join(pattern + "\n" for pattern in patterns))
        listing.chmod(0o644)
        if self._owner is not None:
            os.chown(listing, *self._owner)

    def delete(self, project_path: str) -> None:
        shutil.rmtree(self.path(project_path))

    def delete_all(self) -> None:
        for entry in self.root.iterdir():
            shutil.rmtree(entry)

    def import_branches(self, project_path: str, source_dir: Path) -> None:
        """Copy every branch and tag of the local repository ``source_dir`` (forced)."""
        repo = self.path(project_path)
        _git(
            "-C",
            repo,
            "fetch",
            "--quiet",
            "--force",
            "--no-tags",
            Path(source_dir).resolve(),
            "+refs/heads/*:refs/heads/*",
            "+refs/tags/*:refs/tags/*",
        )
        self._chown(repo)

    def branches(self, project_path: str, default_branch: str) -> list[Branch]:
        """All branches, sorted by name, with their head commits."""
        repo = self.path(project_path)
        fmt = "%00".join(_FIELDS) + "%00"
        fields = _git("-C", repo, "for-each-ref", f"--format={fmt}", "refs/heads").split("\0")[:-1]
        merged: set[str] = set()
        if any(fields[i].lstrip("\n") == default_branch for i in range(0, len(fields), len(_FIELDS))):
            merged = set(
                _git(
                    "-C",
                    repo,
                    "for-each-ref",
                    f"--merged=refs/heads/{default_branch}",
                    "--format=%(refname:lstrip=2)",
                    "refs/heads",
                ).splitlines()
            )
            merged.discard(default_branch)
        branches = []
        for i in range(0, len(fields), len(_FIELDS)):
            name, sha, parents, a_name, a_mail, a_date, c_name, c_mail, c_date, message = fields[i : i + len(_FIELDS)]
            name = name.lstrip("\n")
            commit = Commit(sha, parents.split(), a_name, a_mail, a_date, c_name, c_mail, c_date, message)
            branches.append(Branch(name, commit, name in merged))
        return sorted(branches, key=lambda b: b.name)

    def count_commits(self, project_path: str, branch: str, base: str) -> int:
        """How many commits ``branch`` has that the branch ``base`` does not."""
        return int(
            _git(
                "-C",
                self.path(project_path),
                "rev-list",
                "--count",
                f"refs/heads/{branch}",
                "--not",
                f"refs/heads/{base}",
                "--",
            )
        )

    def run_as_owner(self, command: list[str], stdin: bytes, env: Mapping[str, str]) -> subprocess.CompletedProcess:
        """Run ``command`` in ``root`` as the repositories' owner (with no supplementary
        groups), so that what it writes stays theirs; output captured."""
        identity: dict = {}
        if self._owner is not None:
            identity = {"user": self._owner[0], "group": self._owner[1], "extra_groups": []}
            env = {**env, "HOME": pwd.getpwuid(self._owner[0]).pw_dir}  # not root's, which it cannot read
        return subprocess.run(
            command, input=stdin, env=env, cwd=self.root, capture_output=True, check=False, **identity
        )

    def _chown(self, repo: Path) -> None:
        if self._owner is None:
            return
        uid, gid = self._owner
        os.chown(repo, uid, gid)
        for parent, dirs, files in os.walk(repo):
            for name in dirs + files:
                os.chown(os.path.join(parent, name), uid, gid, follow_symlinks=False)
