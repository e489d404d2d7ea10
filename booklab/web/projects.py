"""The home page and Launch: the user's GitLab projects (membership; searchable; paginated
as GitLab paginates), a project's branch picker with its default branch preselected, and
the Launch form, a POST with CSRF protection that checks access with the user's own
token before anything is created or queued (and, ticked, asks to save the notebook's changes
back to GitLab when it stops; when the operator offers machine profiles, the user picks one
of those they may use)."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, NoReturn
from urllib.parse import quote, urlencode

from flask import (
    Blueprint,
    Flask,
    abort,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)

from booklab import allowed, profiles, service, urlpaths
from booklab.errors import BranchNotFound, InvalidDeployment, NoAccess, NotAllowed, NotFound
from booklab.profiles import Profile
from booklab.saveback import kept
from booklab.state.deployment import Deployment
from booklab.web import auth
from booklab.web.pages import context, error_page, web_base

log = logging.getLogger(__name__)

bp = Blueprint("projects", __name__)


def launch_path(project: str, ref: str) -> str:
    """The BinderHub-shaped launch link of a project's branch: /v2/gl/<escaped path>/<ref>."""
    return f"/v2/gl/{quote(project, safe='')}/{quote(ref, safe='/')}"


def checked_urlpath(value: str) -> str:
    """``value`` when it is a path inside the notebook server (no scheme, no other host, no
    ``..``) by the rules of ``.booklab.yml``'s ``urlpath``; else empty."""
    try:
        return urlpaths.check(value.strip())
    except ValueError:
        return ""


def usable_profiles(user: auth.WebUser) -> tuple[Profile, ...]:
    """The machine profiles ``user`` may launch on (none when the operator offers none)."""
    config = context().config
    if not config.profiles_list:
        return ()
    with context().gitlab(user.token) as gl:
        return allowed.usable_profiles(config, gl)


def stream_path(project: str, ref: str) -> str:
    """The BinderHub-shaped event stream of a project's branch: /build/gl/<escaped path>/<ref>."""
    return f"/build/gl/{quote(project, safe='')}/{quote(ref, safe='/')}"


def _page_number() -> int:
    value = request.args.get("page", "")
    return int(value) if value.isdigit() and int(value) > 0 else 1


@bp.get("/services/booklab/")
@bp.get("/services/booklab/<path:rest>")
def from_jupyterhub(rest: str = "") -> Any:
    """Booklab's link in a JupyterHub's Services menu (hub mode): the hub's proxy sends it here under a host
    of the hub's, so the way home is Booklab's own address."""
    return redirect(f"{web_base()}/")


@bp.get("/")
def home() -> Any:
    user = auth.session_user()
    if user is None:
        return render_template("landing.html")
    search = request.args.get("search", "").strip()
    with context().gitlab(user.token) as gl:
        page = gl.projects(search=search, page=_page_number())
    config = context().config
    launchable = [p for p in page.items if allowed.project_allowed(config, p["path_with_namespace"])]
    return render_template(
        "home.html",
        page=dataclasses.replace(page, items=launchable),
        hidden=len(page.items) - len(launchable),
        allowed_projects=profiles.listed(config.paths_of("access_allowed_projects"))
        if config.access_allowed_projects
        else "",
        search=search,
        deployments=_my_deployments(user.username),
        kept=_my_kept_changes(user.username),
    )


def _my_deployments(username: str) -> list[dict[str, str]]:
    """The user's deployments that are queued, running or ready."""
    return [
        {"project": dep.project, "ref": dep.ref, "status": status.value, "link": launch_path(dep.project, dep.ref)}
        for dep, status in context().deployments.of_user(username)
        if status.is_active
    ]


