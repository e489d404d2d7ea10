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
from booklab.phases import Phase
from booklab.pipeline import builder
from booklab.runner import warming
from booklab.state import schema
from booklab.state.lifecycle import Run
from tests.fixtures.gitlab import create_local_repo

HOUR = 3600


def context(booklab_env, **settings: str) -> Context:
    return Context(config_module.load(os.devnull, environ={**booklab_env, **settings}))


def image(project: str, commit: str) -> str:
    return f"booklab/{project.replace('/', '-')}:{commit * 40}"


def test_the_latest_image_of_each_warm_branch_is_wanted_then_the_branches_most_users_launched(redis_ctx, booklab_env):
    ctx = context(
        booklab_env,
        BOOKLAB_WARM_PROJECTS=json.dumps({"course/lab@main": 10, "course/lab@week2": 2, "course/new@main": 3}),
        BOOKLAB_WARM_RECENT="2",
    )
    now = time.time()
    launched = ctx.images.launched_on
    launched("host-a", image("course/lab", "a"), "course/lab", "main", "alice", now)
    launched("host-a", image("course/lab", "a"), "course/lab", "week2", "alice", now)  # one commit, two branches
    for user in ("alice", "bob", "carol"):
        launched("host-a", image("physics/x", "b"), "physics/x", "main", user, now)
    for user in ("alice", "bob"):
        launched("host-a", image("chem/y", "c"), "chem/y", "main", user, now)
    for _ in range(9):  # one user alone, however often, counts once an hour
        launched("host-a", image("mallory/miner", "f"), "mallory/miner", "main", "mallory", now)
    for user in ("u1", "u2", "u3", "u4", "u5"):  # the day before yesterday's favourite counts no more
        launched("host-a", image("old/z", "d"), "old/z", "main", user, now - 25 * HOUR)
    launched("host-a", image("physics/x", "e"), "physics/x", "main", "dave", now)  # its latest commit
    launched("host-a", image("lab/built", "g"), "lab/built", "main")  # built for spares: no user, not counted

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
    assert ctx.spares.started("runner-1@a", "s1", "c1", "http://10.0.0.2:8888/", "1", "1.0", "t", "sha256:1")
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


def test_warm_refresh_queues_one_build_of_a_branch_whose_head_is_not_its_latest_image(
    redis_ctx, booklab_env, gitlab, tmp_path
):
    bot = gitlab.add_user("booklab-bot")
    gitlab.add_project("course/lab", members={"booklab-bot": 20})
    gitlab.push("course/lab", create_local_repo(tmp_path / "repo", {"main": {"README.md": "week 1"}}))
    ctx = context(
        booklab_env,
        BOOKLAB_WARM_PROJECTS='{"course/lab@main": 2}',
        BOOKLAB_WARM_REFRESH="60",
        BOOKLAB_WARM_GITLAB_TOKEN=bot.token,
    )
    warming.refresh(ctx, "runner-1@a")
    built = "course/lab:main:booklab-bot"
    assert ctx.deployments.status(built) is Phase.TODO
    record = ctx.deployments.record(built)
    assert record["build_only"] == "1"
    assert placement.spare_runner(ctx, Run(built, 1)) == ""  # a build never takes a spare

    ctx.lifecycle.stop(built)  # whatever became of it
    warming.refresh(ctx, "runner-2@a")  # within warm/refresh seconds of the last look: nothing
    assert ctx.lifecycle.newest(built).number == 1

    with ctx.gitlab(bot.token) as gl:
        project = gl.project("course/lab")
        head = builder.image_name(ctx.config.image_prefix, project.path, gl.branch_commit(project, "main"))
    ctx.images.launched_on("host-a", head, "course/lab", "main")
    ctx.redis.delete(schema.WARM_REFRESH)
    warming.refresh(ctx, "runner-2@a")  # its head is the latest image: nothing to build
    assert ctx.lifecycle.newest(built).number == 1
