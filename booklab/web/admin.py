"""The operator's page ``/admin`` and the admin API ``/api/admin/...`` (:mod:`booklab.admin`).

Only operators reach them; anyone else gets 403 with the setting that names operators. The
page's buttons are forms (CSRF-checked) that come back to the page; the API takes a GitLab
token as the rest of the API does.

=======  ======================================  ====================================================
GET      /api/admin                              everything below at once
GET      /api/admin/runners                      every runner: host, state, last heartbeat, its notebook
GET      /api/admin/queue                        the deployments waiting for a runner, in order
GET      /api/admin/deployments                  every active deployment and the latest ended
GET      /api/admin/images                       the images each runner host keeps: size, last launch, in use
GET      /api/admin/quotas                       what counts against ``limits/*`` now
GET      /api/admin/actions                      the operators' log, newest first
POST     /api/admin/deployments/<id>/stop        stop any user's notebook (202)
POST     /api/admin/images/remove                {"host", "image"}: that host's cleaner removes it next,
                                                 unless it is in use (202)
=======  ======================================  ====================================================
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any, Callable

from flask import Blueprint, Flask, abort, flash, jsonify, redirect, render_template, request, url_for

from booklab import admin
from booklab.errors import UnknownDeployment, UnknownImage
from booklab.units import human_size
from booklab.web import auth
from booklab.web.pages import context

log = logging.getLogger(__name__)

page = Blueprint("admin", __name__)
api = Blueprint("admin_api", __name__, url_prefix="/api/admin")

REFUSED = (
    "Only Booklab's operators see this: the GitLab users named in the setting admin/users"
    " (and the GitLab server's administrators, when admin/gitlab_admins is true)."
)


def operator_in_session() -> bool:
    """Whether the page's logged-in user is an operator, as far as the session knows (for the
    link to /admin; the page itself asks GitLab again)."""
    user = auth.session_user()
    return user is not None and (
        user.username in context().config.paths_of("admin_users")
        or (context().config.admin_gitlab_admins and auth.session_is_gitlab_admin())
    )


def _check(user: auth.WebUser) -> None:
    """403 unless ``user`` is an operator (GitLab is asked whether they administer it)."""
    ctx = context()
    with ctx.gitlab(user.token) as gitlab:
        if not admin.is_operator(ctx, user.username, gitlab):
            log.info("%s was refused the operator's view", user.username)
            abort(403, REFUSED)


def _operator_page(view: Callable) -> Callable:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        user = auth.session_user()
        assert user is not None  # login_required
        _check(user)
        return view(user, *args, **kwargs)

    wrapper.__name__ = view.__name__
    return auth.login_required(wrapper)


def _operator_api(view: Callable) -> Callable:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        user = auth.api_user()
        _check(user)
        return view(user, *args, **kwargs)

    wrapper.__name__ = view.__name__
    return wrapper


@page.get("/admin")
@_operator_page
def overview(user: auth.WebUser) -> Any:
    ctx = context()
    return render_template(
        "admin.html",
        runners=admin.runners(ctx),
        queue=admin.queue(ctx),
        deployments=admin.deployments(ctx),
        images=admin.images(ctx),
        quotas=admin.quotas(ctx),
        actions=ctx.audit.recent(),
    )


@page.post("/admin/stop")
@_operator_page
def stop_from_page(user: auth.WebUser) -> Any:
    deployment_id = request.form.get("deployment", "")
    try:
        was = admin.stop(context(), deployment_id, user.username)
    except UnknownDeployment as e:
        flash(str(e))
    else:
        flash(f"Stopping {deployment_id} (it was {was.value}).")
    return redirect(url_for("admin.overview"))


@page.post("/admin/images/remove")
@_operator_page
def remove_image_from_page(user: auth.WebUser) -> Any:
    host, image = request.form.get("host", ""), request.form.get("image", "")
    try:
        admin.remove_image(context(), host, image, user.username)
    except UnknownImage as e:
        flash(str(e))
    else:
        flash(f"{host} removes {image} at its next cleaning, unless a notebook uses it by then.")
    return redirect(url_for("admin.overview"))


@api.get("")
@_operator_api
def api_overview(user: auth.WebUser) -> Any:
    return jsonify(admin.overview(context()))


@api.get("/runners")
@_operator_api
def api_runners(user: auth.WebUser) -> Any:
    return jsonify({"runners": [asdict(row) for row in admin.runners(context())]})


@api.get("/queue")
@_operator_api
def api_queue(user: auth.WebUser) -> Any:
    return jsonify({"queue": [asdict(row) for row in admin.queue(context())]})


@api.get("/deployments")
@_operator_api
def api_deployments(user: auth.WebUser) -> Any:
    return jsonify({"deployments": [asdict(row) for row in admin.deployments(context())]})


@api.get("/images")
@_operator_api
def api_images(user: auth.WebUser) -> Any:
    return jsonify({"images": [asdict(row) for row in admin.images(context())]})


@api.get("/quotas")
@_operator_api
def api_quotas(user: auth.WebUser) -> Any:
    return jsonify({"quotas": [asdict(row) for row in admin.quotas(context())]})


@api.get("/actions")
@_operator_api
def api_actions(user: auth.WebUser) -> Any:
    return jsonify({"actions": [action.as_json() for action in context().audit.recent()]})


@api.post("/deployments/<path:deployment_id>/stop")
@_operator_api
def api_stop(user: auth.WebUser, deployment_id: str) -> Any:
    try:
        was = admin.stop(context(), deployment_id, user.username)
    except UnknownDeployment as e:
        abort(404, str(e))
    return jsonify({"id": deployment_id, "was": was.value}), 202


@api.post("/images/remove")
@_operator_api
def api_remove_image(user: auth.WebUser) -> Any:
    body = request.get_json(silent=True) if request.is_json else None
    host, image = (str(body.get(k) or "") for k in ("host", "image")) if isinstance(body, dict) else ("", "")
    if not host or not image:
        abort(400, 'Send {"host": "<runner host>", "image": "<repository:tag>"}.')
    try:
        admin.remove_image(context(), host, image, user.username)
    except UnknownImage as e:
        abort(404, str(e))
    return jsonify({"host": host, "image": image, "removal_asked": True}), 202


def init_app(app: Flask) -> None:
    app.register_blueprint(page)
    app.register_blueprint(api)

    @app.context_processor
    def operator_link() -> dict[str, Any]:
        return {"is_operator": operator_in_session}

    @app.template_filter("size")
    def size(n: int) -> str:
        return human_size(n)

    @app.template_filter("isotime")
    def isotime(unix_time: float) -> str:
        return datetime.fromtimestamp(unix_time, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
