"""A run's part in sharing images between runner hosts through the registry (``images/registry``).

Before the deploy key and the clone, an image the local engine lacks but the registry holds is
pulled, never built again (:func:`pull_if_shared`); a registry that does not answer, or a pull
that fails, only means a build here, as without a registry. Once the notebook's container has
started, an image the registry lacks (just built, rebuilt, or built before the registry was
set) is pushed in a thread of the runner, so that the launch never waits for it
(:func:`share_alongside`); a push that fails is tried again twice (a registry may fail pushes
of the same layers at once), then it is a warning, and the next launch of that image tries
again. Either way the run then lets go of the image's build claim, if it holds it, once the
push has ended: a launch of another host that waits for the image pulls it, or builds it
(:mod:`booklab.pipeline.one_build`). Without ``images/registry``, neither does anything.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from contextlib import closing

import docker

from booklab.context import Context
from booklab.errors import Moved, RegistryError
from booklab.phases import Phase
from booklab.pipeline import registry
from booklab.pipeline.registry import Registry
from booklab.state.lifecycle import Run

log = logging.getLogger(__name__)

#: seconds before each new try of a push that failed
PUSH_PAUSES = (2, 8)
PULLING = "Pulling the image built on another host..."
SHARED = "The image is shared through the registry."


def pull_if_shared(ctx: Context, run: Run, image: str) -> bool:
    """With a registry that holds ``image``, pull it (its progress in the run's log); whether the
    engine has it now. A registry that does not answer, or a failed pull, is said and is False."""
    shared = Registry.of(ctx.config)
    if shared is None:
        return False
    try:
        if registry.digest(ctx.docker, shared, image) is None:
            return False
    except RegistryError as e:
        log.warning("%s: the registry did not answer (%s): %s is built here", run, e, image)
        ctx.lifecycle.say(run, Phase.FETCHING, "The image registry did not answer: building the image here.")
        return False
    ctx.lifecycle.say(run, Phase.FETCHING, PULLING)
    started = time.monotonic()
    try:
        for line in registry.pull(ctx.docker, shared, image):
            ctx.lifecycle.say(run, Phase.FETCHING, line)
    except RegistryError as e:
        log.warning("%s: pulling %s failed (%s): it is built here", run, image, e)
        ctx.lifecycle.say(run, Phase.FETCHING, "The image could not be pulled from the registry: building it here.")
        return False
    log.info("%s: pulled %s from the registry in %.1f s", run, image, time.monotonic() - started)
    return True


def share_alongside(ctx: Context, run: Run, image: str) -> threading.Thread | None:
    """With a registry, push ``image`` there unless it holds it already or another launch holds the claim of
    its build (that launch pushes it), in a thread (returned) that the launch does not wait for; the run's log
    says when the image is shared, while the run is still launching (the runner's log says it in any case)."""
    shared = Registry.of(ctx.config)
    if shared is None:
        return None
    holder = ctx.build_claims.holder(image)
    if holder is not None and holder.run != run.id:
        return None  # the launch that built it pushes it; a second push of the same image meanwhile is waste
    ctx.build_claims.pushing(image, run.id)  # the claim, if the run holds it, stays until the push ends
    thread = threading.Thread(target=_share, args=(ctx, run, image, shared), name=f"push {image}", daemon=True)
    thread.start()
    return thread


def _share(ctx: Context, run: Run, image: str, shared: Registry) -> None:
    try:
        _push(ctx, run, image, shared)
    finally:
        ctx.build_claims.release(image, run.id, pushed=True)


def _push(ctx: Context, run: Run, image: str, shared: Registry) -> None:
    started = time.monotonic()
    # a client of its own: the step's goes on with the launch meanwhile
    with closing(docker.from_env()) as client:
        try:
            if registry.holds(client, shared, image):
                return
            _tell(ctx, run, "Sharing the image through the registry, alongside the launch.")
            _push_tried_again(run, client, shared, image)
        except (RegistryError, docker.errors.DockerException) as e:
            log.warning("%s: %s was not shared through the registry: %s", run, image, e)
            _tell(ctx, run, "The image could not be shared through the registry: another host would build it again.")
            return
    log.info("%s: %s is shared through the registry (pushed in %.1f s)", run, image, time.monotonic() - started)
    _tell(ctx, run, SHARED)


def _push_tried_again(run: Run, client: docker.DockerClient, shared: Registry, image: str) -> None:
    """Push ``image``, trying again after each of :data:`PUSH_PAUSES` when it fails; the last failure raised."""
    for pause in PUSH_PAUSES:
        try:
            registry.push(client, shared, image)
            return
        except (RegistryError, docker.errors.DockerException) as e:
            log.warning("%s: pushing %s failed (%s): trying again in %d s", run, image, e, pause)
        time.sleep(pause)
    registry.push(client, shared, image)


def _tell(ctx: Context, run: Run, message: str) -> None:
    """Say ``message`` in the run's log while it is launching; a run ready or ending has said its last."""
    with contextlib.suppress(Moved):
        ctx.lifecycle.say(run, Phase.LAUNCHING, message)
