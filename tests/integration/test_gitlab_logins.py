"""A deployment acts with its user's GitLab login for hours: GitLab's OAuth access tokens last
2 hours (the stand-in's clock is moved on), and the runner refreshes the login it shares with
the web tier."""

from booklab.phases import Phase
from tests.fixtures.pipeline import events_of, messages, phases, run_to_end
from tests.fixtures.services import wait_until
from tests.fixtures.web import csrf_token, log_in
from tests.integration.test_save_back import stand_in_git, write_text


def oauth_application(web_env) -> dict[str, str]:
    """The OAuth application's settings, which every runner has, as the web tier does."""
    return {name: web_env[name] for name in ("BOOKLAB_GITLAB_CONSUMER_KEY", "BOOKLAB_GITLAB_CONSUMER_SECRET")}


def launch_logged_in(web_client, user, project: str, **form: str) -> None:
    """Log ``user`` in through GitLab, then Launch ``main`` of ``project`` from the home page."""
    log_in(web_client, user)
    launched = web_client.post(
        "/launch", data={"project": project, "ref": "main", "csrf_token": csrf_token(web_client), **form}
    )
    assert launched.status_code == 303


def test_a_deployment_queued_for_three_hours_still_clones_and_removes_its_key(
    web_client, web_env, ctx, runners, gitlab, alice, unbuilt_project
):
    launch_logged_in(web_client, alice, unbuilt_project)
    gitlab.advance_clock(3 * 3600)  # no runner was free: the login's access token expired at GitLab
    runners(1, **oauth_application(web_env))
    events = run_to_end(ctx, f"{unbuilt_project}:main:alice")
    assert phases(events)[-1] == "ready", messages(events)
    assert "Added a read-only deploy key" in messages(events) and "Cloning" in messages(events)
    assert gitlab.deploy_keys(unbuilt_project) == []
    assert [r.status for r in gitlab.request_log() if r.path == "/oauth/token"][-1] == 200
    assert "@alice" in web_client.get("/").text  # the web tier acts with the refreshed login too


def test_an_automatic_save_three_hours_after_the_launch_pushes(
    web_client, web_env, ctx, runners, gitlab, alice, project
):
    # idle from Jupyter's start: time enough for the file below to be written first on a loaded machine
    runners(1, BOOKLAB_NOTEBOOK_IDLE_TIMEOUT="15", **oauth_application(web_env))
    launch_logged_in(web_client, alice, project, save_back="on")
    deployment_id = f"{project}:main:alice"
    ready = run_to_end(ctx, deployment_id)[-1]
    gitlab.advance_clock(3 * 3600)  # the notebook ran for hours: the login's access token expired at GitLab
    write_text(ready, "draft.md", "written after three hours\n")

    wait_until(lambda: ctx.deployments.status(deployment_id) is Phase.STOPPED, 60, "the idle notebook to be culled")

    final = events_of(ctx, deployment_id, 0)[-1].data
    assert "Saved your changes to branch" in final["message"], final["message"]
    branch = ctx.deployments.record(deployment_id)["saved_branch"]
    assert stand_in_git(gitlab, project, "show", f"{branch}:draft.md") == "written after three hours\n"


def test_a_login_gitlab_no_longer_accepts_fails_the_deployment_saying_log_in_again(
    web_client, web_env, ctx, runners, gitlab, alice, unbuilt_project
):
    launch_logged_in(web_client, alice, unbuilt_project)
    gitlab.advance_clock(3 * 3600)
    gitlab.revoke_oauth_access(alice)  # the user revoked Booklab's access in GitLab meanwhile
    (runner,) = runners(1, **oauth_application(web_env))
    events = run_to_end(ctx, f"{unbuilt_project}:main:alice")
    assert phases(events)[-1] == "failed"
    assert "GitLab no longer accepts your login" in events[-1]["message"] and "log in again" in events[-1]["message"]
    assert gitlab.deploy_keys(unbuilt_project) == []
    wait_until(lambda: not ctx.runners.held(runner.name), 10, "the runner to be free")
