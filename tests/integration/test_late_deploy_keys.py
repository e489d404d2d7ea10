"""A self-hosted GitLab writes its authorized keys from a background job: a deploy key just
added may be refused for a while ("Permission denied (publickey)"). The clone waits for it,
then clones over HTTPS with the user's token; a save waits for its own new key as long."""

from booklab import service
from tests.fixtures.pipeline import messages, phases, run_to_end
from tests.integration.test_save_back import save_finished, stand_in_git, write_text


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


def test_a_save_waits_for_gitlab_to_accept_its_new_deploy_key(ctx, runners, gitlab, alice, project):
    runners(1)
    deployment_id = service.request_deployment(ctx, project, "main", alice.token, save_back=True).id
    events = run_to_end(ctx, deployment_id)
    assert phases(events)[-1] == "ready", messages(events)
    write_text(events[-1], "draft.md", "saved with a key GitLab took a while to accept\n")
    gitlab.delay_deploy_keys(5)  # the save's key, added from now on

    assert service.save_now(ctx, deployment_id, alice.token)
    record = save_finished(ctx, deployment_id)

    assert record["save_state"] == "saved", record.get("save_message")
    saved = stand_in_git(gitlab, project, "show", f"{record['saved_branch']}:draft.md")
    assert saved == "saved with a key GitLab took a while to accept\n"
    # pushed with a deploy key of its own, removed once the push was done
    posts = [r.status for r in gitlab.request_log() if r.method == "POST" and "/deploy_keys" in r.path]
    assert posts == [201, 201] and gitlab.deploy_keys(project) == []
