"""The one GitLab client answers GitLab's refusals with the same Booklab errors, whoever asks
(the web tier, a step, save back), against the GitLab stand-in."""

import pytest

from booklab.errors import (
    BranchNotFound,
    DeployKeyRefused,
    GitLabError,
    GitLabRateLimited,
    GitLabUnavailable,
    InsufficientScope,
    NoAccess,
    NotFound,
    TokenRejected,
)
from booklab.pipeline.access import generate_keypair, key_title
from booklab.pipeline.gitlab_client import GitLabClient
from gitlab_standin.store import DEVELOPER, GUEST, MAINTAINER


@pytest.fixture
def standin(gitlab):
    alice = gitlab.add_user("alice", "Alice A")
    gitlab.add_user("dev")
    gitlab.add_user("guest")
    gitlab.add_project("lab/notebooks", {"alice": MAINTAINER, "dev": DEVELOPER, "guest": GUEST})
    return gitlab, alice


def client(gitlab, token: str) -> GitLabClient:
    return GitLabClient(gitlab.url, token, timeout=5)


@pytest.mark.parametrize(
    "call",
    [
        lambda gl: gl.whoami(),
        lambda gl: gl.username(),
        lambda gl: gl.identity(),
        lambda gl: gl.project("lab/notebooks"),
        lambda gl: gl.projects(),
    ],
)
def test_a_token_gitlab_does_not_accept_is_token_rejected_for_every_call(standin, call):
    gitlab, _ = standin
    with client(gitlab, "not-a-token") as gl, pytest.raises(TokenRejected, match="log in again"):
        call(gl)


def test_a_missing_project_and_a_missing_branch_say_what_to_check(standin):
    gitlab, alice = standin
    with client(gitlab, alice.token) as gl:
        with pytest.raises(NotFound, match="Project lab/nothing was not found on GitLab"):
            gl.project("lab/nothing")
        with pytest.raises(BranchNotFound, match="Branch 'nope' does not exist in lab/notebooks"):
            gl.launchable("lab/notebooks", "nope")


def test_a_guest_sees_the_project_but_may_not_launch_it(standin):
    gitlab, _ = standin
    with client(gitlab, gitlab.store.user("guest").token) as gl:
        with pytest.raises(NoAccess, match="ask a maintainer for Reporter access"):
            gl.launchable("lab/notebooks", "main")


def test_a_deploy_key_refused_for_the_role_is_deploy_key_refused(standin):
    gitlab, _ = standin
    with client(gitlab, gitlab.store.user("dev").token) as gl:
        project = gl.project("lab/notebooks")
        with pytest.raises(DeployKeyRefused):
            gl.add_deploy_key(project, "Booklab dev main", generate_keypair().public_openssh)
    assert gitlab.deploy_keys("lab/notebooks") == []


def test_gitlab_failing_is_unavailable_and_worth_a_retry(standin):
    gitlab, alice = standin
    gitlab.fail_next(r"/api/v4/projects", status=502)
    with client(gitlab, alice.token) as gl, pytest.raises(GitLabUnavailable, match="answered 502"):
        gl.project("lab/notebooks")


def test_a_429_is_handed_back_at_once_with_gitlabs_retry_after(standin):
    """No thread waits out GitLab's rate limit: the caller (a task's retry, the web tier's
    503) decides when to ask again."""
    gitlab, alice = standin
    gitlab.fail_next(r"/api/v4/projects/", status=429, retry_after=120)
    with client(gitlab, alice.token) as gl, pytest.raises(GitLabRateLimited, match="slow down") as caught:
        gl.project("lab/notebooks")
    assert caught.value.retry_after == 120 and caught.value.transient
    assert [r.status for r in gitlab.request_log() if r.path.startswith("/api/v4/projects/")] == [429]


def test_a_token_without_the_api_scope_is_told_which_scope_it_lacks(standin):
    gitlab, alice = standin
    read_only = gitlab.issue_oauth_token(alice, scope="read_api")
    with client(gitlab, read_only) as gl:
        project = gl.project("lab/notebooks")  # reading needs read_api only
        with pytest.raises(InsufficientScope, match="lacks the scope api"):
            gl.add_deploy_key(project, "Booklab alice main", generate_keypair().public_openssh)


def test_a_deploy_key_for_a_branch_with_a_long_name_gets_a_title_gitlab_takes(standin):
    gitlab, alice = standin
    title = key_title("alice", "feature/" + "x" * 300)
    with client(gitlab, alice.token) as gl:
        project = gl.project("lab/notebooks")
        gl.add_deploy_key(project, title, generate_keypair().public_openssh)
        with pytest.raises(GitLabError, match=r"\(400\)"):  # as GitLab: over 255 characters is refused
            gl.add_deploy_key(project, title + "x", generate_keypair().public_openssh)
    assert [key["title"] for key in gitlab.deploy_keys("lab/notebooks")] == [title]
    assert len(title) == 255 and title.startswith("Booklab alice feature/xxx")


def test_a_retry_after_of_days_is_taken_as_15_minutes(standin):
    gitlab, alice = standin
    gitlab.fail_next(r"/api/v4/projects/", status=429, retry_after=10**9)
    with client(gitlab, alice.token) as gl, pytest.raises(GitLabRateLimited) as caught:
        gl.project("lab/notebooks")
    assert caught.value.retry_after == 900
