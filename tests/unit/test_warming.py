"""Which images idle runners keep warm (booklab.runner.warming.wanted) and which launch claims a spare
(booklab.dispatch.placement.spare_runner), on a real Redis: the latest image of each warm branch with its count,
then one of each of the branches launched most in the last 24 hours; a launch claims a spare of the image its
branch launched last, unless it rebuilds."""

from __future__ import annotations

import json
import os
import time

from booklab import config as config_module
from booklab.context import Context
from booklab.dispatch import placement
from booklab.runner import warming
from booklab.state.lifecycle import Run

HOUR = 3600


def context(booklab_env, **settings: str) -> Context:
    return Context(config_module.load(os.devnull, environ={**booklab_env, **settings}))


def image(project: str, commit: str) -> str:
    return f"booklab/{project.replace('/', '-')}:{commit * 40}"


def test_the_latest_image_of_each_warm_branch_is_wanted_then_the_most_launched_ones(redis_ctx, booklab_env):
    ctx = context(
        booklab_env,
        BOOKLAB_WARM_PROJECTS=json.dumps({"course/lab@main": 10, "course/lab@week2": 2, "course/new@main": 3}),
        BOOKLAB_WARM_RECENT="2",
    )
    now = time.time()
    ctx.images.launched_on("host-a", image("course/lab", "a"), "course/lab", "main", now)
    ctx.images.launched_on("host-a", image("course/lab", "a"), "course/lab", "week2", now)  # one commit, two branches
    for _ in range(3):
        ctx.images.launched_on("host-a", image("physics/x", "b"), "physics/x", "main", now)
    for _ in range(2):
        ctx.images.launched_on("host-a", image("chem/y", "c"), "chem/y", "main", now)
    for _ in range(5):  # the day before yesterday's favourite counts no more
        ctx.images.launched_on("host-a", image("old/z", "d"), "old/z", "main", now - 25 * HOUR)
    ctx.images.launched_on("host-a", image("physics/x", "e"), "physics/x", "main", now)  # its latest commit

    wanted = warming.wanted(ctx)
    assert list(wanted.items()) == [
        (image("course/lab", "a"), ("course/lab@main", 12)),  # course/new was never launched: nothing to keep
        (image("physics/x", "e"), ("recent", 1)),  # launched most: its branch's latest image, one spare
        (image("chem/y", "c"), ("recent", 1)),
    ]


def test_a_launch_claims_the_spare_of_the_image_its_branch_launched_last_unless_it_rebuilds(redis_ctx):
    ctx = redis_ctx
    built = image("course/lab", "a")
    ctx.images.launched_on("host-a", built, "course/lab", "main")
    ctx.runners.beat("runner-1@a")
    assert ctx.spares.begin("runner-1@a", "s1", built, "course/lab@main", 1)
    assert ctx.spares.started("runner-1@a", "s1", "c1", "http://10.0.0.2:8888/", "1", "1.0", "t")
    assert ctx.spares.offer("runner-1@a", "s1", built)

    rebuild = Run("course/lab:main:bob", 1)
    ctx.deployments.update(rebuild.deployment, project="course/lab", ref="main", rebuild="1")
    assert placement.spare_runner(ctx, rebuild) == ""
    other = Run("course/lab:week2:alice", 1)  # a branch that never launched: no image to claim by
    ctx.deployments.update(other.deployment, project="course/lab", ref="week2")
    assert placement.spare_runner(ctx, other) == ""
    alice = Run("course/lab:main:alice", 1)
    ctx.deployments.update(alice.deployment, project="course/lab", ref="main")
    assert placement.first_queue(ctx, alice) == "runner.runner-1@a"
    assert ctx.spares.of("runner-1@a").run == alice.id
    carol = Run("course/lab:main:carol", 1)
    ctx.deployments.update(carol.deployment, project="course/lab", ref="main")
    assert placement.spare_runner(ctx, carol) == ""  # claimed already
