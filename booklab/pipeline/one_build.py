"""One build of a commit's image at a time, across runners and hosts.

When several launches of one commit start at once (a class opening the same project), the first
that finds the image neither on its Docker Engine nor in the registry claims its build
(:mod:`booklab.state.build_claims`) and builds it. Each of the others says in its log that
another launch builds the image and waits for it, looking about once a second: the image on its
own engine (built on the same host) ends the wait; so does the claim's release, after which the
image is pulled from the registry (built on another host, and pushed) or, still not to be had,
built by the launch that waited, which takes the claim first. A launch takes the claim over from
a holder whose runner was lost, and waits at most as long as a claim lives; a Stop ends the
wait as it ends any step (:class:`~booklab.errors.Moved`). Without a registry, a launch on
another host than the holder's does not wait: the image could not reach it.

The holder lets the claim go once its build ended (:func:`build_ended`: with a registry, an
image built is let go only once pushed, or its push failed:
:func:`booklab.pipeline.image_sharing.share_alongside`), and whenever its run ends
(:mod:`booklab.pipeline.teardown`). A rebuild claims nothing.
"""

from __future__ import annotations

import logging
import time

from booklab.context import Context
from booklab.phases import Phase
from booklab.pipeline import builder, image_sharing
from booklab.pipeline.registry import Registry
from booklab.state.build_claims import Holder, claim_ttl
from booklab.state.lifecycle import Run

log = logging.getLogger(__name__)

#: seconds between two looks of a waiting launch
POLL = 1.0


def built_by_another(ctx: Context, run: Run, runner: str, image: str) -> bool:
    """Whether ``image`` is on this runner's engine now, built by another launch of its commit (or
    pulled once that launch shared it), after waiting for that launch's build; False: this run
    builds it, holding its claim (or without it, past the longest wait)."""
    me = Holder(run.id, runner, ctx.docker_host)
    ttl = claim_ttl(ctx.config.build_timeout)
    deadline = time.monotonic() + ttl
    waiting = False
    while True:
        holder = ctx.build_claims.take(image, me, ttl)
        if holder is None:
            if waiting:
                ctx.lifecycle.say(run, Phase.FETCHING, "The other launch ended without the image: building it here.")
            return False
        if ctx.build_claims.take_over(image, holder, me, ttl):
            log.warning("%s takes over the build of %s from %s, which was lost", run, image, holder.runner)
            ctx.lifecycle.say(run, Phase.FETCHING, "The launch building this image was lost: building it here.")
            return False
        if holder.host != me.host and Registry.of(ctx.config) is None:
            return False  # built on another host, with no registry between them
        if time.monotonic() >= deadline:
            ctx.lifecycle.say(run, Phase.FETCHING, "The other launch's build takes too long: building the image here.")
            return False
        if not waiting:
            log.info("%s waits for %s, which %s builds (%s on %s)", run, image, holder.run, holder.runner, holder.host)
            where = "on this host" if holder.host == me.host else "on another host"
            ctx.lifecycle.say(
                run, Phase.FETCHING, f"Another launch is building this commit's image ({where}): waiting for it..."
            )
            waiting = True
        time.sleep(POLL)
        ctx.lifecycle.expect(run, Phase.FETCHING)  # stopped meanwhile: Moved ends the wait as it ends any step
        released = ctx.build_claims.holder(image) is None  # read first: its holder lets go once the image is here
        if builder.image_exists(ctx.docker, image) or (released and image_sharing.pull_if_shared(ctx, run, image)):
            return True


def build_ended(ctx: Context, run: Run, built: bool) -> None:
    """The run's build ended (``built``: the image is here): the launches waiting for it look again. With a
    registry, the claim of an image built goes only once the image is pushed, or its push failed."""
    if not (built and Registry.of(ctx.config)):
        release(ctx, run)


def release(ctx: Context, run: Run) -> None:
    """Let go of the claim of the build of the run's image, if the run holds it and no push of the image is
    under way (that push lets go once it ends, so that launches on other hosts pull the image, not build it:
    a notebook may well be stopped before its image is pushed)."""
    image = ctx.deployments.record(run.deployment).get("image")
    if image and ctx.build_claims.release(image, run.id):
        log.info("%s lets go of the build of %s", run, image)
