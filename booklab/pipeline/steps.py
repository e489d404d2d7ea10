"""The five steps of a deployment's run, as plain functions:
``provision_key -> clone -> build -> run -> register_token``.

Each takes the process :class:`~booklab.context.Context`, the run (``<deployment>#<n>``)
and the name of the runner doing the work; each reads and writes the deployment's record in Redis and
writes its progress to the run's log (a step of a run that was stopped meanwhile finds out
there: :class:`~booklab.errors.Moved`). Whatever step stops, :mod:`booklab.pipeline.teardown`
ends the run and undoes what the steps left behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Iterator

from booklab.context import Context
from booklab.errors import BooklabError, BuildError, DeployKeyNotAccepted, Moved, NotFound
from booklab.phases import Phase
from booklab.pipeline import (
    access,
    builder,
    checkout_guard,
    git,
    gitlab_tokens,
    hub_launch,
    image_cleaner,
    image_sharing,
    launcher,
    notebook_container,
    notebook_firewall,
    notebook_settings,
    one_build,
    r2d_process,
    warm_launch,
)
from booklab.pipeline.gitlab_client import GitLabClient
from booklab.state import metrics, schema
from booklab.state.deployment import Deployment
from booklab.state.lifecycle import Run
from booklab.state.vault import DEPLOY_KEY, GITLAB_TOKEN, NOTEBOOK_TOKEN

log = logging.getLogger(__name__)

#: what a run whose image is there already says, as BinderHub does
FOUND_BUILT = "Found built image, launching..."


def checkout_dir(ctx: Context, deployment_id: str) -> Path:
    return Path(ctx.config.tmpdir) / "booklab-checkouts" / ctx.slug(deployment_id)


def serve_spare(ctx: Context, run: Run, runner: str) -> bool:
    """The check of a launch that claimed ``runner``'s spare: whether the spare runs the image of its branch's
    commit, asked of GitLab with its user's token, in one call (the branch, by the project's path) unless the
    path GitLab spells (a rename it redirects, other capitals) names another image than the one asked. True once
    ``built`` is told; False, the spare still held, when it is of no use (its branch moved): the run is then
    prepared as any other (:func:`provision_key`)."""
    record = ctx.deployments.record(run.deployment)
    if not warm_launch.held_by(record, run, runner):
        return False
    dep, gl = _took(ctx, run, runner)
    with gl:
        try:
            if _is_spare(ctx, run, record, dep.project, gl.branch_commit(dep.project, dep.ref)):
                return True
        except NotFound:  # no such branch, or no such project for its user: the lookups below say which
            pass
        project = gl.project(dep.project)
        return _is_spare(ctx, run, record, project.path, gl.branch_commit(project, dep.ref))


def _is_spare(ctx: Context, run: Run, record: dict[str, str], path: str, commit: str) -> bool:
    image = builder.image_name(ctx.config.image_prefix, path, commit)
    if image != record["spare_image"]:
        return False
    ctx.deployments.update(run.deployment, commit=commit, image=image, cached="1")
    ctx.lifecycle.say(run, Phase.BUILT, FOUND_BUILT)
    return True


def _took(ctx: Context, run: Run, runner: str) -> tuple[Deployment, GitLabClient]:
    """Note that ``runner`` took the run; its deployment, and a GitLab client with its user's token."""
    dep = Deployment.from_id(run.deployment)
    # the runner's name tells its host: it stays in the record and the runner's own log
    ctx.deployments.update(run.deployment, runner=runner, started_at=f"{time.time():.3f}")
    log.info("%s took %s", runner, run)
    git.check_branch_name(dep.ref)
    token, grant_id = gitlab_tokens.of_deployment(ctx, run.deployment, GITLAB_TOKEN)
    return dep, gitlab_tokens.client(ctx, token, grant_id)


