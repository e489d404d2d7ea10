"""The GitLab REST API v4 subset Booklab uses: ``/user``, ``/projects`` (membership
listing and one project by id or URL-encoded path), ``/projects/:id/repository/branches``,
``/projects/:id/deploy_keys`` and ``/groups`` (the groups a user sees, one group by id or
URL-encoded path), with GitLab's authentication headers, error bodies, permission rules
and offset-pagination headers.

Project and group ids and branch names arrive URL-encoded (``group%2Fproject``,
``feature%2F%C3%A9t%C3%A9``); werkzeug decodes ``%2F`` before routing, so project and group
routes are dispatched on the raw request path instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from urllib.parse import quote, unquote, urlencode, urlsplit

from flask import Blueprint, Response, g, jsonify, request

from gitlab_standin.context import base_url, context
from gitlab_standin.repos import Branch
from gitlab_standin.store import DEVELOPER, GUEST, MAINTAINER, OWNER, REPORTER, Group, Project, iso

bp = Blueprint("api", __name__, url_prefix="/api/v4")

DEFAULT_PER_PAGE, MAX_PER_PAGE = 20, 100
PROJECT_ORDER = {
    "id": lambda p: p.id,
    "created_at": lambda p: p.id,
    "updated_at": lambda p: p.id,
    "last_activity_at": lambda p: p.id,
    "name": lambda p: p.path.lower(),
    "path": lambda p: p.path,
}
#: ``GET /groups``'s ``order_by`` (ties by id, ascending); the stand-in ranks no similarity
#: and orders by name instead, as GitLab does without a search
GROUP_ORDER = {
    "name": lambda group: group.name.lower(),
    "path": lambda group: group.path.lower(),
    "id": lambda group: group.id,
    "similarity": lambda group: group.name.lower(),
}
#: the ``min_access_level`` values GitLab takes (Guest to Owner)
ACCESS_LEVELS = (GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER)
#: GitLab's search finds words this long anywhere in a name; a shorter query only as a whole name
MIN_SEARCH_WORD = 3


def error(status: int, message: object, key: str = "message") -> Response:
    response = jsonify({key: message})
    response.status_code = status
    return response


@bp.before_request
def authenticate() -> Response | None:
    authorization = request.headers.get("Authorization", "")
    bearer = authorization[7:].strip() if authorization[:7].lower() == "bearer " else None
    user = context().store.authenticate(request.headers.get("PRIVATE-TOKEN"), bearer)
    if user is None:
        return error(401, "401 Unauthorized")
    scopes = context().store.scopes(bearer)
    needed: tuple[str, ...] = ("api", "read_api") if request.method in ("GET", "HEAD") else ("api",)
    if request.method in ("GET", "HEAD") and (
        request.path == "/api/v4/user" or request.path.startswith("/api/v4/users")
    ):
        needed += ("read_user",)  # as GitLab: the user's own profile, and the read-only /users endpoints
    if scopes is not None and not scopes & set(needed):  # as GitLab: 403 naming the scopes that would do
        response = jsonify(
            {
                "error": "insufficient_scope",
                "error_description": "The request requires higher privileges than provided by the access token.",
                "scope": " ".join(needed),
            }
        )
        response.status_code = 403
        return response
    g.user = user
    return None


def raw_path() -> str:
    """The request path exactly as sent, percent-escapes intact."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or quote(request.path)
    return urlsplit(raw).path


def paginate(items: Sequence, serialize: Callable[[object], dict]) -> Response:
    """One page of ``items`` with GitLab's X-* headers and Link (prev, next, first, last)."""
    page = max(_int_arg("page", 1), 1)
    per_page = min(max(_int_arg("per_page", DEFAULT_PER_PAGE), 1), MAX_PER_PAGE)
    total_pages = math.ceil(len(items) / per_page)
    response = jsonify([serialize(item) for item in items[(page - 1) * per_page : page * per_page]])

    def link(number: int, rel: str) -> str:
        query = {**request.args.to_dict(), "page": number, "per_page": per_page}
        return f'<{base_url()}{raw_path()}?{urlencode(query)}>; rel="{rel}"'

    links = [link(page - 1, "prev")] if page > 1 else []
    links += [link(page + 1, "next")] if page < total_pages else []
    links += [link(1, "first"), link(max(total_pages, 1), "last")]
    response.headers.update(
        {
            "X-Total": str(len(items)),
            "X-Total-Pages": str(total_pages),
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Next-Page": str(page + 1) if page < total_pages else "",
            "X-Prev-Page": str(page - 1) if page > 1 else "",
            "Link": ", ".join(links),
        }
    )
    return response


