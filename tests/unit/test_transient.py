"""What counts as transient (tried again) and how long Booklab waits: real git and a real
Docker client pointed at addresses where nothing answers."""

from __future__ import annotations

import gc

import docker
import pytest

from booklab.errors import CloneError, CloneUnavailable, DockerUnavailable
from booklab.pipeline import git
from booklab.pipeline.transient import as_booklab_error, backoff
from tests.fixtures.services import free_port


def test_the_wait_doubles_with_jitter_and_is_capped():
    for attempt, ceiling in enumerate([2, 4, 8, 16, 30, 30]):
        waits = [backoff(attempt, first=2, cap=30) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(set(waits)) > 100  # jittered: runners that failed together spread out


@pytest.mark.parametrize("scheme", ["ssh", "http"])
def test_git_that_cannot_reach_its_server_is_transient(tmp_path, scheme):
    url = f"{scheme}://git@127.0.0.1:{free_port()}/team/project.git"
    credentials = git.SshCredentials(b"", "") if scheme == "ssh" else git.HttpsCredentials("t")
    with pytest.raises(CloneUnavailable, match="git could not reach GitLab"):
        list(git.clone(url, "main", tmp_path / "checkout", credentials))


def test_a_refused_clone_is_not_transient(tmp_path):
    with pytest.raises(CloneError) as caught:
        list(git.clone(str(tmp_path / "no-such-repository"), "main", tmp_path / "checkout", git.HttpsCredentials("t")))
    assert not caught.value.transient


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # docker-py's unclosed socket
def test_a_docker_engine_that_does_not_answer_is_transient(tmp_path):
    with pytest.raises(docker.errors.DockerException) as caught:
        docker.DockerClient(base_url=f"unix://{tmp_path}/docker.sock", version=None)
    error = as_booklab_error(caught.value)
    del caught
    gc.collect()
    assert isinstance(error, DockerUnavailable) and error.transient


def test_a_bug_is_not_made_a_booklab_error():
    assert as_booklab_error(KeyError("x")) is None
