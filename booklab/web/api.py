"""The JSON API under ``/api/``, for the CLI, scripts and the deploy page's buttons.

Authenticated by the session (with the CSRF header for changes) or by a GitLab personal
access token (``Authorization: Bearer`` or ``PRIVATE-TOKEN``) that GitLab's /api/v4/user
vouches for. A user only ever sees and acts on their own deployments: another user's
deployment answers 404, as one that does not exist.

=======  ====================================  ==========================================
GET      /api/user                             who the token or session belongs to
GET      /api/profiles                         the machine profiles I may launch on, and the default
GET      /api/deployments                      my deployments
POST     /api/deployments                      {"project", "ref", "save_back", "rebuild", "profile"}: launch (201)
                                               or join (200)
GET      /api/deployments/<id>                 one of mine
POST     /api/deployments/<id>/stop            stop it (202, status ``stopping`` until it is ``stopped``);
                                               {"discard": true}: without saving
POST     /api/deployments/<id>/retry           launch it again (201), or join it if active; {"rebuild": true}:
                                               build its image again, every layer, and replace it;
                                               {"profile": name}: on that profile (default: the one last picked)
POST     /api/deployments/<id>/save            push its changes to GitLab now (202)
POST     /api/deployments/<id>/save_back       {"enabled": bool}: save its changes when it ends
GET      /api/deployments/<id>/kept/<run>      the changes of a save given up, a .tar.gz
GET      /api/deployments/<id>/log             the full log of its newest run (``?run=N``: of run N) as
                                               text, secrets removed, for log/retention after its end
=======  ====================================  ==========================================

Each launch of a deployment is a *run*: ``run`` is the number of the current one, ``next_run``
that of a run queued behind the end of a run that is stopping, and a launch answers the run
it started or joined (``requested_run``); its events are ``events`` with ``Last-Event-ID:
<run>.0``. ``save_back`` is whether the notebook's changes are pushed to a new branch when it ends;
``save`` is the last save's ``state`` (saving, saved, unchanged, failed, kept), ``message``,
``branch``, ``merge_request_url`` and ``saved_at``. ``kept`` lists the changes kept of runs
whose automatic save was given up (``run``, ``at``, ``size``, ``files``, ``reason``,
``filename`` and ``download``, its URL), newest first, for ``save/keep_failed`` after that.
``profile`` is the machine profile the run has (the one picked, until its runner decides),
absent when it has none. A profile unknown answers 400, one for other groups 403.

Deployment ids are ``<path>:<branch>:<username>``, URL-escaped in these paths.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, Response, abort, jsonify, request

from booklab import service
from booklab.errors import InvalidDeployment
from booklab.phases import Phase
from booklab.saveback import kept, protocol
from booklab.scrub import scrub
from booklab.state.deployment import Deployment
from booklab.state.lifecycle import Run
from booklab.state.records import Overview
from booklab.web import auth
from booklab.web.pages import context
from booklab.web.projects import kept_downloads, launch_path, launchable, stream_path, usable_profiles

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api")


def describe(dep: Deployment, status: Phase, overview: Overview | None = None) -> dict[str, Any]:
    """A deployment as the API shows it to its owner (never a token); ``overview``: what of it the
    caller read already (:meth:`~booklab.state.records.Deployments.overviews`)."""
    ctx, base = context(), request.host_url.rstrip("/")
    overview = ctx.deployments.overviews([dep.id])[0] if overview is None else overview
    record = overview.record
    out: dict[str, Any] = {
        "id": dep.id,
        "project": dep.project,
        "ref": dep.ref,
        "user": dep.user,
        "status": status.value,
        "page": base + launch_path(dep.project, dep.ref),
        "events": base + stream_path(dep.project, dep.ref),
    }
    if record.get("run"):
        out["run"] = int(record["run"])
    if overview.next_run is not None:
        out["next_run"] = overview.next_run
    if status is Phase.TODO:
        out["position"] = overview.position
    if status is Phase.READY and record.get("url"):
        out["url"] = record["url"]
        if record.get("urlpath"):
            out["urlpath"] = record["urlpath"]
    for name in ("requested_at", "ready_at"):
        if record.get(name):
            out[name] = float(record[name])
    out["save_back"] = bool(record.get("save_back"))
    if record.get("profile") or record.get("profile_asked"):
        out["profile"] = record.get("profile") or record["profile_asked"]
    save = protocol.describe(ctx, dep.id, record)
    if save:
        out["save"] = save
    downloads = kept_downloads(dep, base, overview.kept)
    if downloads:
        out["kept"] = downloads
    return out


def _body() -> dict[str, Any]:
    """The request's JSON object (or form), empty when there is none."""
    body = request.get_json(silent=True) if request.is_json else request.form.to_dict()
    return body if isinstance(body, dict) else {}


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return value is True


