"""How clone and save reach a project (:mod:`booklab.pipeline.access`), as plain calls on a
real Redis, git and the GitLab stand-in: a deploy key, waited for while GitLab does not
accept it yet, or the user's token when GitLab refuses one."""

from __future__ import annotations

from booklab.pipeline import access, git
from tests.fixtures.gitlab import create_local_repo
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


def test_git_with_a_deploy_key_gitlab_accepts_late_is_tried_again_until_it_works(redis_ctx, gitlab, alice, tmp_path):
    repo = create_local_repo(tmp_path / "repo", {"main": {"README.md": "# Notes\n"}})
    gitlab.import_repository(PROJECT, repo, members={"alice": MAINTAINER})
    gitlab.delay_deploy_keys(2)
    with redis_ctx.gitlab(alice.token) as gl:
        project = gl.project(PROJECT)
        commit = gl.branch_commit(project, "main")
        keys = access.add_deploy_key(redis_ctx, gl, project, "Booklab save alice", can_push=True)
    credentials, checkout, told = access.ssh(redis_ctx, keys.private_openssh), tmp_path / "checkout", []

    access.once_accepted(
        redis_ctx, lambda: git.fetch_commit(project.ssh_url, commit, checkout, credentials), told.append
    )

    assert git.head_commit(checkout) == commit
    assert told and all(
        line.startswith("GitLab does not accept the new deploy key yet: trying again in") for line in told
    )
