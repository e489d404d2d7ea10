"""What an idle runner keeps warm (``warm/projects``, ``warm/recent``): at each check, with no run in hand and
none waiting, it starts a spare of a wanted image still short of its count, when its host holds that image;
offers it once it answers; drops it when the branch moved to another image, when more are kept than wanted,
or when its container ended. A claimed spare is served by the runner's next run; one whose launch never came
(its message lost) goes after :data:`CLAIM_GAP` seconds and the launch is queued again. A lost or restarted
runner's spare goes with it (:func:`forget`). A runner that takes a run drops its spare at once
(:mod:`booklab.tasks.pipeline`), so spares only ever use idle runners.

Every ``warm/refresh`` seconds one idle runner looks at the head of each warm branch (as ``warm/gitlab_token``'s
user) and, when its image is not the branch's latest, queues a run that builds it and ends
(:func:`refresh`): spares of the new image then replace the old ones, before anyone launches it."""

from __future__ import annotations

import logging
from collections.abc import Callable

import docker
import requests

from booklab import service
from booklab.context import Context
from booklab.dispatch.send import queue_run
from booklab.errors import BooklabError
from booklab.phases import Phase
from booklab.pipeline import builder, warm_launch
from booklab.state import schema
from booklab.state.lifecycle import Run
from booklab.state.spares import CLAIMED, OFFERED, STARTING, Spare

log = logging.getLogger(__name__)

#: seconds a claimed spare waits for its launch's first step before the launch is queued again
CLAIM_GAP = 15
#: seconds a spare is offered at most: an older one goes, and a fresh one starts (no image runs unwatched long)
MAX_AGE = 3600
#: seconds no spare of an image starts after one of them ended or never answered (no crash loop)
PAUSE = 300


def tend(ctx: Context, runner: str) -> None:
    """One look at ``runner``'s spare, the runner being idle."""
    spare = ctx.spares.of(runner)
    if spare is None:
        _start_one(ctx, runner)
    elif spare.state == STARTING:
        _offer_once_it_answers(ctx, runner, spare)
    elif spare.state == OFFERED:
        _keep_if_wanted(ctx, runner, spare)
    elif ctx.spares.now() - spare.since > CLAIM_GAP:
        _claim_lost(ctx, runner, spare)


def claimed(ctx: Context, runner: str) -> bool:
    """Whether a launch claimed ``runner``'s spare and is on its way to it: the runner takes no other first."""
    spare = ctx.spares.of(runner)
    return spare is not None and spare.state == CLAIMED


def wanted(ctx: Context) -> dict[str, tuple[str, int]]:
    """Image -> what it is kept warm for (``<project>@<branch>``, or ``recent``) and how many spares of it are
    wanted: the latest image of each branch of ``warm/projects`` (a branch not launched yet has none), then one
    of each of the ``warm/recent`` branches launched most, in that order of preference."""
    images: dict[str, tuple[str, int]] = {}
    for target in ctx.config.warm_projects:
        image = ctx.images.latest(target.project, target.ref)
        if image:
            name, count = images.get(image, (target.name, 0))
            images[image] = (name, count + target.count)
    if ctx.config.warm_recent:
        for image in ctx.images.most_launched(ctx.config.warm_recent):
            images.setdefault(image, ("recent", 1))
    return images


def _start_one(ctx: Context, runner: str) -> None:
    """Start a spare of the first wanted image still short of its count that this host holds, unless runs wait."""
    if ctx.redis.zcard(schema.QUEUE):
        return
    counts = ctx.spares.counts()
    for image, (target, count) in wanted(ctx).items():
        if counts.get(image, 0) >= count or ctx.redis.exists(schema.spare_pause(image)):
            continue
        if not builder.image_exists(ctx.docker, image):
            continue
        for stray in warm_launch.strays(ctx, runner):
            warm_launch.remove(ctx, stray)
        spare_id = warm_launch.new_id()
        if ctx.spares.begin(runner, spare_id, image, target, count):  # else another runner started the last one
            _start(ctx, runner, spare_id, image, target)
            return


def _start(ctx: Context, runner: str, spare_id: str, image: str, target: str) -> None:
    try:
        notebook, (memory, cpus), image_id = warm_launch.start(ctx, runner, spare_id, image)
    except (BooklabError, docker.errors.DockerException, requests.RequestException) as e:
        log.warning("%s could not start a spare of %s: %s", runner, target, e)
        _pause(ctx, image)
        ctx.spares.drop(runner)
        return
    token = ctx.vault.seal(notebook.token.encode()).decode()
    if not ctx.spares.started(runner, spare_id, notebook.container_id, notebook.url, memory, cpus, token, image_id):
        warm_launch.remove(ctx, notebook.container_id)  # dropped meanwhile
        return
    log.info("%s starts a spare of %s (%s)", runner, target, image)


