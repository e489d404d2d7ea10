"""In-memory state of the GitLab stand-in: users, groups and projects and their members,
deploy keys, OAuth applications, codes and tokens, and a log of the requests served.

Thread-safe: every public method holds one re-entrant lock. Ids are never reused, not
even across ``reset()``, so a stale id from an earlier test can never name a new object.
"""

from __future__ import annotations

import fnmatch
import itertools
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from gitlab_standin.sshkeys import PublicKey, parse_public_key

GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER = 10, 20, 30, 40, 50
ACCESS_TOKEN_TTL = 7200
AUTHORIZATION_CODE_TTL = 600

_SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
PROJECT_PATH = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})+")
#: a group's full path: a top-level group (``dept``) or a subgroup (``dept/lab``, ``dept/lab/course``)
GROUP_PATH = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})*")
#: a protected branch pattern: ``*`` is GitLab's only wildcard, and no branch name holds
#: what fnmatch or sh would take for another one (``?``, ``[``, ``\``) or a space
BRANCH_PATTERN = re.compile(r"[^\s?\[\\]+")


class Clock:
    """The stand-in's time: the real time, moved forward by the tests that need hours to
    pass (:meth:`advance`), e.g. for OAuth access tokens to expire."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


def iso(moment: datetime | None) -> str | None:
    """GitLab's timestamp form: ``2024-05-01T12:00:00.000Z``."""
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class User:
    id: int
    username: str
    name: str
    email: str
    password: str
    token: str
    """A personal access token (``glpat-...``)."""
    created_at: datetime
    admin: bool = False
    """An administrator of the GitLab server (``is_admin`` in ``/user``)."""


@dataclass
class Project:
    id: int
    path_with_namespace: str
    default_branch: str
    created_at: datetime
    members: dict[int, int] = field(default_factory=dict)
    """user id -> access level"""
    deploy_keys: dict[int, bool] = field(default_factory=dict)
    """deploy key id -> can_push"""
    archived: bool = False
    """read-only, as GitLab's archived projects: listed unless ``archived=false``, pushes refused"""
    protected_branches: list[str] = field(default_factory=list)
    """GitLab's protected branch patterns (``*`` matches any characters, ``/`` too)"""

    @property
    def path(self) -> str:
        return self.path_with_namespace.rsplit("/", 1)[1]

    @property
    def namespace_path(self) -> str:
        return self.path_with_namespace.rsplit("/", 1)[0]

    def protects(self, branch: str) -> bool:
        return any(fnmatch.fnmatchcase(branch, pattern) for pattern in self.protected_branches)


@dataclass
class Group:
    """A private group. Its id is the id of its namespace (``Store.namespace_id``), the one the
    projects in it name; its name is its path (the stand-in gives groups no other name)."""

    id: int
    full_path: str
    created_at: datetime
    members: dict[int, int] = field(default_factory=dict)
    """user id -> access level given on this group itself (inherited ones are on its ancestors)"""

    @property
    def path(self) -> str:
        return self.full_path.rsplit("/", 1)[-1]

    @property
    def name(self) -> str:
        return self.path

    @property
    def full_name(self) -> str:
        """GitLab's ``full_name``: the names from the top-level group down, ``dept / lab``."""
        return self.full_path.replace("/", " / ")

    @property
    def parent_path(self) -> str | None:
        return self.full_path.rpartition("/")[0] or None


@dataclass(frozen=True)
class DeployKey:
    id: int
    title: str
    key: str
    public: PublicKey
    created_at: datetime
    expires_at: datetime | None

    def as_json(self, can_push: bool) -> dict:
        """The object GitLab returns for a key enabled on a project."""
        return {
            "id": self.id,
            "title": self.title,
            "key": self.key,
            "fingerprint": self.public.fingerprint,
            "fingerprint_sha256": self.public.fingerprint_sha256,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "can_push": can_push,
        }


@dataclass(frozen=True)
class OAuthApp:
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    scopes: str


@dataclass
class OAuthToken:
    access_token: str
    refresh_token: str
    user_id: int
    client_id: str | None
    scope: str
    created_at: datetime

    def as_json(self) -> dict:
        """The body of GitLab's ``POST /oauth/token`` answer."""
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_TTL,
            "refresh_token": self.refresh_token,
            "scope": self.scope,
            "created_at": int(self.created_at.timestamp()),
        }


