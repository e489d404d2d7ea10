"""The deploy page and BinderHub's shapes: launch links ``GET /v2/gl/<escaped path>/<ref>``
(log in first, then come back), the event stream ``GET /build/gl/<escaped path>/<ref>``
and ``/badge.svg``; a launch link's ``?profile=<name>`` launches on that machine profile.

The event stream is BinderHub's: ``id:`` and ``data: {json}`` per event, a ``:keepalive``
comment every 25 s, the token only in the owner's ``ready`` event. It is the stream of one
run: ids are ``<run>.<event>``. A stream opened without ``Last-Event-ID`` for a deployment
that is not queued or running starts a new run (as BinderHub's ``/build`` does; behind the
end of one that is stopping); a reconnecting one (``Last-Event-ID``) only resumes its run
after the last event it saw, never starting a second build, and a run that ended meanwhile
gives its final event.

The session cookie alone starts a deployment only for a request from a Booklab page or a
launch link the user clicked (:mod:`booklab.web.fetch_site`): else the launch page asks for
a click on Launch, and the event stream says why it starts nothing.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from flask import Blueprint, Flask, Response, current_app, redirect, render_template, request
from werkzeug.exceptions import NotFound as HTTPNotFound

from booklab import service
from booklab.context import Context
from booklab.errors import BooklabError, TokenRejected
from booklab.phases import Phase, SaveState
from booklab.state.deployment import Deployment
from booklab.state.lifecycle import Run
from booklab.web import auth, csrf, fetch_site
from booklab.web.pages import context
from booklab.web.projects import checked_urlpath, gitlab_name, launch_path, launchable, stream_path

log = logging.getLogger(__name__)

bp = Blueprint("deploy", __name__)

#: the steps the deploy page shows, in order; ``built`` (a cache hit) ends the build step
STEPS = [Phase.WAITING, Phase.FETCHING, Phase.BUILDING, Phase.LAUNCHING, Phase.READY]
STEP_OF = {**{p.value: i for i, p in enumerate(STEPS)}, Phase.TODO.value: 0, Phase.BUILT.value: 2}


def split_spec(prefix: str) -> tuple[str, str]:
    """(project path, ref) from the raw request path ``<prefix><escaped path>/<ref>``.

    The project path must arrive escaped (``group%2Fproject``): werkzeug decodes ``%2F``
    before routing, so the raw path is read instead."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or ""
    path = urlsplit(raw).path
    start = path.find(prefix)
    if start < 0:
        raise HTTPNotFound("Launch links look like /v2/gl/<group%2Fproject>/<branch>.")
    project, _, ref = path[start + len(prefix) :].partition("/")
    project, ref = unquote(project), unquote(ref)
    if "/" not in project or not ref:
        raise HTTPNotFound(
            "Launch links look like /v2/gl/<group%2Fproject>/<branch>, with the project path "
            "URL-escaped (/ as %2F): for example /v2/gl/group%2Fproject/main."
        )
    return project, ref


def _profile() -> str:
    """``?profile=``: the machine profile a launch link asks for (checked when it launches)."""
    return request.args.get("profile", "").strip()


def _urlpath() -> str:
    """``?urlpath=`` as a path inside the notebook server (no scheme, no other host, no
    ``..``), by the rules of ``.booklab.yml``'s ``urlpath``; empty when it is not one."""
    return checked_urlpath(request.args.get("urlpath", ""))


@bp.get("/v2/gl/<path:_spec>")
@auth.login_required
def launch_page(_spec: str) -> Any:
    """The deploy page. Its event stream starts the deployment unless it is running. A
    notebook that is ready already when the page is asked for is not opened: the page shows
    its link and its controls (save back, Save now, Stop) instead."""
    project, ref = split_spec("/v2/gl/")
    user = auth.session_user()
    assert user is not None
    named = launchable(user, project, ref)
    if named != project:  # the deployment and its page go by GitLab's own name of the project
        query = urlencode(list(request.args.items(multi=True)))
        return redirect(launch_path(named, ref) + (f"?{query}" if query else ""))
    dep = Deployment(project, ref, user.username)
    base = request.host_url.rstrip("/")
    deployments = context().deployments
    status = deployments.status(dep.id)
    clicked = fetch_site.from_booklab() or fetch_site.clicked_navigation()
    if (status is None or not status.is_joinable) and not clicked:
        return (
            render_template("confirm_launch.html", project=project, ref=ref, urlpath=_urlpath(), profile=_profile()),
            200,
        )
    # queued or running: the page only follows its run (it cannot start a second one even if
    # it ends before the page connects); else the page's stream launches one
    current = context().lifecycle.current(dep.id)[1]
    if status is not None and status.is_joinable and current:
        follow = f"?last_event_id={current.number}.0"
    else:  # the stream launches it, on the link's profile
        follow = f"?{urlencode({'profile': _profile()})}" if _profile() else ""
    return render_template(
        "deploy.html",
        project=project,
        ref=ref,
        deployment_id=dep.id,
        stream_url=base + stream_path(project, ref) + follow,
        launch_link=base + launch_path(project, ref),
        urlpath=_urlpath(),
        steps=STEPS,
        step_of=STEP_OF,
        phases={p.name: p.value for p in Phase},
        final=[p.value for p in Phase if p.is_final],
        # ready already (the user came back to it): the page shows its controls instead
        # of going to the notebook
        ready_at_load=status is Phase.READY,
        save_back=bool(deployments.record(dep.id).get("save_back")),
        save_states={state.name: state.value for state in (SaveState.SAVING, SaveState.SAVED, SaveState.FAILED)},
    )


