"""A self-hosted GitLab writes its authorized keys from a background job: a deploy key just
added may be refused for a while ("Permission denied (publickey)"). The clone waits for it,
then clones over HTTPS with the user's token."""

from booklab import service
from tests.fixtures.pipeline import messages, phases, run_to_end


def test_a_key_that_works_after_20_s_clones_over_ssh(ctx, runners, gitlab, alice, unbuilt_project):
    gitlab.delay_deploy_keys(20)
    runners(1)
    events = run_to_end(ctx, service.request_deployment(ctx, unbuilt_project, "main", alice.token).id)
    assert phases(events)[-1] == "ready", messages(events)
    assert "GitLab does not accept the new deploy key yet: trying again" in messages(events)
    assert "HTTPS" not in messages(events) and gitlab.ssh_logins()
    assert gitlab.deploy_keys(unbuilt_project) == []


def test_a_key_gitlab_never_accepts_in_time_falls_back_to_https(ctx, runners, gitlab, alice, unbuilt_project):
    gitlab.delay_deploy_keys(3600)
    runners(1, BOOKLAB_GITLAB_DEPLOY_KEY_WAIT="3")
    events = run_to_end(ctx, service.request_deployment(ctx, unbuilt_project, "main", alice.token).id)
    assert phases(events)[-1] == "ready", messages(events)
    assert "did not accept the deploy key within 3 s: cloning over HTTPS with your own token" in messages(events)
    assert gitlab.deploy_keys(unbuilt_project) == []
