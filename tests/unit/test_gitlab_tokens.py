"""A user's GitLab OAuth login as the web tier and the runners act with it, against the GitLab
stand-in (whose access tokens expire after 2 hours of its clock and whose refresh revokes the
old pair) and a real Redis: refreshed when about to expire or refused, once for every process."""

import contextlib
import os
import threading
import time
from collections.abc import Iterator

import pytest

from booklab import config as config_module
from booklab.context import Context
from booklab.errors import ConfigError, GitLabUnavailable, TokenRejected
from booklab.pipeline import access, gitlab_tokens, key_sweeper
from booklab.state import schema
from booklab.state.grants import Pair
from booklab.state.vault import GITLAB_TOKEN
from gitlab_standin.store import ACCESS_TOKEN_TTL, MAINTAINER


@pytest.fixture
def login_ctx(web_env, redis_client):
    """A context with the OAuth application's settings, as every runner and the web tier have."""
    context = Context(config_module.load(os.devnull, environ=web_env))
    yield context
    context.close()


@pytest.fixture
def maria(gitlab, web_env):
    """A user logged in through the OAuth application: (user, the login's first pair)."""
    user = gitlab.add_user("maria")
    gitlab.add_project("lab/notebooks", {"maria": MAINTAINER})
    issued = gitlab.store.issue_token(user, web_env["BOOKLAB_GITLAB_CONSUMER_KEY"])
    return user, Pair(issued.access_token, issued.refresh_token, time.time() + ACCESS_TOKEN_TTL)


def refreshes(gitlab) -> list[int]:
    return [r.status for r in gitlab.request_log() if r.path == "/oauth/token"]


def works(ctx, token: str) -> bool:
    with ctx.gitlab(token) as gl:
        return gl.whoami().username == "maria"


def test_a_token_still_valid_is_used_as_it_is(login_ctx, gitlab, maria):
    _, pair = maria
    grant = login_ctx.grants.create(pair, 3600)
    assert gitlab_tokens.fresh(login_ctx, grant) == pair.access_token
    assert refreshes(gitlab) == []


def test_many_processes_needing_a_fresh_token_at_once_refresh_it_once(login_ctx, gitlab, maria):
    _, pair = maria
    grant = login_ctx.grants.create(Pair(pair.access_token, pair.refresh_token, time.time() + 60), 3600)
    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(gitlab_tokens.fresh(login_ctx, grant))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 8 and len(set(got)) == 1 and got[0] != pair.access_token
    assert refreshes(gitlab) == [200]  # GitLab revokes a used refresh token: a second refresh would fail
    assert works(login_ctx, got[0]) and not works_quietly(login_ctx, pair.access_token)
    assert login_ctx.grants.get(grant).access_token == got[0]  # the web tier and every runner read it next


def works_quietly(ctx, token: str) -> bool:
    try:
        return works(ctx, token)
    except TokenRejected:
        return False


def test_a_token_gitlab_expired_is_refreshed_when_gitlab_refuses_it(login_ctx, gitlab, maria):
    """Booklab's clock says the token is good, GitLab's says 3 hours passed: the 401 renews it."""
    _, pair = maria
    grant = login_ctx.grants.create(pair, 3600)
    gitlab.advance_clock(3 * 3600)
    with gitlab_tokens.client(login_ctx, pair.access_token, grant) as gl:
        assert gl.project("lab/notebooks").path == "lab/notebooks"
        assert gl.token != pair.access_token
    assert refreshes(gitlab) == [200]


def test_a_login_gitlab_no_longer_accepts_is_refused_with_log_in_again(login_ctx, gitlab, maria):
    _, pair = maria
    grant = login_ctx.grants.create(pair, 3600)
    gitlab.advance_clock(3 * 3600)
    login_ctx.grants.put(grant, Pair(pair.access_token, "revoked-or-used", pair.expires_at))
    with pytest.raises(TokenRejected, match="no longer accepts your login"):
        with gitlab_tokens.client(login_ctx, pair.access_token, grant) as gl:
            gl.project("lab/notebooks")


