"""The first two steps of a run called as plain functions, with no runner process: against the
GitLab stand-in (its API and git over SSH and HTTPS), a real Redis, and the Docker Engine only
for provision_key's look for a cached image."""

import os
import subprocess

import pytest

from booklab.errors import SettingsError, UnsafeCheckout
from booklab.pipeline import steps
from booklab.state.deployment import Deployment
from booklab.state.vault import DEPLOY_KEY, GITLAB_TOKEN
from gitlab_standin.store import DEVELOPER, MAINTAINER
from tests.fixtures.gitlab import create_local_repo
from tests.fixtures.pipeline import messages, queue_run, take_run

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


def test_a_maintainers_clone_uses_a_read_only_key_that_is_gone_after_it(ctx, repository):
    run = fetch(ctx, repository, "maria")
    (key,) = repository.deploy_keys(PROJECT)
    assert key["can_push"] is False and ctx.vault.find(run.deployment, DEPLOY_KEY)
    steps.clone(ctx, run, RUNNER)
    assert (steps.checkout_dir(ctx, run.deployment) / "hello.ipynb").exists()
    assert repository.deploy_keys(PROJECT) == []
    assert ctx.vault.find(run.deployment, DEPLOY_KEY) is None
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
    assert repository.deploy_keys(PROJECT) == []  # the key went with the clone, before the check


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