def provision_key(ctx: Context, run: Run, runner: str) -> None:
    """Note that ``runner`` took the run, resolve the branch to a commit and, unless the commit's image exists
    already (or is pulled from the registry, or another launch builds it meanwhile:
    :mod:`~booklab.pipeline.one_build`), add a read-only deploy key (or fall back to HTTPS). A spare the run
    holds goes: only its claim's own step serves one (:func:`serve_spare`)."""
    deployment_id = run.deployment
    record = ctx.deployments.record(deployment_id)
    if warm_launch.held_by(record, run, runner):
        warm_launch.let_go(ctx, run, record)
    dep, gl = _took(ctx, run, runner)
    with gl:
        project = gl.project(dep.project)
        commit = gl.branch_commit(project, dep.ref)
        image = builder.image_name(ctx.config.image_prefix, project.path, commit)
        access.remove_deploy_key(ctx, deployment_id)  # an earlier try's, if any (of the project it was added to)
        ctx.deployments.update(
            deployment_id,
            project_id=str(project.id),
            commit=commit,
            image=image,
            ssh_url=project.ssh_url,
            http_url=project.http_url,
        )
        record = ctx.deployments.record(deployment_id)
        rebuild = bool(record.get("rebuild"))
        if not rebuild and (
            builder.image_exists(ctx.docker, image)
            or image_sharing.pull_if_shared(ctx, run, image)
            or one_build.built_by_another(ctx, run, runner, image)
        ):
            ctx.deployments.update(deployment_id, cached="1")
            return
        r2d_process.start_ahead(str(run))  # the build's repo2docker makes its imports while the key and clone go on
        ctx.lifecycle.say(run, Phase.FETCHING, f"Branch {dep.ref} is at commit {commit[:12]}.")
        method = ctx.config.clone_method
        if method == "ssh":
            # named before it exists, so that it can be removed whatever happens next
            title = access.key_title(dep.user, dep.ref)  # this try's own
            ctx.deployments.update(deployment_id, deploy_key_title=title, deploy_key_added="")
            keys = access.deploy_key_or_token(
                ctx, gl, project, title, tell=lambda why: ctx.lifecycle.say(run, Phase.FETCHING, why)
            )
            if keys is None:
                ctx.deployments.update(deployment_id, deploy_key_title="")
                method = "https"
            else:
                ctx.deployments.update(deployment_id, deploy_key_added="1")  # no late sweep of its title needed
                ctx.vault.put(deployment_id, DEPLOY_KEY, keys.private_openssh)
                ctx.lifecycle.say(run, Phase.FETCHING, "Added a read-only deploy key to the project.")
        ctx.deployments.update(deployment_id, clone_method=method)