#: ``Last-Event-ID``: ``<run>.<event>``, or a bare event id of the newest run
EVENT_ID = re.compile(r"(?:(\d{1,9})\.)?(\d{1,12})", re.ASCII)


def _last_event_id() -> tuple[int | None, int] | None:
    """(run, event id) from ``Last-Event-ID`` (or ``?last_event_id=``); None when there is none
    (or it is not one)."""
    value = request.headers.get("Last-Event-ID", "").strip() or request.args.get("last_event_id", "").strip()
    found = EVENT_ID.fullmatch(value)
    if found is None:
        return None
    return (int(found[1]) if found[1] else None), int(found[2])


def sse(data: dict[str, Any], event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}data: {json.dumps(data)}\n\n"


def event_stream(ctx: Context, run: Run, after: int, keepalive: float, first: str = "") -> Iterator[str]:
    """The run's events after ``after`` as server-sent events (ids ``<run>.<event>``), and a
    keepalive comment whenever ``keepalive`` seconds passed without sending anything, until a
    final phase. (A client that went away is noticed at the next write.)"""
    if first:
        yield first
    last, sent_at = after, time.monotonic()
    while True:
        wait = max(0.05, keepalive - (time.monotonic() - sent_at))
        for event_id, data in service.follow(ctx, run, after=last, timeout=wait):
            last = event_id
            if Phase(data["phase"]).is_final:
                yield sse({**data, "deployment": run.deployment, "run": run.number}, f"{run.number}.{event_id}")
                return
            yield sse(data, f"{run.number}.{event_id}")
            sent_at = time.monotonic()
        if time.monotonic() - sent_at >= keepalive:
            yield ":keepalive\n\n"
            sent_at = time.monotonic()


def _stream(events: Iterator[str]) -> Response:
    return Response(
        events, mimetype="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


def _failed(message: str) -> Response:
    return _stream(iter([sse({"phase": Phase.FAILED.value, "message": message.rstrip("\n") + "\n"})]))


@bp.get("/build/gl/<path:_spec>")
def build_stream(_spec: str) -> Response:
    """BinderHub's event stream of the user's deployment of a project's branch."""
    user = auth.api_user()
    project, ref = split_spec("/build/gl/")
    ctx = context()
    checked = False  # whether GitLab said the user may launch it, in this request
    try:
        dep = Deployment(project, ref, user.username)
        if ctx.lifecycle.newest(dep.id) is None:  # never launched under this spelling: GitLab's may differ
            dep, checked = Deployment(gitlab_name(user, project, ref), ref, user.username), True
    except TokenRejected:
        raise
    except BooklabError as e:  # not a deployment, or GitLab refused it
        return _failed(str(e))
    resume = _last_event_id()
    status, current, _ = ctx.lifecycle.current(dep.id)
    run = ctx.lifecycle.newest(dep.id)
    if resume is not None:
        number, after = resume
        run = Run(dep.id, number) if number is not None else run
        live = run is not None and (
            (run == current and status is not None and status.is_active) or run == ctx.lifecycle.pending(dep.id)
        )
        if run is None or (not live and not ctx.events.read(run.id, after)):
            # a reconnect after the final event: 204 tells an EventSource to stop reconnecting
            return Response(status=204)
        keepalive = float(current_app.config["BOOKLAB_KEEPALIVE"])
        return _stream(event_stream(ctx, run, after, keepalive, first="retry: 2000\n\n"))
    if status is None or not status.is_joinable:  # none, over, or ending: a new run
        if not csrf.token_authenticated() and not fetch_site.from_booklab():
            log.info(
                "a request for %s from elsewhere (%s) started nothing",
                dep.id,
                request.headers.get("Sec-Fetch-Site") or "no Sec-Fetch-Site",
            )
            return _failed(fetch_site.refusal())
        try:
            if not checked:
                gitlab_name(user, dep.project, ref)
            run = service.request_deployment(
                ctx, dep.project, ref, user.token, grant_id=user.grant, profile=_profile()
            ).run
        except TokenRejected:
            raise
        except BooklabError as e:  # GitLab refused it, or a limit
            return _failed(str(e))
    if run is None:
        return _failed("This deployment has no run to follow: launch it again.")
    keepalive = float(current_app.config["BOOKLAB_KEEPALIVE"])
    return _stream(event_stream(ctx, run, 0, keepalive, first="retry: 2000\n\n"))


BADGE = """<svg xmlns="http://www.w3.org/2000/svg" width="109" height="20" role="img" aria-label="launch: booklab">
<title>launch: booklab</title>
<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/>
<stop offset="1" stop-opacity=".1"/></linearGradient>
<clipPath id="r"><rect width="109" height="20" rx="3" fill="#fff"/></clipPath>
<g clip-path="url(#r)"><rect width="47" height="20" fill="#555"/><rect x="47" width="62" height="20" fill="#e4572e"/>
<rect width="109" height="20" fill="url(#s)"/></g>
<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">
<text x="23.5" y="15" fill="#010101" fill-opacity=".3">launch</text><text x="23.5" y="14">launch</text>
<text x="77" y="15" fill="#010101" fill-opacity=".3">booklab</text><text x="77" y="14">booklab</text></g>
</svg>
"""


@bp.get("/badge.svg")
def badge() -> Response:
    return Response(BADGE, mimetype="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
