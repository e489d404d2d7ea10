"""How a refused push is told apart: a branch that exists or moved (try another name) from
a push GitLab declines (say why), as git prints them."""

from __future__ import annotations

from booklab.errors import CloneError, PushRejected
from booklab.pipeline import git

BRANCH = "booklab/alice/20261126-0012"


def test_a_branch_that_moved_is_a_rejection_to_route_around():
    lines = [
        "To ssh://gitlab.example.org/group/project.git",
        f"!\t0123abc:refs/heads/{BRANCH}\t[rejected] (fetch first)",
        "Done",
    ]
    assert isinstance(git._explain(lines, "push", BRANCH), PushRejected)


def test_a_push_gitlab_declines_says_why_and_is_not_taken_for_a_taken_name():
    lines = [
        "remote: GitLab: Author 'x@example.org' is not a member of team",
        "To ssh://gitlab.example.org/group/project.git",
        f"!\t0123abc:refs/heads/{BRANCH}\t[remote rejected] (pre-receive hook declined)",
        "Done",
    ]
    error = git._explain(lines, "push", BRANCH)
    assert isinstance(error, CloneError) and not isinstance(error, PushRejected)
    assert "is not a member of team" in str(error)


def test_a_role_that_cannot_push_is_named():
    lines = [
        "remote: You are not allowed to push code to this project.",
        "fatal: unable to access 'http://gitlab.example.org/group/project.git/': The requested URL returned error: 403",
    ]
    error = git._explain(lines, "push", BRANCH)
    assert not isinstance(error, PushRejected) and "your role cannot push" in str(error)


def test_an_archived_project_is_named_over_ssh_and_https():
    over_ssh = [
        "ERROR: You can't push code to an archived project.",
        "fatal: Could not read from remote repository.",
    ]
    over_https = [
        "remote: You can't push code to an archived project.",
        "fatal: unable to access 'http://gitlab.example.org/group/project.git/': The requested URL returned error: 403",
    ]
    for lines in (over_ssh, over_https):
        error = git._explain(lines, "push", BRANCH)
        assert not error.transient and "the project is archived" in str(error), lines