def _offer_once_it_answers(ctx: Context, runner: str, spare: Spare) -> None:
    token = ctx.vault.unseal(spare.token) if spare.token else None
    if token is not None and warm_launch.answers(spare.url, token.decode()):
        if ctx.spares.offer(runner, spare.id, spare.image):
            log.info("%s offers its spare of %s", runner, spare.target)
        return
    if ctx.spares.now() - spare.since > ctx.config.notebook_ready_timeout:
        _pause(ctx, spare.image)
        _drop(ctx, runner, f"it did not answer within {ctx.config.notebook_ready_timeout} s")


def _keep_if_wanted(ctx: Context, runner: str, spare: Spare) -> None:
    """Drop an offered spare no longer wanted (its branch moved, fewer are wanted, its image was rebuilt), too old,
    or whose container ended."""
    image = wanted(ctx).get(spare.image)
    if image is None or ctx.spares.counts().get(spare.image, 0) > image[1]:
        _drop(ctx, runner, "no longer wanted")
    elif ctx.spares.now() - spare.since > MAX_AGE:
        _drop(ctx, runner, f"offered for {MAX_AGE} s: a fresh one replaces it")
    elif not _running(ctx, spare.container):
        _pause(ctx, spare.image)
        _drop(ctx, runner, "its notebook server ended")
    elif _image_id(ctx, spare.image) != spare.image_id:
        _drop(ctx, runner, "its image was built again, or removed")


def _image_id(ctx: Context, image: str) -> str:
    try:
        return ctx.docker.images.get(image).id
    except docker.errors.ImageNotFound:
        return ""


def _running(ctx: Context, container: str) -> bool:
    try:
        return ctx.docker.containers.get(container).status == "running"
    except docker.errors.NotFound:
        return False


def _pause(ctx: Context, image: str) -> None:
    """No spare of ``image`` starts for :data:`PAUSE` seconds: one of them failed."""
    ctx.redis.set(schema.spare_pause(image), "1", ex=PAUSE)


def _drop(ctx: Context, runner: str, why: str) -> None:
    spare = ctx.spares.drop(runner)
    if spare is not None:  # not claimed meanwhile
        log.info("%s drops its spare of %s: %s", runner, spare.target, why)
        warm_launch.remove(ctx, spare.container)


def _claim_lost(ctx: Context, runner: str, spare: Spare) -> None:
    """The launch that claimed the spare never reached the runner (its message was lost): it is queued again,
    for any runner, when it still waits."""
    log.warning("%s claimed the spare of %s and never came", spare.run, runner)
    forget(ctx, runner)


def refresh(ctx: Context, runner: str, beat: Callable[[], None] = lambda: None) -> None:
    """Once every ``warm/refresh`` seconds, across runners: queue a build of each warm branch whose head's image
    is not its latest; ``beat`` the runner's heartbeat before each (it asks GitLab)."""
    config = ctx.config
    if not (config.warm_refresh and config.warm_projects):
        return
    if not ctx.redis.set(schema.WARM_REFRESH, runner, nx=True, ex=config.warm_refresh):
        return
    for target in config.warm_projects:
        beat()
        try:
            with ctx.gitlab(config.warm_gitlab_token) as gl:
                project = gl.project(target.project)
                image = builder.image_name(config.image_prefix, project.path, gl.branch_commit(project, target.ref))
            if image == ctx.images.latest(target.project, target.ref):
                continue
            request = service.request_deployment(  # by GitLab's own name of the project, as users' launches
                ctx, project.path, target.ref, config.warm_gitlab_token, build_only=True
            )
            log.info("%s: %s moved to a new commit; %s builds it for its spares", runner, target.name, request.run)
        except BooklabError as e:  # looked at again after warm/refresh seconds
            log.warning("%s could not refresh the warm branch %s: %s", runner, target.name, e)


def forget(ctx: Context, runner: str) -> None:
    """``runner`` is lost, restarts or stops: its spare goes, claimed or not (a launch that claimed it is
    queued again when it is still waiting), and its container where this host reaches it."""
    spare = ctx.spares.drop(runner, claimed_too=True)
    if spare is None:
        return
    warm_launch.remove(ctx, spare.container)
    if spare.state == CLAIMED and spare.run:
        run = Run.parse(spare.run)
        status, current, _ = ctx.lifecycle.current(run.deployment)
        if status is Phase.TODO and current == run:
            log.info("%s, which claimed the spare of %s, is queued again", run, runner)
            queue_run(ctx, run, prefer=False)