def _int_arg(name: str, default: int) -> int:
    value = request.args.get(name, "")
    return int(value) if value.isdigit() else default


def _bool(value: object) -> bool:
    return value is True or str(value).lower() in ("true", "1", "yes", "t")


@bp.get("/user")
def current_user() -> Response:
    """The authenticated user; ``commit_email`` is the primary email (the stand-in sets no other).
    As GitLab does, ``is_admin`` is there only for an administrator (true)."""
    user = g.user
    admin = {"is_admin": True} if user.admin else {}
    return jsonify(
        {
            **admin,
            "id": user.id,
            "username": user.username,
            "name": user.name,
            "email": user.email,
            "commit_email": user.email,
            "public_email": None,
            "state": "active",
            "locked": False,
            "avatar_url": None,
            "web_url": f"{base_url()}/{user.username}",
            "created_at": iso(user.created_at),
            "bio": "",
            "bot": False,
            "two_factor_enabled": False,
            "external": False,
            "private_profile": False,
        }
    )


@bp.get("/projects")
def list_projects() -> Response:
    store = context().store
    projects = store.projects_of(g.user)
    search = request.args.get("search", "").lower()
    if search:  # GitLab matches the project's own name and path, and its namespaces only when asked
        with_namespaces = _bool(request.args.get("search_namespaces", "false"))
        projects = [p for p in projects if search in (p.path_with_namespace if with_namespaces else p.path).lower()]
    if "archived" in request.args:
        archived = _bool(request.args["archived"])
        projects = [p for p in projects if p.archived == archived]
    min_level = _int_arg("min_access_level", 0)
    projects = [p for p in projects if store.access_level(p, g.user) >= min_level]
    order = PROJECT_ORDER.get(request.args.get("order_by", "created_at"), PROJECT_ORDER["created_at"])
    projects.sort(key=order, reverse=request.args.get("sort", "desc") != "asc")
    simple = _bool(request.args.get("simple", "false"))
    return paginate(projects, lambda p: project_json(p, simple))


def project_json(project: Project, simple: bool = False) -> dict:
    """GitLab's project entity; ``simple`` drops what ``?simple=true`` drops."""
    ctx, base = context(), base_url()
    full = project.path_with_namespace
    owner = ctx.store.user(project.namespace_path)
    namespace_name = owner.name if owner else project.namespace_path.replace("/", " / ")
    data = {
        "id": project.id,
        "description": "",
        "name": project.path,
        "name_with_namespace": f"{namespace_name} / {project.path}",
        "path": project.path,
        "path_with_namespace": full,
        "created_at": iso(project.created_at),
        "default_branch": project.default_branch,
        "tag_list": [],
        "topics": [],
        "ssh_url_to_repo": f"{ctx.ssh_base}/{full}.git",
        "http_url_to_repo": f"{base}/{full}.git",
        "web_url": f"{base}/{full}",
        "readme_url": None,
        "avatar_url": None,
        "forks_count": 0,
        "star_count": 0,
        "last_activity_at": iso(project.created_at),
        "archived": project.archived,
        "namespace": _namespace_json(project.namespace_path, owner.name if owner else None),
    }
    if not simple:
        direct, inherited = project.members.get(g.user.id, 0), ctx.store.inherited_level(project, g.user)
        data.update(
            {
                "visibility": "private",
                "permissions": {"project_access": _access_json(direct), "group_access": _access_json(inherited)},
            }
        )
    return data


def _access_json(level: int) -> dict | None:
    """A ``permissions`` entry: the level given on the project itself or on its group; None without."""
    return {"access_level": level, "notification_level": 3} if level else None


def _namespace_json(full_path: str, owner_name: str | None) -> dict:
    store, base = context().store, base_url()
    parent, _, path = full_path.rpartition("/")
    return {
        "id": store.namespace_id(full_path),
        "name": owner_name or path,
        "path": path,
        "kind": "user" if owner_name else "group",
        "full_path": full_path,
        "parent_id": store.namespace_id(parent) if parent else None,
        "avatar_url": None,
        "web_url": f"{base}/{full_path}" if owner_name else f"{base}/groups/{full_path}",
    }