def clone(ctx: Context, run: Run, runner: str) -> None:
    """Clone the branch with the deploy key (or the user's token), then remove the key
    from GitLab and every secret from Redis."""
    deployment_id = run.deployment
    record = ctx.deployments.record(deployment_id)
    if record.get("cached"):
        return
    dest = checkout_dir(ctx, deployment_id)
    shutil.rmtree(dest, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    ctx.lifecycle.say(run, Phase.FETCHING, f"Cloning {record['project']} at {record['ref']}...")
    credentials: access.Credentials | None = None
    if record.get("clone_method") == "ssh":
        try:
            credentials = access.once_accepted(
                ctx,
                lambda: _clone_with_key(ctx, run, record, dest),
                tell=lambda why: ctx.lifecycle.say(run, Phase.FETCHING, why),
            )
        except DeployKeyNotAccepted:
            wait = ctx.config.gitlab_deploy_key_wait
            ctx.lifecycle.say(
                run,
                Phase.FETCHING,
                f"GitLab did not accept the deploy key within {wait:.0f} s: cloning over HTTPS with your own "
                "token instead.",
            )
            ctx.deployments.update(deployment_id, clone_method="https")
    if credentials is None:
        credentials = access.https(gitlab_tokens.of_deployment(ctx, deployment_id, GITLAB_TOKEN)[0])
        _clone(ctx, run, record["http_url"], record["ref"], credentials, dest)
    # a failed clone keeps the key for its next try; release() revokes it when none is left. Cloned: its private
    # half goes now, the key itself while the image builds (build). The user's token stays until the notebook
    # starts: should this runner's Docker Engine fail first, another runner prepares the run again
    # (teardown.hand_back)
    ctx.vault.delete(deployment_id, DEPLOY_KEY)
    access.learn_host_key(ctx, credentials)
    # before anything reads the checkout: a link out of it would have the runner read its own host
    checkout_guard.check(dest)
    # checked before the build, which keeps them on the image
    settings = notebook_settings.read(dest, notebook_settings.limits_of(ctx.config))
    ctx.deployments.update(deployment_id, settings=settings.as_label())
    commit = git.head_commit(dest)
    if commit != record["commit"]:  # the branch moved since it was resolved
        one_build.release(ctx, run)  # the image it claimed is not the one it builds
        ctx.deployments.update(
            deployment_id, commit=commit, image=builder.image_name(ctx.config.image_prefix, record["project"], commit)
        )


def _clone(ctx: Context, run: Run, url: str, ref: str, credentials: access.Credentials, dest: Path) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    with _neutral_errors(dest):
        for line in git.clone(url, ref, dest, credentials):
            ctx.lifecycle.say(run, Phase.FETCHING, _neutral(line, dest))


def _clone_with_key(ctx: Context, run: Run, record: dict[str, str], dest: Path) -> access.Credentials:
    """Clone over SSH with the run's deploy key."""
    credentials = access.ssh(ctx, ctx.vault.get(run.deployment, DEPLOY_KEY))
    _clone(ctx, run, record["ssh_url"], record["ref"], credentials, dest)
    return credentials


def build(ctx: Context, run: Run, runner: str) -> None:
    """Build the commit's image with repo2docker, unless it exists already; a rebuild builds
    every layer again and replaces it. The clone's deploy key is removed from GitLab meanwhile."""
    with access.removing_deploy_key(ctx, run.deployment):
        _build(ctx, run)


def _build(ctx: Context, run: Run) -> None:
    deployment_id = run.deployment
    record = ctx.deployments.record(deployment_id)
    image, rebuild = record["image"], bool(record.get("rebuild"))
    dest = checkout_dir(ctx, deployment_id)
    if record.get("cached") or (not rebuild and builder.image_exists(ctx.docker, image)):
        r2d_process.drop_ahead()
        ctx.lifecycle.say(run, Phase.BUILT, FOUND_BUILT)
        shutil.rmtree(dest, ignore_errors=True)
        one_build.build_ended(ctx, run, built=True)  # built meanwhile by a launch that waited too long for this one
        return
    if rebuild:
        ctx.lifecycle.say(run, Phase.BUILDING, f"Rebuilding image {image} from scratch, as you asked")
    else:
        ctx.lifecycle.say(run, Phase.BUILDING, f"Building image {image}")
    notebook_firewall.ensure(ctx.docker, ctx.config)  # the repository's Dockerfile runs next
    # other projects' images may go: the log says how many, never which
    if image_cleaner.make_room(ctx):  # which images, how many and how large is other projects' business
        ctx.lifecycle.say(run, Phase.BUILDING, "Made room for the build: removed unused images.")
    # repo2docker reuses an image of that name: a rebuild is built under another, then renamed
    built = builder.rebuild_name(image, run.number) if rebuild else image
    labels = {
        "booklab.project": record["project"],
        "booklab.commit": record["commit"],
        image_cleaner.BUILT_AS: built,
        notebook_settings.LABEL: record.get("settings") or "{}",
    }
    started, built_it = time.monotonic(), False
    try:
        with _neutral_errors(dest):
            for line in builder.build_image(
                dest,
                built,
                timeout=ctx.config.build_timeout,
                memory_limit=ctx.config.build_memory,
                labels=labels,
                no_cache=rebuild,
                process=r2d_process.take_ahead(str(run)),
            ):
                ctx.lifecycle.say(run, Phase.BUILDING, _neutral(line, dest))
        built_it = True
    except BuildError:
        ctx.docker.ping()  # a Docker Engine that went away is worth another try, a bad repository not
        raise
    finally:
        one_build.build_ended(ctx, run, built_it)
    if rebuild:
        builder.replace(ctx.docker, built, image)
    ctx.images.launched(image)  # just built: the image cleaner counts it as used now
    metrics.observe(ctx.redis, "build", time.monotonic() - started)
    # a failed build keeps the checkout for its next try; release() removes it when none is left
    shutil.rmtree(dest, ignore_errors=True)


#: what the log calls the checkout: its place on the runner's disk is none of its user's business
CHECKOUT_NAME = "the repository"


def _neutral(text: str, checkout: Path) -> str:
    """``text`` (a line of git or repo2docker, an error) with the checkout's absolute path, as
    given or with its links resolved, replaced by :data:`CHECKOUT_NAME`."""
    for path in sorted({os.path.abspath(checkout), os.path.realpath(checkout)}, key=len, reverse=True):
        text = text.replace(path, CHECKOUT_NAME)
    return text


@contextlib.contextmanager
def _neutral_errors(checkout: Path) -> Iterator[None]:
    """Re-raise a Booklab error raised inside, of the same kind, with its message :func:`_neutral`:
    it ends up in the log too."""
    try:
        yield
    except BooklabError as e:
        told = _neutral(str(e), checkout)
        if told == str(e):
            raise
        raise type(e)(told) from e


def run(ctx: Context, run: Run, runner: str) -> None:
    """Start the notebook container with a fresh token, wait until it answers, then
    until it answers through its route."""
    deployment_id = run.deployment
    record = ctx.deployments.record(deployment_id)
    slug = ctx.slug(deployment_id)
    settings = _notebook_settings(ctx, run, record)
    ctx.lifecycle.say(run, Phase.LAUNCHING, "Launching the notebook server...")
    started = time.monotonic()
    notebook_firewall.before_notebook(ctx.docker, ctx.config)
    if ctx.config.launch_target == "jupyterhub":
        _run_on_hub(ctx, run, runner, record, settings)
        metrics.observe(ctx.redis, "launch", time.monotonic() - started)
        return
    if warm_launch.held_by(record, run, runner) and _run_spare(ctx, run, runner, record, settings):
        return
    notebook = launcher.launch(
        ctx.docker,
        record["image"],
        name=f"booklab-{slug}",
        deployment_id=deployment_id,
        labels={"booklab.runner": runner, **ctx.routes.labels(slug)},
        limits=notebook_container.Limits(
            settings.memory, settings.cpus, ctx.config.notebook_pids_limit, ctx.config.notebook_allow_root
        ),
        network=ctx.config.notebook_network,
        host_ip=ctx.config.notebook_host,
        publish=ctx.config.notebook_publish,
    )
    try:  # stopped (or taken over) while its container was created: that container is this step's to remove
        ctx.lifecycle.expect(run, Phase.LAUNCHING)
    except Moved:
        launcher.stop(ctx.docker, notebook.container_id)
        raise
    _started(ctx, run, runner, record, settings, notebook.container_id, notebook.url)
    # sealed like every secret in Redis, for as long as the notebook may live: a reader of Redis
    # does not learn it (register_token announces it to its owner only)
    ctx.vault.put(deployment_id, NOTEBOOK_TOKEN, notebook.token.encode(), ttl=schema.RECORD_TTL)
    launcher.wait_ready(notebook, timeout=ctx.config.notebook_ready_timeout)
    ctx.deployments.update(deployment_id, url=ctx.routes.publish(slug, notebook))
    metrics.observe(ctx.redis, "launch", time.monotonic() - started)


def _run_spare(
    ctx: Context, run: Run, runner: str, record: dict[str, str], settings: notebook_settings.Effective
) -> bool:
    """Serve the run with the spare it claimed: its route goes up, and it is the run's notebook. False, the
    spare gone, when the user's notebook would get other limits or the spare no longer answers: the run
    starts its own."""
    notebook = warm_launch.notebook(ctx, run, record) if warm_launch.fits(record, settings) else None
    if notebook is None:
        warm_launch.let_go(ctx, run, record)
        return False
    _started(ctx, run, runner, record, settings, notebook.container_id, notebook.url)
    ctx.deployments.update(run.deployment, url=ctx.routes.publish(ctx.slug(run.deployment), notebook))
    return True


def _run_on_hub(
    ctx: Context, run: Run, runner: str, record: dict[str, str], settings: notebook_settings.Effective
) -> None:
    """Hub mode's launch: the image as its user's named server of the site's JupyterHub, ready once the hub
    says so; the hub's proxy and login serve it (no route, no token of Booklab's)."""
    container, url = hub_launch.start(ctx, run, record["image"], settings)
    try:  # stopped (or taken over) while the hub started it: that server is this step's to stop
        ctx.lifecycle.expect(run, Phase.LAUNCHING)
    except Moved:
        launcher.stop(ctx.docker, hub_launch.stop(ctx, run.deployment) or container)
        raise
    _started(ctx, run, runner, record, settings, container, url)
    ctx.deployments.update(run.deployment, url=url)


def _started(
    ctx: Context,
    run: Run,
    runner: str,
    record: dict[str, str],
    settings: notebook_settings.Effective,
    container: str,
    url: str,
) -> None:
    """The notebook's container runs: its host holds the image, the runner holds the container."""
    ctx.images.launched_on(ctx.docker_host, record["image"], record["project"], record["ref"], by=record["user"])
    ctx.vault.delete(run.deployment, GITLAB_TOKEN)  # started: no runner prepares this run again
    image_sharing.share_alongside(ctx, run, record["image"])
    ctx.runners.attach(
        runner, container=container, url=url, started_at=f"{time.time():.3f}", idle_timeout=str(settings.idle_timeout)
    )
    ctx.deployments.update(run.deployment, container=container)


def _notebook_settings(ctx: Context, run: Run, record: dict[str, str]) -> notebook_settings.Effective:
    """The settings the image's repository asked for, on the machine profile its user picked
    (else the one the repository asked for, when the user may use it, else the default), within
    the operator's maxima; says in the log which profile, and what it capped."""
    choice, settings = notebook_settings.for_image(
        ctx.docker.images.get(record["image"]).labels,
        ctx.config,
        picked=record.get("profile_asked", ""),
        usable=record.get("profiles_allowed", "").split(","),
    )
    if choice.note:
        ctx.lifecycle.say(run, Phase.LAUNCHING, choice.note)
    if choice.profile is not None:
        ctx.lifecycle.say(run, Phase.LAUNCHING, f"Profile {choice.profile.summary()}")
    for note in settings.notes:
        ctx.lifecycle.say(run, Phase.LAUNCHING, note[0].upper() + note[1:])
    ctx.deployments.update(
        run.deployment, urlpath=settings.urlpath, profile=choice.profile.name if choice.profile else ""
    )
    return settings


def built_for_spares(ctx: Context, run: Run, runner: str) -> str:
    """A run that only builds (``build_only``): its image is its branch's latest from now on, which the
    branch's warm spares follow; what its end says."""
    record = ctx.deployments.record(run.deployment)
    ctx.images.launched_on(ctx.docker_host, record["image"], record["project"], record["ref"])
    return f"Built {record['image']} for the warm spares of {record['project']}@{record['ref']}."


def register_token(ctx: Context, run: Run, runner: str) -> None:
    """Publish the notebook's token and announce ``ready``."""
    deployment_id = run.deployment
    record = ctx.deployments.record(deployment_id)
    now = time.time()
    ctx.deployments.update(deployment_id, ready_at=f"{now:.3f}")
    if warm_launch.held_by(record, run, runner):
        outcome = metrics.Outcome.WARM
    else:
        outcome = metrics.Outcome.CACHED if record.get("cached") else metrics.Outcome.BUILT
    metrics.observe_launch(ctx.redis, outcome, float(record.get("requested_at") or now), now)
    # the token is added by whoever serves the event to its owner, never kept in the log
    extra = {"urlpath": record["urlpath"]} if record.get("urlpath") else {}
    ctx.lifecycle.say(
        run, Phase.READY, f"server running at {record['url']}", url=record["url"], image=record["image"], **extra
    )