def _own(deployment_id: str, user: auth.WebUser) -> tuple[Deployment, Phase]:
    dep = _mine(deployment_id, user)
    status = context().deployments.status(dep.id)
    if status is None:
        abort(404, f"You have no deployment {deployment_id!r}: list yours with `booklab status`.")
    return dep, status


def _mine(deployment_id: str, user: auth.WebUser) -> Deployment:
    """The deployment ``deployment_id`` when it is the user's (it may have been forgotten since)."""
    try:
        dep = Deployment.from_id(deployment_id)
    except InvalidDeployment as e:
        abort(404, str(e))
    if dep.user != user.username:
        abort(404, f"You have no deployment {deployment_id!r}: list yours with `booklab status`.")
    return dep


def _profile(body: dict[str, Any], last: str = "") -> str:
    """The profile the request names (``last``: when it names none)."""
    value = body.get("profile", last)
    if value is not None and not isinstance(value, str):
        abort(400, 'Name the profile as text: {"profile": "medium"}.')
    return (value or "").strip()


def _launch(
    user: auth.WebUser, project: str, ref: str, save_back: bool = False, rebuild: bool = False, profile: str = ""
) -> Any:
    project = launchable(user, project, ref)
    requested = service.request_deployment(
        context(),
        project,
        ref,
        user.token,
        save_back=save_back,
        grant_id=user.grant,
        rebuild=rebuild,
        profile=profile,
    )
    log.info(
        "%s launched %s through the API (%s)", user.username, requested.run, "new" if requested.started else "joined"
    )
    status = context().deployments.status(requested.id) or Phase.TODO
    body = {
        **describe(requested.deployment, status),
        "started": requested.started,
        "requested_run": requested.run.number,
    }
    return jsonify(body), 201 if requested.started else 200


@bp.get("/user")
def whoami() -> Any:
    user = auth.api_user()
    return jsonify({"username": user.username, "name": user.name})


@bp.get("/profiles")
def profiles() -> Any:
    user = auth.api_user()
    return jsonify(
        {
            "profiles": [p.as_json() for p in usable_profiles(user)],
            "default": context().config.profiles_default,
        }
    )


@bp.get("/deployments")
def list_deployments() -> Any:
    user = auth.api_user()
    deployments = context().deployments
    found = deployments.of_user(user.username)
    overviews = deployments.overviews([dep.id for dep, _ in found])
    mine = [describe(dep, status, overview) for (dep, status), overview in zip(found, overviews)]
    return jsonify({"deployments": mine})


@bp.post("/deployments")
def create() -> Any:
    user = auth.api_user()
    body = _body()
    project, ref = str(body.get("project") or "").strip(), str(body.get("ref") or "").strip()
    if not project or not ref:
        abort(400, 'Send {"project": "<group/project>", "ref": "<branch>"}.')
    return _launch(
        user, project, ref, save_back=_flag(body, "save_back"), rebuild=_flag(body, "rebuild"), profile=_profile(body)
    )