@bp.route("/projects/<path:_rest>", methods=["GET", "POST", "PUT", "DELETE"])
def project_routes(_rest: str) -> Response:
    ref, *segments = [unquote(s) for s in raw_path().split("/")[4:]]
    store = context().store
    project = store.project(ref)
    if project is None or store.access_level(project, g.user) == 0:
        return error(404, "404 Project Not Found")
    match segments, request.method:
        case [], "GET":
            return jsonify(project_json(project))
        case ["repository", "branches", *name], "GET":
            return _branches(project, "/".join(name))
        case ["deploy_keys", *key_id], _:
            return _deploy_keys(project, key_id)
    return error(404, "404 Not Found", key="error")


def _branches(project: Project, name: str) -> Response:
    level = context().store.access_level(project, g.user)
    if level < REPORTER:
        return error(403, "403 Forbidden")
    branches = context().repos.branches(project.path_with_namespace, project.default_branch)
    if name:
        branch = next((b for b in branches if b.name == name), None)
        if branch is None:
            return error(404, "404 Branch Not Found")
        return jsonify(_branch_json(project, branch, level))
    search = request.args.get("search", "")
    if search:
        branches = [b for b in branches if _branch_matches(b.name, search)]
    return paginate(branches, lambda b: _branch_json(project, b, level))


def _branch_matches(name: str, search: str) -> bool:
    """GitLab's branch search: substring, ``^prefix`` or ``suffix$``."""
    if search.startswith("^"):
        return name.startswith(search[1:])
    if search.endswith("$"):
        return name.endswith(search[:-1])
    return search in name


def _branch_json(project: Project, branch: Branch, level: int) -> dict:
    base, full, commit = base_url(), project.path_with_namespace, branch.commit
    protected = project.protects(branch.name)
    return {
        "name": branch.name,
        "merged": branch.merged,
        "protected": protected,
        "default": branch.name == project.default_branch,
        "developers_can_push": False,
        "developers_can_merge": False,
        "can_push": level >= (MAINTAINER if protected else DEVELOPER),
        "web_url": f"{base}/{full}/-/tree/{quote(branch.name)}",
        "commit": {
            "id": commit.id,
            "short_id": commit.id[:8],
            "created_at": commit.committed_date,
            "parent_ids": commit.parent_ids,
            "title": commit.title,
            "message": commit.message,
            "author_name": commit.author_name,
            "author_email": commit.author_email,
            "authored_date": commit.authored_date,
            "committer_name": commit.committer_name,
            "committer_email": commit.committer_email,
            "committed_date": commit.committed_date,
            "trailers": {},
            "extended_trailers": {},
            "web_url": f"{base}/{full}/-/commit/{commit.id}",
        },
    }


def _deploy_keys(project: Project, key_id: list[str]) -> Response:
    store = context().store
    if store.access_level(project, g.user) < MAINTAINER:
        return error(403, "403 Forbidden")
    match key_id, request.method:
        case [], "GET":
            return paginate(store.deploy_keys(project), lambda pair: pair[0].as_json(pair[1]))
        case [], "POST":
            return _add_deploy_key(project)
        case [one], "GET" | "DELETE" if one.isdigit():
            found = next(((k, push) for k, push in store.deploy_keys(project) if k.id == int(one)), None)
            if found is None:
                return error(404, "404 Deploy Key Not Found")
            if request.method == "GET":
                return jsonify(found[0].as_json(found[1]))
            store.remove_deploy_key(project, int(one))
            return Response(status=204)
    return error(404, "404 Not Found", key="error")


#: GitLab's longest deploy key title
MAX_KEY_TITLE = 255


def _add_deploy_key(project: Project) -> Response:
    params = request.get_json(silent=True) or request.form
    missing = [f"{name} is missing" for name in ("key", "title") if not params.get(name)]
    if missing:
        return error(400, ", ".join(missing), key="error")
    if str(params["key"]).split(" ", 1)[0] in context().store.forbidden_key_types:
        return error(400, {"key": ["type is forbidden. Must be RSA or ECDSA"]})
    if len(str(params["title"])) > MAX_KEY_TITLE:
        return error(400, {"title": [f"is too long (maximum is {MAX_KEY_TITLE} characters)"]})
    expires_at = None
    if params.get("expires_at"):
        try:
            expires_at = datetime.fromisoformat(str(params["expires_at"]))
        except ValueError:
            return error(400, "expires_at is invalid", key="error")
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=timezone.utc)
    try:
        key, can_push = context().store.add_deploy_key(
            project, str(params["title"]), str(params["key"]), _bool(params.get("can_push", False)), expires_at
        )
    except ValueError:
        return error(400, {"key": ["is invalid"]})
    response = jsonify(key.as_json(can_push))
    response.status_code = 201
    return response