def kept_downloads(dep: Deployment, base: str = "", kept_hash: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The changes kept of the deployment's given-up saves, newest run first, as the API and
    the home page offer them: each with its ``filename`` and ``download`` URL (``base``: the
    site's, for an absolute one); ``kept_hash``: its kept changes as read already."""
    return [
        {
            **changes.as_json(),
            "filename": changes.filename(dep.id),
            "download": base + url_for("api.download_kept", deployment_id=dep.id, run=changes.run),
        }
        for changes in kept.listing(context(), dep.id, kept_hash)
    ]


def _my_kept_changes(username: str) -> list[dict[str, Any]]:
    """The changes kept of the user's saves that were given up, newest first."""
    found = [
        {"project": dep.project, "ref": dep.ref, **download}
        for dep, _ in context().deployments.of_user(username)
        for download in kept_downloads(dep)
    ]
    return sorted(found, key=lambda item: item["at"], reverse=True)


@bp.get("/projects/<path:project_path>")
@auth.login_required
def project(project_path: str) -> Any:
    user = auth.session_user()
    assert user is not None
    with context().gitlab(user.token) as gl:
        found = gl.project(project_path)
        names, more = gl.branches(found)
    return render_template(
        "project.html",
        project=found,
        branches=names,
        more_branches=more,
        profiles=usable_profiles(user),
        default_profile=context().config.profiles_default,
        launch_link=request.host_url.rstrip("/") + launch_path(found.path, found.default_branch or ""),
    )


@bp.post("/launch")
@auth.login_required
def launch() -> Any:
    """Check access with the user's token, then queue (or join) the deployment and show it."""
    user = auth.session_user()
    assert user is not None
    path, ref = request.form.get("project", "").strip(), request.form.get("ref", "").strip()
    if not path or not ref:
        return error_page(400, "Pick a project and a branch", "Launch needs a project and a branch.")
    path = launchable(user, path, ref)
    save_back = request.form.get("save_back", "").strip().lower() in ("1", "on", "true", "yes")
    profile = request.form.get("profile", "").strip()
    request_ = service.request_deployment(
        context(), path, ref, user.token, save_back=save_back, grant_id=user.grant, profile=profile
    )
    log.info(
        "%s launched %s (%s%s%s)",
        user.username,
        request_.id,
        "new" if request_.started else "joined",
        ", saving back" if save_back else "",
        f", profile {profile}" if profile else "",
    )
    # the launch link's ?urlpath=, when the Launch button of a link opened without a click sent it
    urlpath = checked_urlpath(request.form.get("urlpath", ""))
    return redirect(launch_path(path, ref) + (f"?{urlencode({'urlpath': urlpath})}" if urlpath else ""), code=303)


def launchable(user: auth.WebUser, path: str, ref: str) -> str:
    """The project's path as GitLab names it (GitLab finds ``Demo/Notebooks`` at ``demo/notebooks``: a
    deployment is named by GitLab's own, so that it has one name) when the user may launch ``ref`` of ``path``;
    else aborts with the error page (or JSON) that says which of the two is wrong."""
    try:
        Deployment(path, ref, user.username)
        allowed.check_project(context().config, path)
        return gitlab_name(user, path, ref)
    except NotAllowed as e:
        _refuse(403, "Not allowed here", str(e))
    except InvalidDeployment as e:
        _refuse(400, "Not a project and branch", str(e))
    except NoAccess as e:
        log.info("%s may not read %s", user.username, path)
        _refuse(403, "No access", str(e))
    except BranchNotFound as e:
        _refuse(
            404,
            "Branch not found",
            str(e),
            link=(url_for("projects.project", project_path=path), f"Pick a branch of {path}"),
        )
    except NotFound as e:
        log.info("%s asked for project %s: %s", user.username, path, e)
        _refuse(404, "Project not found", str(e))


def gitlab_name(user: auth.WebUser, path: str, ref: str) -> str:
    """GitLab's own spelling of the project ``path``, whose branch ``ref`` the user may launch; raises GitLab's
    refusal (NotFound, BranchNotFound, NoAccess, TokenRejected)."""
    with context().gitlab(user.token) as gl:
        return gl.launchable(path, ref).path


def _refuse(status: int, title: str, message: str, link: tuple[str, str] | None = None) -> NoReturn:
    """End the request with the error page (or JSON)."""
    abort(make_response(error_page(status, title, message, link)))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
