"""How clone and save reach a project (:mod:`booklab.pipeline.access`), as plain calls on a
real Redis and the GitLab stand-in: a deploy key, or the user's token when GitLab refuses one."""

from __future__ import annotations

from booklab.pipeline import access
from tests.fixtures.pipeline import MAINTAINER, PROJECT

REPORTER = 20


def test_a_deploy_key_gitlab_adds_is_the_way_in(redis_ctx, gitlab, alice):
    gitlab.add_project(PROJECT, members={"alice": MAINTAINER})
    told: list[str] = []
    with redis_ctx.gitlab(alice.token) as gl:
        project = gl.project(PROJECT)
        keys = access.deploy_key_or_token(redis_ctx, gl, project, "Booklab save alice", told.append, can_push=True)
    assert keys is not None and told == []
    (added,) = gitlab.deploy_keys(PROJECT)
    assert added["title"] == "Booklab save alice" and added["can_push"]
    assert added["key"] == keys.public_openssh


def test_a_deploy_key_gitlab_refuses_leaves_the_token_and_says_why(redis_ctx, gitlab, alice):
    gitlab.add_project(PROJECT, members={"alice": REPORTER})
    told: list[str] = []
    with redis_ctx.gitlab(alice.token) as gl:
        project = gl.project(PROJECT)
        assert access.deploy_key_or_token(redis_ctx, gl, project, "Booklab alice main", told.append) is None
    assert told == [
        "GitLab refused a deploy key (your role is below Maintainer): cloning over HTTPS with your own token instead."
    ]
    assert gitlab.deploy_keys(PROJECT) == []