@bp.get("/groups")
def list_groups() -> Response:
    """The groups the user sees, as GitLab lists them for a user who is not an administrator:
    ``owned``, else ``min_access_level`` (groups where their level, inherited or not, is at
    least that), else those ``Store.groups_of`` names. Every group is private, so
    ``all_available`` adds none."""
    invalid = _invalid_group_params()
    if invalid:
        return error(400, invalid, key="error")
    store, user = context().store, g.user
    if _bool(request.args.get("owned", "false")):
        groups = store.owned_groups(user)
    elif request.args.get("min_access_level"):
        level = int(request.args["min_access_level"])
        groups = [group for group in store.all_groups() if store.group_access_level(group, user) >= level]
    else:
        groups = store.groups_of(user)
    if _bool(request.args.get("top_level_only", "false")):
        groups = [group for group in groups if group.parent_path is None]
    search = " ".join(request.args.get("search", "").split())
    if search:
        groups = [group for group in groups if _search_matches(search, (group.full_path, group.full_name))]
    groups.sort(key=lambda group: group.id)
    order = GROUP_ORDER[request.args.get("order_by", "name")]
    groups.sort(key=order, reverse=request.args.get("sort", "asc") == "desc")
    return paginate(groups, group_json)


def _invalid_group_params() -> str:
    """Grape's 400 message for the list parameters GitLab refuses; empty when all are valid."""
    problems = [
        f"{name} does not have a valid value"
        for name, values in (("order_by", GROUP_ORDER), ("sort", ("asc", "desc")))
        if name in request.args and request.args[name] not in values
    ]
    level = request.args.get("min_access_level", "")
    if level and not level.isdigit():
        problems.append("min_access_level is invalid")
    elif level and int(level) not in ACCESS_LEVELS:
        problems.append("min_access_level does not have a valid value")
    return ", ".join(problems)


def _search_matches(query: str, values: Iterable[str]) -> bool:
    """GitLab's fuzzy search: every word of 3 characters or more within one of ``values``,
    whatever the case; a query without such a word must equal one of them."""
    words = [word.lower() for word in query.split() if len(word) >= MIN_SEARCH_WORD]
    if not words:
        return any(value.lower() == query.lower() for value in values)
    return any(all(word in value.lower() for word in words) for value in values)


def group_json(group: Group) -> dict:
    """GitLab's group entity, for a private group left with GitLab's defaults."""
    store = context().store
    return {
        "id": group.id,
        "web_url": f"{base_url()}/groups/{group.full_path}",
        "name": group.name,
        "path": group.path,
        "description": "",
        "visibility": "private",
        "share_with_group_lock": False,
        "require_two_factor_authentication": False,
        "two_factor_grace_period": 48,
        "project_creation_level": "developer",
        "auto_devops_enabled": None,
        "subgroup_creation_level": "maintainer",
        "emails_disabled": False,
        "emails_enabled": True,
        "mentions_disabled": None,
        "lfs_enabled": True,
        "default_branch": None,
        "default_branch_protection": 2,
        "avatar_url": None,
        "request_access_enabled": True,
        "full_name": group.full_name,
        "full_path": group.full_path,
        "created_at": iso(group.created_at),
        "parent_id": store.namespace_id(group.parent_path) if group.parent_path else None,
        "shared_runners_setting": "enabled",
    }


@bp.get("/groups/<path:_rest>")
def group_routes(_rest: str) -> Response:
    ref, *segments = [unquote(s) for s in raw_path().split("/")[4:]]
    store = context().store
    group = store.group(ref)
    if group is None or not store.can_read_group(group, g.user):
        return error(404, "404 Group Not Found")
    if segments:
        return error(404, "404 Not Found", key="error")
    return jsonify(_group_detail_json(group))


def _group_detail_json(group: Group) -> dict:
    """``GET /groups/:id``'s entity: the group, with the projects directly in it that the user
    is a member of unless ``with_projects=false``."""
    data = {**group_json(group), "shared_with_groups": [], "prevent_sharing_groups_outside_hierarchy": False}
    if _bool(request.args.get("with_projects", "true")):
        projects = [p for p in context().store.projects_of(g.user) if p.namespace_path == group.full_path]
        data.update({"projects": [project_json(p) for p in projects], "shared_projects": []})
    return data