def test_a_runner_without_the_oauth_application_says_what_to_set(redis_ctx, gitlab, maria):
    _, pair = maria
    grant = redis_ctx.grants.create(Pair(pair.access_token, pair.refresh_token, time.time() - 5), 3600)
    with pytest.raises(ConfigError, match="gitlab/consumer_secret on every runner"):
        gitlab_tokens.fresh(redis_ctx, grant)


@contextlib.contextmanager
def another_process_refreshing(ctx, grant: str) -> Iterator[None]:
    """Another process holds the login's refresh while the block runs."""
    holding, done = threading.Event(), threading.Event()

    def refreshing() -> None:
        with ctx.grants.lock(grant):
            holding.set()
            done.wait(10)

    other = threading.Thread(target=refreshing)
    other.start()
    holding.wait(10)
    try:
        yield
    finally:
        done.set()
        other.join()


def test_a_runners_checks_wait_for_another_process_refreshing_the_login_no_longer_than_for_gitlab(
    login_ctx, gitlab, maria
):
    """A runner's checks (a deploy key sweep) hold up its heartbeat: they give up on a login another process is
    refreshing (the sweep is tried again later) rather than wait for it as a launch does."""
    _, pair = maria
    grant = login_ctx.grants.create(pair, 3600)
    checks = Context(login_ctx.config, gitlab_wait=1)
    with another_process_refreshing(login_ctx, grant), pytest.raises(GitLabUnavailable):
        gitlab_tokens.fresh(checks, grant, rejected=pair.access_token)
    checks.close()
    assert refreshes(gitlab) == []


def test_a_key_whose_login_another_process_refreshes_is_left_to_the_sweeper_not_to_the_operator(
    login_ctx, gitlab, maria, caplog
):
    """A runner's checks end a lost runner's run while the web tier refreshes its user's login: the run's deploy
    key is swept later, with the login's new token, instead of an error telling the operator to remove it."""
    _, pair = maria
    grant = login_ctx.grants.create(Pair(pair.access_token, pair.refresh_token, time.time() + 60), 3600)
    with login_ctx.gitlab(pair.access_token) as gl:
        project = gl.project("lab/notebooks")
        access.add_deploy_key(login_ctx, gl, project, "booklab-clone-x")
    deployment = "lab/notebooks:main:maria"
    login_ctx.vault.put(deployment, GITLAB_TOKEN, pair.access_token.encode())
    login_ctx.deployments.update(
        deployment, project_id=str(project.id), deploy_key_title="booklab-clone-x", deploy_key_added="1", grant=grant
    )
    checks = Context(login_ctx.config, gitlab_wait=1)
    with another_process_refreshing(login_ctx, grant):
        access.remove_deploy_key(checks, deployment)
    checks.close()
    assert "by hand" not in caplog.text
    assert len(gitlab.deploy_keys("lab/notebooks")) == 1

    login_ctx.redis.zadd(schema.KEY_SWEEP, {f"{project.id} booklab-clone-x": time.time()}, xx=True)  # due now
    key_sweeper.sweep(login_ctx)
    assert gitlab.deploy_keys("lab/notebooks") == []


def test_a_deploy_key_swept_hours_later_is_removed_with_the_login_refreshed(login_ctx, gitlab, maria):
    """GitLab did not answer the removal of a key; the sweep that tries again comes after the
    login's access token expired: it refreshes the login and removes the key."""
    _, pair = maria
    grant = login_ctx.grants.create(pair, 24 * 3600)
    with login_ctx.gitlab(pair.access_token) as gl:
        project = gl.project("lab/notebooks")
        access.add_deploy_key(login_ctx, gl, project, "booklab-swept-later")
    key_sweeper.expect(login_ctx, project.id, "booklab-swept-later", pair.access_token, time.time(), grant)
    gitlab.advance_clock(3 * 3600)

    key_sweeper.sweep(login_ctx)

    assert gitlab.deploy_keys("lab/notebooks") == []
    assert refreshes(gitlab) == [200]
    assert login_ctx.redis.zcard(schema.KEY_SWEEP) == 0
