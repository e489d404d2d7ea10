"""The first two steps of a run called as plain functions, with no runner process: against the
GitLab stand-in (its API and git over SSH and HTTPS), a real Redis, and the Docker Engine only
for provision_key's look for a cached image."""

import os
import subprocess
import threading

import pytest

from booklab.errors import Moved, SettingsError, UnsafeCheckout
from booklab.phases import Phase
from booklab.pipeline import access, builder, steps, teardown
from booklab.state.build_claims import Holder
from booklab.state.deployment import Deployment
from booklab.state.vault import DEPLOY_KEY, GITLAB_TOKEN
from gitlab_standin.store import DEVELOPER, MAINTAINER
from tests.fixtures.gitlab import create_local_repo
from tests.fixtures.pipeline import messages, queue_run, take_run
from tests.fixtures.services import wait_until

PROJECT = "lab/steps"
RUNNER = "runner-played-by-a-test"


@pytest.fixture
def repository(gitlab, tmp_path):
    """``lab/steps``: main holds a notebook, ``bad-settings`` an invalid .booklab.yml."""
    repo = create_local_repo(
        tmp_path / "steps",
        {"main": {"hello.ipynb": "{}"}, "bad-settings": {".booklab.yml": "memory: lots\n"}},
    )
    gitlab.add_user("maria")
    gitlab.add_user("dev")
    gitlab.add_project(PROJECT, members={"maria": MAINTAINER, "dev": DEVELOPER})
    gitlab.push(PROJECT, repo)
    return gitlab


def fetch(ctx, gitlab, user: str, ref: str = "main"):
    """A run of ``ref`` for ``user``, taken, then provision_key and clone as a runner calls them."""
    dep = Deployment(PROJECT, ref, user)
    queue_run(ctx, dep, gitlab.store.user(user).token)
    run = take_run(ctx, dep.id, RUNNER)
    steps.provision_key(ctx, run, RUNNER)
    return run


def log_of(ctx, run) -> str:
    return messages([e.data for e in ctx.events.read(run.id, 0)])


def test_a_maintainers_clone_uses_a_read_only_key_that_is_gone_once_the_image_is_built(ctx, repository):
    run = fetch(ctx, repository, "maria")
    (key,) = repository.deploy_keys(PROJECT)
    assert key["can_push"] is False and ctx.vault.find(run.deployment, DEPLOY_KEY)
    steps.clone(ctx, run, RUNNER)
    assert (steps.checkout_dir(ctx, run.deployment) / "hello.ipynb").exists()
    assert ctx.vault.find(run.deployment, DEPLOY_KEY) is None  # its private half goes with the clone
    assert len(repository.deploy_keys(PROJECT)) == 1  # the key itself while the image builds, as build does:
    with access.removing_deploy_key(ctx, run.deployment):
        pass
    assert repository.deploy_keys(PROJECT) == []
    assert "Added a read-only deploy key to the project." in log_of(ctx, run)
    # the user's token stays for a runner of another engine until the notebook starts (test_several_hosts.py)
    assert ctx.vault.find(run.deployment, GITLAB_TOKEN)


def test_a_developer_clones_over_https_with_their_token_and_no_key(ctx, repository):
    run = fetch(ctx, repository, "dev")
    assert repository.deploy_keys(PROJECT) == []
    assert "cloning over HTTPS with your own token instead" in log_of(ctx, run)
    steps.clone(ctx, run, RUNNER)
    assert (steps.checkout_dir(ctx, run.deployment) / "hello.ipynb").exists()


def test_an_instance_that_forbids_ed25519_keys_is_cloned_over_https(ctx, repository):
    repository.forbid_key_type("ssh-ed25519")
    run = fetch(ctx, repository, "maria")
    assert repository.deploy_keys(PROJECT) == []
    assert "its type, ed25519, is not allowed there): cloning over HTTPS with your own token" in log_of(ctx, run)
    steps.clone(ctx, run, RUNNER)
    assert (steps.checkout_dir(ctx, run.deployment) / "hello.ipynb").exists()


def test_an_invalid_booklab_yml_is_refused_after_the_clone_with_what_to_change(ctx, repository):
    run = fetch(ctx, repository, "maria", "bad-settings")
    with pytest.raises(SettingsError, match=r"\.booklab\.yml.*memory must be a size"):
        steps.clone(ctx, run, RUNNER)
    assert ctx.vault.find(run.deployment, DEPLOY_KEY) is None  # its private half went with the clone, before the check
    teardown.end(ctx, run, RUNNER, Phase.FAILED, "The .booklab.yml is not valid.")  # as the failed step's task does
    assert repository.deploy_keys(PROJECT) == []


def test_a_checkout_linking_out_of_itself_is_not_built(ctx, repository, tmp_path):
    repo = create_local_repo(tmp_path / "links", {"links": {"hello.ipynb": "{}"}})
    os.symlink("/etc/passwd", repo / "passwd")
    subprocess.run(["git", "-C", str(repo), "add", "passwd"], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            "user.name=Ada",
            "-c",
            "user.email=ada@example.com",
            "commit",
            "--quiet",
            "-m",
            "Link out",
        ],
        check=True,
    )
    repository.push(PROJECT, repo)
    run = fetch(ctx, repository, "maria", "links")
    with pytest.raises(UnsafeCheckout):
        steps.clone(ctx, run, RUNNER)


def test_a_launch_waiting_for_another_launchs_build_ends_at_a_stop_with_no_key_added(ctx, repository, tmp_path):
    commit = subprocess.run(
        ["git", "-C", str(tmp_path / "steps"), "rev-parse", "main"], capture_output=True, text=True, check=True
    ).stdout.strip()
    image = builder.image_name(ctx.config.image_prefix, PROJECT, commit)
    other = Holder("lab/steps:main:dev#1", "runner-building-it", ctx.docker_host)
    ctx.runners.beat(other.runner)
    assert ctx.build_claims.take(image, other, 60) is None
    dep = Deployment(PROJECT, "main", "maria")
    queue_run(ctx, dep, repository.store.user("maria").token)
    run = take_run(ctx, dep.id, RUNNER)
    ended: list[BaseException] = []

    def provision() -> None:
        try:
            steps.provision_key(ctx, run, RUNNER)
        except BaseException as e:  # what ends the step, for the test to see
            ended.append(e)

    waiting = threading.Thread(target=provision)
    waiting.start()
    wait_until(lambda: "(on this host): waiting for it..." in log_of(ctx, run), 30, "the launch to wait")
    ctx.lifecycle.stop(dep.id)
    waiting.join(30)
    assert not waiting.is_alive()
    assert [type(e) for e in ended] == [Moved] and ended[0].phase is Phase.STOPPING
    assert repository.deploy_keys(PROJECT) == []
    assert ctx.build_claims.holder(image) == other
