"""``GitLabStandIn``: starts and stops the stand-in (HTTP API + OAuth + git over HTTP in a
thread, sshd in a subprocess) and is the Python helper API tests use to set up users,
groups, projects, OAuth applications and repositories.

Typical use::

    gitlab = GitLabStandIn(data_dir).start()    # data_dir: reachable by user 'git'
    alice = gitlab.add_user("alice")             # alice.token: a personal access token
    gitlab.add_project("team/notebooks", {"alice": MAINTAINER})
    gitlab.push("team/notebooks", local_repo_dir)
    ...
    gitlab.stop()
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

from werkzeug.serving import make_server

from gitlab_standin.app import create_app
from gitlab_standin.context import Context
from gitlab_standin.git_ssh import SshServer
from gitlab_standin.repos import Repositories, head_branch, local_branches
from gitlab_standin.store import Fault, Group, Project, RecordedRequest, Store, User

log = logging.getLogger(__name__)

DEFAULT_SCOPES = "api read_api read_user read_repository openid profile email"


class GitLabStandIn:
    """One stand-in GitLab. Its files (bare repositories, sshd configuration and host key)
    live in ``data_dir``, whose parents must all be world-searchable (a directory under
    /tmp works; pytest's 0700 basetemp does not), because sshd serves git as user ``git``."""

    def __init__(self, data_dir: Path | str, host: str = "127.0.0.1", http_port: int = 0, ssh_port: int = 0) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self._http_port = http_port
        self.ssh = SshServer(self.data_dir / "ssh", self.data_dir / "repos", host, ssh_port)
        account = self.ssh.account
        self.repos = Repositories(self.data_dir / "repos", (account.pw_uid, account.pw_gid))
        self.store = Store(on_keys_changed=self._keys_changed)
        self._http = None
        self._thread: threading.Thread | None = None
        self._ssh_log_start = 0

    def _keys_changed(self) -> None:
        self.ssh.write_authorized_keys(self.store.ssh_grants())
        pending = self.store.keys_pending()
        if pending is not None:  # write them again when the next waiting key starts to work
            timer = threading.Timer(pending + 0.05, self._keys_changed)
            timer.daemon = True
            timer.start()

    # lifecycle

    def start(self) -> GitLabStandIn:
        """Start sshd and the HTTP server; returns self."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o755)
        self.repos.root.chmod(0o755)
        self.ssh.start()
        ctx = Context(self.store, self.repos, f"ssh://{self.ssh.account.pw_name}@{self.host}:{self.ssh.port}")
        self._http = make_server(self.host, self._http_port, create_app(ctx), threaded=True)
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, name="gitlab-standin-http", daemon=True
        )
        self._thread.start()
        log.info("GitLab stand-in at %s (ssh port %d, data %s)", self.url, self.ssh.port, self.data_dir)
        return self

    def stop(self) -> None:
        """Stop the HTTP server and sshd (files in ``data_dir`` stay)."""
        if self._http is not None:
            self._http.shutdown()
            self._thread.join()
            self._http.server_close()
            self._http = None
        self.ssh.stop()

    def __enter__(self) -> GitLabStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget users, groups, projects (and delete their repositories), deploy keys, tokens and
        the request log and pending faults. OAuth applications stay registered; ids are never reused."""
        self.store.reset()
        self.repos.delete_all()
        self._ssh_log_start = self.ssh.log_size()

    # addresses

    @property
    def url(self) -> str:
        """HTTP base URL, e.g. ``http://127.0.0.1:41234`` (API under ``/api/v4``)."""
        return f"http://{self.host}:{self._http.server_port}"

    @property
    def ssh_port(self) -> int:
        return self.ssh.port

    @property
    def known_hosts_line(self) -> str:
        """``[127.0.0.1]:<port> ssh-ed25519 AAAA...`` for a client's known_hosts file."""
        return self.ssh.known_hosts_line

    def ssh_url(self, project_path: str) -> str:
        """The project's ``ssh_url_to_repo``: ``ssh://git@127.0.0.1:<port>/<path>.git``."""
        return f"ssh://{self.ssh.account.pw_name}@{self.host}:{self.ssh.port}/{project_path}.git"

    # setup helpers

    def add_user(self, username: str, name: str | None = None, email: str | None = None) -> User:
        """A new user with ``.id``, ``.username``, ``.password`` and ``.token`` (a personal
        access token for ``PRIVATE-TOKEN`` or ``Authorization: Bearer``)."""
        return self.store.add_user(username, name, email)

    def add_oauth_app(self, redirect_uri: str | Iterable[str], scopes: str = DEFAULT_SCOPES) -> tuple[str, str]:
        """Register an OAuth application; returns ``(client_id, client_secret)``."""
        uris = [redirect_uri] if isinstance(redirect_uri, str) else list(redirect_uri)
        app = self.store.add_oauth_app(uris, scopes)
        return app.client_id, app.client_secret

    def issue_oauth_token(self, user: User | str, scope: str = "api") -> str:
        """An OAuth access token for ``user`` (a User or a username), as if after the flow."""
        found = self.store.user(user) if isinstance(user, str) else user
        if found is None:
            raise KeyError(user)
        return self.store.issue_token(found, scope=scope).access_token

    def add_project(
        self, path_with_namespace: str, members: Mapping[str, int] | None = None, default_branch: str = "main"
    ) -> Project:
        """A private project with an empty bare repository; ``members`` maps usernames
        to access levels (``gitlab_standin.store.REPORTER``, ``DEVELOPER``, ``MAINTAINER``...)."""
        project = self.store.add_project(path_with_namespace, members or {}, default_branch)
        self.repos.create(path_with_namespace, default_branch)
        self.repos.set_protected_branches(path_with_namespace, project.protected_branches)
        return project

    def set_member(self, project_path: str, username: str, access_level: int | None) -> None:
        """Change a user's access level on a project; None removes them."""
        self.store.set_member(project_path, username, access_level)

    def add_group(self, full_path: str, members: Mapping[str, int] | None = None) -> Group:
        """A private group; ``members`` maps usernames to access levels. A subgroup
        (``dept/lab``) needs its parent group first (ValueError otherwise, as GitLab needs a
        parent). As on GitLab, a group's members are members of its subgroups and of the
        projects in them (``dept/lab/notes`` is in ``dept/lab``) at the higher of their direct
        and inherited levels; its id is the ``namespace.id`` of those projects."""
        return self.store.add_group(full_path, members or {})

    def set_group_member(self, full_path: str, username: str, access_level: int | None) -> None:
        """Change a user's access level on the group itself; None removes them (a level
        inherited from a parent group stays)."""
        self.store.set_group_member(full_path, username, access_level)

    def set_admin(self, username: str, admin: bool = True) -> None:
        """Make the user an administrator of the GitLab server, or no longer one."""
        user = self.store.user(username)
        if user is None:
            raise ValueError(f"no user {username!r}")
        user.admin = admin

    def revoke_oauth_access(self, user: User) -> None:
        """The user revokes the OAuth applications' access in GitLab: their access and refresh
        tokens stop working."""
        self.store.revoke_tokens(user)

    def delay_deploy_keys(self, seconds: float) -> None:
        """Deploy keys added from now on work over SSH only ``seconds`` later, as on a
        self-hosted GitLab that writes its authorized keys from a background job (git is
        refused "Permission denied (publickey)" until then). ``reset()`` sets it back to 0."""
        self.store.key_delay = seconds

    def forbid_key_type(self, key_type: str) -> None:
        """Refuse deploy keys of ``key_type`` (e.g. ``ssh-ed25519``) with GitLab's 400, as an
        administrator's key restrictions do. ``reset()`` allows every type again."""
        self.store.forbidden_key_types.add(key_type)

    def protect_branches(self, project_path: str, pattern: str) -> None:
        """Protect the branches ``pattern`` matches (GitLab's ``*`` wildcard, e.g. ``booklab/*``),
        as the default branch is from the start, with GitLab's defaults: only Maintainers may
        push to them, over HTTP; deploy keys never; nobody force-pushes or deletes them with
        git. The repository's pre-receive hook refuses the push as GitLab's does; the branches
        API says ``protected``. ``reset()`` forgets the patterns with the projects."""
        project = self.store.project(project_path)
        if project is None:
            raise KeyError(project_path)
        self.store.protect_branches(project, pattern)
        self.repos.set_protected_branches(project_path, project.protected_branches)

    def archive(self, project_path: str) -> None:
        """Archive the project, as its owner would in GitLab: read-only from now on. Pushes
        are refused before any transfer with GitLab's "You can't push code to an archived
        project." (HTTP 403; over SSH, whatever the deploy key's can_push); clones and
        fetches go on, and Maintainers may still add deploy keys."""
        project = self.store.project(project_path)
        if project is None:
            raise KeyError(project_path)
        self.store.archive(project)

    def remove_project(self, project_path: str) -> None:
        """Delete the project at once, as GitLab does without delayed deletion: the API answers
        404 "Project Not Found", its deploy keys go with it (one enabled on no other project
        stops working over SSH), and git over HTTP and SSH answer as for an unknown project."""
        project = self.store.project(project_path)
        if project is None:
            raise KeyError(project_path)
        self.store.remove_project(project)
        self.repos.delete(project_path)

    def push(self, project_path: str, source_dir: Path | str) -> None:
        """Force-copy every branch and tag of the local git repository ``source_dir``."""
        if self.store.project(project_path) is None:
            raise KeyError(project_path)
        self.repos.import_branches(project_path, Path(source_dir))

    def import_repository(
        self, project_path: str, source_dir: Path | str, members: Mapping[str, int] | None = None
    ) -> Project:
        """A project holding every branch and tag of the local repository ``source_dir``;
        its default branch is the one ``source_dir``'s HEAD names (else ``main``, else the
        first). ValueError when the path is invalid or taken, or the repository has no branch."""
        source = Path(source_dir)
        branches = local_branches(source)
        if not branches:
            raise ValueError(f"{source} has no branch")
        default_branch = head_branch(source) or ("main" if "main" in branches else branches[0])
        project = self.add_project(project_path, members, default_branch)
        self.push(project_path, source)
        return project

    def advance_clock(self, seconds: float) -> None:
        """Move the stand-in's clock forward: OAuth access tokens (valid for
        ``store.ACCESS_TOKEN_TTL`` s, 2 hours as on GitLab) and codes expire as if that much
        time had passed. ``reset()`` sets it back."""
        self.store.now.advance(seconds)

    def fail_next(
        self,
        path_pattern: str,
        status: int = 502,
        times: int = 1,
        method: str | None = None,
        delay: float = 0.0,
        retry_after: int | None = None,
    ) -> None:
        """Make the next ``times`` HTTP requests whose path matches the regular expression
        ``path_pattern`` answer ``status`` after ``delay`` seconds, as a GitLab behind a
        failing proxy would (status 0: answer normally, only late). API and git over HTTP alike.
        ``retry_after``: a Retry-After header, as GitLab's rate limits answer 429 with it."""
        self.store.add_fault(Fault(re.compile(path_pattern), status, delay, times, method, retry_after))

    def faults_left(self) -> int:
        """How many requests the faults :meth:`fail_next` set will still answer (0: each met its requests; a
        request that met one may still be waiting out its delay)."""
        return self.store.faults_left()

    def deploy_keys(self, project_path: str) -> list[dict]:
        """The project's deploy keys, as ``GET /projects/:id/deploy_keys`` returns them."""
        project = self.store.project(project_path)
        if project is None:
            raise KeyError(project_path)
        return [key.as_json(can_push) for key, can_push in self.store.deploy_keys(project)]

    def ssh_logins(self) -> list[str]:
        """Fingerprints (``SHA256:...``) of the deploy keys git logged in with over SSH
        since the last reset."""
        return self.ssh.logins(self._ssh_log_start)

    def request_log(self) -> list[RecordedRequest]:
        """Every HTTP request served since the last reset: method, path, query, status, username."""
        return self.store.requests()