@dataclass(frozen=True)
class AuthorizationCode:
    user_id: int
    client_id: str
    redirect_uri: str
    scope: str
    expires_at: datetime


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    status: int
    username: str | None


@dataclass
class Fault:
    """The next ``remaining`` requests matching ``path`` (and ``method``) answer ``status``
    after ``delay`` seconds; status 0 answers normally, only late."""

    path: re.Pattern
    status: int
    delay: float
    remaining: int
    method: str | None = None
    #: the answer's Retry-After header (seconds), as GitLab's rate limits send it with a 429
    retry_after: int | None = None

    def applies_to(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and bool(self.path.search(path))


class Store:
    """All state of one stand-in. ``on_keys_changed`` runs (under the lock) after every
    change of the deploy keys or of what they may do (a project archived or removed), so the
    SSH server can rewrite its authorized keys."""

    def __init__(self, on_keys_changed: Callable[[], None] = lambda: None) -> None:
        self._lock = threading.RLock()
        self.now = Clock()
        #: seconds before a deploy key just added works over SSH (a self-hosted GitLab writes
        #: its authorized keys from a background job); 0: at once
        self.key_delay = 0.0
        self._key_ready_at: dict[int, float] = {}
        #: key types (``ssh-ed25519``...) the instance refuses, as an administrator may restrict them
        self.forbidden_key_types: set[str] = set()
        self._ids = {kind: itertools.count(1) for kind in ("user", "project", "key", "namespace")}
        self._on_keys_changed = on_keys_changed
        self._apps: dict[str, OAuthApp] = {}
        self._clear()

    def _clear(self) -> None:
        self._users: dict[int, User] = {}
        self._projects: dict[int, Project] = {}
        self._groups: dict[int, Group] = {}
        self._keys: dict[int, DeployKey] = {}
        self._namespaces: dict[str, int] = {}
        self._codes: dict[str, AuthorizationCode] = {}
        self._tokens: dict[str, OAuthToken] = {}
        self._requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []

    def reset(self) -> None:
        """Forget users, groups, projects, keys, codes, tokens, faults and the request log, and set
        the clock back to the real time. OAuth applications stay registered (they are
        instance configuration, like on GitLab)."""
        with self._lock:
            self._clear()
            self.now.offset = timedelta(0)
            self.key_delay = 0.0
            self.forbidden_key_types = set()
            self._on_keys_changed()

    # users

    def add_user(self, username: str, name: str | None = None, email: str | None = None) -> User:
        with self._lock:
            if self.user(username) is not None or self._group_at(username) is not None:
                raise ValueError(f"username {username!r} is taken")
            user = User(
                id=next(self._ids["user"]),
                username=username,
                name=name or username.capitalize(),
                email=email or f"{username}@example.com",
                password=secrets.token_urlsafe(12),
                token="glpat-" + secrets.token_urlsafe(15),
                created_at=self.now(),
            )
            self._users[user.id] = user
            return user

    def user(self, username: str) -> User | None:
        with self._lock:
            return next((u for u in self._users.values() if u.username == username), None)

    def login(self, login: str, password: str) -> User | None:
        """The user whose username or email is ``login`` and whose password matches."""
        with self._lock:
            for user in self._users.values():
                if login in (user.username, user.email) and secrets.compare_digest(user.password, password):
                    return user
            return None

    def authenticate(self, private_token: str | None = None, bearer: str | None = None) -> User | None:
        """As GitLab: ``PRIVATE-TOKEN`` takes a personal access token; a Bearer token may be
        an unexpired OAuth access token or a personal access token."""
        with self._lock:
            if private_token:
                return next((u for u in self._users.values() if u.token == private_token), None)
            if not bearer:
                return None
            token = self._tokens.get(bearer)
            if token is not None and token.created_at + timedelta(seconds=ACCESS_TOKEN_TTL) > self.now():
                return self._users.get(token.user_id)
            return next((u for u in self._users.values() if u.token == bearer), None)

    def scopes(self, bearer: str | None) -> set[str] | None:
        """The scopes of an OAuth access token; None for a personal access token (the
        stand-in's have every scope)."""
        with self._lock:
            token = self._tokens.get(bearer or "")
            return None if token is None else set(token.scope.split())

    # projects

    def add_project(self, path_with_namespace: str, members: Mapping[str, int], default_branch: str) -> Project:
        with self._lock:
            if not PROJECT_PATH.fullmatch(path_with_namespace) or path_with_namespace.endswith(".git"):
                raise ValueError(f"invalid project path {path_with_namespace!r}")
            if self.project(path_with_namespace) is not None:
                raise ValueError(f"project {path_with_namespace!r} exists")
            if self._group_at(path_with_namespace) is not None:
                raise ValueError(f"group {path_with_namespace!r} holds that path")
            project = Project(next(self._ids["project"]), path_with_namespace, default_branch, self.now())
            project.protected_branches.append(default_branch)  # GitLab's default branch protection
            self._projects[project.id] = project
            for username, level in members.items():
                self.set_member(path_with_namespace, username, level)
            return project

    def set_member(self, path_with_namespace: str, username: str, access_level: int | None) -> None:
        """Give ``username`` that access level on the project, or remove them with None."""
        with self._lock:
            project, user = self.project(path_with_namespace), self.user(username)
            if project is None or user is None:
                raise KeyError(path_with_namespace if project is None else username)
            if access_level is None:
                project.members.pop(user.id, None)
            else:
                project.members[user.id] = access_level

    def project(self, ref: str) -> Project | None:
        """A project by numeric id or by full path, in any case: GitLab's paths are unique regardless of case, and
        it finds ``Demo/Notebooks`` at ``demo/notebooks`` (its answer names the path as it was created)."""
        with self._lock:
            if ref.isdigit():
                return self._projects.get(int(ref))
            wanted = ref.casefold()
            return next((p for p in self._projects.values() if p.path_with_namespace.casefold() == wanted), None)

    def all_projects(self) -> list[Project]:
        """Every project, oldest first."""
        with self._lock:
            return list(self._projects.values())

    def remove_project(self, project: Project) -> None:
        """Forget the project and its deploy keys (a key left on no project is deleted)."""
        with self._lock:
            for key_id in list(project.deploy_keys):
                self.remove_deploy_key(project, key_id)
            del self._projects[project.id]

    def protect_branches(self, project: Project, pattern: str) -> None:
        """Protect the branches ``pattern`` matches; ValueError when it is not a GitLab pattern."""
        if not BRANCH_PATTERN.fullmatch(pattern):
            raise ValueError(f"invalid protected branch pattern {pattern!r}")
        with self._lock:
            project.protected_branches.append(pattern)

    def archive(self, project: Project) -> None:
        with self._lock:
            project.archived = True
            self._on_keys_changed()

    def access_level(self, project: Project, user: User) -> int:
        """``user``'s level on the project: the higher of their own and the one they have on
        the group holding it (its namespace, when that is a group), as on GitLab; 0 for none."""
        with self._lock:
            return max(project.members.get(user.id, 0), self.inherited_level(project, user))

    def inherited_level(self, project: Project, user: User) -> int:
        """``user``'s level on the group holding the project; 0 when none (or no group holds it)."""
        with self._lock:
            group = self._group_at(project.namespace_path)
            return self.group_access_level(group, user) if group is not None else 0

    def projects_of(self, user: User) -> list[Project]:
        """The projects ``user`` is a member of, directly or through a group, oldest first."""
        with self._lock:
            return [p for p in self._projects.values() if self.access_level(p, user)]

    def namespace_id(self, full_path: str) -> int:
        with self._lock:
            if full_path not in self._namespaces:
                self._namespaces[full_path] = next(self._ids["namespace"])
            return self._namespaces[full_path]

    # groups

    def add_group(self, full_path: str, members: Mapping[str, int]) -> Group:
        """A group at ``full_path``; ValueError when the path is invalid, when a group, project
        or user already holds it (whatever the case: GitLab's paths are unique), or when a
        subgroup's parent group does not exist."""
        with self._lock:
            if not GROUP_PATH.fullmatch(full_path) or full_path.endswith(".git"):
                raise ValueError(f"invalid group path {full_path!r}")
            parent = full_path.rpartition("/")[0]
            if parent and self._group_at(parent) is None:
                raise ValueError(f"parent group {parent!r} does not exist")
            if self._path_taken(full_path):
                raise ValueError(f"path {full_path!r} is taken")
            group = Group(self.namespace_id(full_path), full_path, self.now())
            self._groups[group.id] = group
            for username, level in members.items():
                self.set_group_member(full_path, username, level)
            return group

    def _path_taken(self, full_path: str) -> bool:
        paths = [g.full_path for g in self._groups.values()]
        paths += [p.path_with_namespace for p in self._projects.values()]
        paths += [u.username for u in self._users.values()]
        return full_path.lower() in {path.lower() for path in paths}

    def set_group_member(self, full_path: str, username: str, access_level: int | None) -> None:
        """Give ``username`` that access level on the group itself, or remove them with None
        (a level inherited from an ancestor stays)."""
        with self._lock:
            group, user = self._group_at(full_path), self.user(username)
            if group is None or user is None:
                raise KeyError(full_path if group is None else username)
            if access_level is None:
                group.members.pop(user.id, None)
            else:
                group.members[user.id] = access_level

    def group(self, ref: str) -> Group | None:
        """A group by numeric id or by full path (in any case, as GitLab finds it)."""
        with self._lock:
            return self._groups.get(int(ref)) if ref.isdigit() else self._group_at(ref)

    def _group_at(self, full_path: str) -> Group | None:
        return next((g for g in self._groups.values() if g.full_path.lower() == full_path.lower()), None)

    def all_groups(self) -> list[Group]:
        """Every group, oldest first."""
        with self._lock:
            return list(self._groups.values())

    def _self_and_ancestors(self, group: Group) -> list[Group]:
        chain = [group]
        while chain[-1].parent_path is not None:
            chain.append(self._group_at(chain[-1].parent_path))
        return chain

    def group_access_level(self, group: Group, user: User) -> int:
        """``user``'s level on the group: the highest they were given on it or on an ancestor
        (membership is inherited downwards, as on GitLab); 0 for none."""
        with self._lock:
            return max(g.members.get(user.id, 0) for g in self._self_and_ancestors(group))

    def groups_of(self, user: User) -> list[Group]:
        """The groups GitLab lists for ``user`` (not an administrator) without
        ``min_access_level``, oldest first: those they are a member of, directly or through an
        ancestor, those holding a project they are a member of, and every ancestor of these,
        whose name they see though they may not open it."""
        with self._lock:
            reached = [g for g in self._groups.values() if self.group_access_level(g, user)]
            reached += [g for p in self.projects_of(user) if (g := self._group_at(p.namespace_path))]
            listed = {a.id for g in reached for a in self._self_and_ancestors(g)}
            return [g for g in self._groups.values() if g.id in listed]

    def owned_groups(self, user: User) -> list[Group]:
        """The groups ``user`` was made Owner of (on the group itself, not inherited), oldest first."""
        with self._lock:
            return [g for g in self._groups.values() if g.members.get(user.id) == OWNER]

    def can_read_group(self, group: Group, user: User) -> bool:
        """GitLab's ``read_group`` on a private group: a member (directly or through an
        ancestor), or a member of a project in it or in one of its subgroups."""
        with self._lock:
            if self.group_access_level(group, user):
                return True
            holders = [self._group_at(p.namespace_path) for p in self.projects_of(user)]
            return any(group in self._self_and_ancestors(h) for h in holders if h is not None)

    # deploy keys

    def add_deploy_key(
        self, project: Project, title: str, key: str, can_push: bool, expires_at: datetime | None
    ) -> tuple[DeployKey, bool]:
        """Enable a public key on the project (ValueError if it is not one), as GitLab: a
        key already on the project is returned as is; a key known from another project is
        shared (same id); else a new key is made."""
        public = parse_public_key(key)
        with self._lock:
            known = next((k for k in self._keys.values() if k.public.openssh == public.openssh), None)
            if known is not None and known.id in project.deploy_keys:
                return known, project.deploy_keys[known.id]
            if known is None:
                known = DeployKey(next(self._ids["key"]), title, key.strip(), public, self.now(), expires_at)
                self._keys[known.id] = known
                self._key_ready_at[known.id] = time.monotonic() + self.key_delay
            project.deploy_keys[known.id] = can_push
            self._on_keys_changed()
            return known, can_push

    def deploy_keys(self, project: Project) -> list[tuple[DeployKey, bool]]:
        with self._lock:
            return [(self._keys[key_id], can_push) for key_id, can_push in project.deploy_keys.items()]

    def remove_deploy_key(self, project: Project, key_id: int) -> bool:
        """Disable the key on the project; a key left on no project is deleted."""
        with self._lock:
            if project.deploy_keys.pop(key_id, None) is None:
                return False
            if not any(key_id in p.deploy_keys for p in self._projects.values()):
                del self._keys[key_id]
            self._on_keys_changed()
            return True

    def keys_pending(self) -> float | None:
        """Seconds until the next deploy key added works over SSH; None when none waits."""
        with self._lock:
            waits = [at - time.monotonic() for key_id, at in self._key_ready_at.items() if key_id in self._keys]
            pending = [wait for wait in waits if wait > 0]
            return min(pending) if pending else None

    def ssh_grants(self) -> list[tuple[DeployKey, list[tuple[str, bool, bool]]]]:
        """Every deploy key that works over SSH now (see ``key_delay``), with the (project path,
        can_push, archived) triples of the projects it is enabled on."""
        with self._lock:
            return [
                (
                    key,
                    [
                        (p.path_with_namespace, p.deploy_keys[key.id], p.archived)
                        for p in self._projects.values()
                        if key.id in p.deploy_keys
                    ],
                )
                for key in self._keys.values()
                if self._key_ready_at.get(key.id, 0) <= time.monotonic()
            ]

    # OAuth

    def add_oauth_app(self, redirect_uris: Iterable[str], scopes: str) -> OAuthApp:
        with self._lock:
            app = OAuthApp(secrets.token_hex(32), "gloas-" + secrets.token_hex(32), tuple(redirect_uris), scopes)
            self._apps[app.client_id] = app
            return app

    def oauth_app(self, client_id: str) -> OAuthApp | None:
        with self._lock:
            return self._apps.get(client_id)

    def create_code(self, app: OAuthApp, user: User, redirect_uri: str, scope: str) -> str:
        with self._lock:
            code = secrets.token_hex(32)
            self._codes[code] = AuthorizationCode(
                user.id, app.client_id, redirect_uri, scope, self.now() + timedelta(seconds=AUTHORIZATION_CODE_TTL)
            )
            return code

    def redeem_code(self, app: OAuthApp, code: str, redirect_uri: str) -> OAuthToken | None:
        """Exchange a code once; None if unknown, used, expired, or for another client/URI."""
        with self._lock:
            grant = self._codes.pop(code, None)
            if (
                grant is None
                or grant.client_id != app.client_id
                or grant.redirect_uri != redirect_uri
                or grant.expires_at < self.now()
            ):
                return None
            return self.issue_token(self._users[grant.user_id], app.client_id, grant.scope)

    def revoke_tokens(self, user: User) -> None:
        """Forget every OAuth token of ``user``, as when they revoke an application's access."""
        with self._lock:
            self._tokens = {k: t for k, t in self._tokens.items() if t.user_id != user.id}

    def refresh(self, app: OAuthApp, refresh_token: str) -> OAuthToken | None:
        """Rotate a refresh token: the old access and refresh tokens stop working."""
        with self._lock:
            old = next(
                (t for t in self._tokens.values() if t.refresh_token == refresh_token and t.client_id == app.client_id),
                None,
            )
            if old is None:
                return None
            del self._tokens[old.access_token]
            return self.issue_token(self._users[old.user_id], app.client_id, old.scope)

    def issue_token(self, user: User, client_id: str | None = None, scope: str = "api") -> OAuthToken:
        with self._lock:
            token = OAuthToken(secrets.token_hex(32), secrets.token_hex(32), user.id, client_id, scope, self.now())
            self._tokens[token.access_token] = token
            return token

    # injected faults

    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def faults_left(self) -> int:
        """How many requests the pending faults will still answer."""
        with self._lock:
            return sum(fault.remaining for fault in self._faults)

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The first pending fault for this request, counted as used; None when none applies."""
        with self._lock:
            for fault in self._faults:
                if fault.applies_to(method, path):
                    fault.remaining -= 1
                    if not fault.remaining:
                        self._faults.remove(fault)
                    return fault
            return None

    # request log

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)