@bp.get("/deployments/<path:deployment_id>")
def show(deployment_id: str) -> Any:
    user = auth.api_user()
    dep, status = _own(deployment_id, user)
    return jsonify(describe(dep, status))


@bp.post("/deployments/<path:deployment_id>/stop")
def stop(deployment_id: str) -> Any:
    user = auth.api_user()
    dep, _ = _own(deployment_id, user)
    discard = _flag(_body(), "discard")
    was = service.stop(context(), dep.id, discard=discard, gitlab_token=user.token, grant_id=user.grant)
    log.info("%s stopped %s (was %s%s)", user.username, dep.id, was.value, ", discarding changes" if discard else "")
    return jsonify({**describe(dep, context().deployments.status(dep.id) or was), "was": was.value}), 202


@bp.post("/deployments/<path:deployment_id>/retry")
def retry(deployment_id: str) -> Any:
    user = auth.api_user()
    dep, _ = _own(deployment_id, user)
    body, last = _body(), context().deployments.record(dep.id).get("profile_asked", "")
    return _launch(user, dep.project, dep.ref, rebuild=_flag(body, "rebuild"), profile=_profile(body, last))


@bp.post("/deployments/<path:deployment_id>/save")
def save(deployment_id: str) -> Any:
    user = auth.api_user()
    dep, _ = _own(deployment_id, user)
    try:
        started = service.save_now(context(), dep.id, user.token, user.grant)
    except service.NotRunning as e:
        abort(409, str(e))
    log.info("%s saves %s now%s", user.username, dep.id, "" if started else " (joined the save under way)")
    return jsonify({**describe(dep, Phase.READY), "started": started}), 202


@bp.post("/deployments/<path:deployment_id>/save_back")
def choose_save_back(deployment_id: str) -> Any:
    user = auth.api_user()
    dep, status = _own(deployment_id, user)
    body = _body()
    if "enabled" not in body:
        abort(400, 'Send {"enabled": true} or {"enabled": false}.')
    try:
        service.set_save_back(context(), dep.id, _flag(body, "enabled"), user.token, user.grant)
    except service.NotRunning as e:
        abort(409, str(e))
    return jsonify(describe(dep, status))


@bp.get("/deployments/<path:deployment_id>/kept/<int:run>")
def download_kept(deployment_id: str, run: int) -> Any:
    user = auth.api_user()
    dep = _mine(deployment_id, user)
    found = kept.download(context(), dep.id, run)
    if found is None:
        abort(404, f"No changes of run {run} of {dep.id} are kept (any more).")
    changes, data = found
    log.info("%s downloads the changes kept of run %d of %s", user.username, run, dep.id)
    return _attachment(data, kept.MEDIA_TYPE, changes.filename(dep.id))


@bp.get("/deployments/<path:deployment_id>/log")
def download_log(deployment_id: str) -> Any:
    user = auth.api_user()
    dep = _mine(deployment_id, user)
    ctx = context()
    asked = request.args.get("run", "")
    if asked and not (asked.isascii() and asked.isdigit()):
        abort(400, "Name a run by its number: ?run=1.")
    run = Run(dep.id, int(asked)) if asked else ctx.lifecycle.newest(dep.id)
    text = ctx.events.full(run.id) if run else None
    if run is None or text is None:
        abort(404, f"No log of {dep.id}{f' run {asked}' if asked else ''} is kept (any more).")
    return _attachment(scrub(text, ctx.config), "text/plain", dep.file_name(run.number, "log.txt"))


def _attachment(body: str | bytes, mimetype: str, filename: str) -> Response:
    """A download of the user's own: never cached, never read by another site's page
    (a notebook's, say); ``filename`` holds plain characters only (Deployment.file_name)."""
    return Response(
        body,
        mimetype=mimetype,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "private, no-store",
            "Cross-Origin-Resource-Policy": "same-origin",
        },
    )


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
