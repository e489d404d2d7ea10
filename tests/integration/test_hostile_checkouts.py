"""Hostile checkouts, deployed on a real runner: committed symbolic links that lead out of the
repository (to the runner's /etc/passwd, to a process environment, through a chain of links or
a linked directory) end the deployment before any build, naming the links, and nothing they
point at reaches the log; links that stay inside still build. The log of a deployment tells
its user nothing about the runner's host: no path of its disk, no host name."""

from __future__ import annotations

import os
import re
import socket
import subprocess

import pytest

from booklab import service
from tests.fixtures.gitlab import GIT_IDENTITY, create_local_repo
from tests.fixtures.pipeline import MAINTAINER, NOTEBOOK, messages, phases, run_to_end

UP = "../" * 12  # more than enough to leave any checkout for the root


def deploy(ctx, gitlab, alice, tmp_path, path: str, files: dict[str, str], links: dict[str, str]) -> list[dict]:
    """The events of a deployment of ``files`` and the symbolic links ``links`` (name -> target)."""
    repo = create_local_repo(tmp_path / path.replace("/", "-"), {"main": files})
    for name, target in links.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, repo / name)
    subprocess.run(["git", "add", "--all"], cwd=repo, check=True)
    subprocess.run(
        ["git", "commit", "--quiet", "-m", "Add links"], cwd=repo, check=True, env={**os.environ, **GIT_IDENTITY}
    )
    gitlab.add_project(path, members={"alice": MAINTAINER})
    gitlab.push(path, repo)
    return run_to_end(ctx, service.request_deployment(ctx, path, "main", alice.token).id)


def assert_refused(events: list[dict], *names: str) -> None:
    assert phases(events)[-1] == "failed", messages(events)
    assert "building" not in phases(events)  # refused before any build
    final = events[-1]["message"]
    for name in names:
        assert name in final, final
    assert "instead of a link" in final, final


def assert_nothing_read(events: list[dict], booklab_env: dict[str, str]) -> None:
    log = messages(events)
    assert "root:x:0:0" not in log
    assert "PATH=" not in log and "HOME=" not in log
    assert booklab_env["BOOKLAB_SECRET_KEY"] not in log


@pytest.fixture
def runner(runners):
    (runner,) = runners(1)
    return runner


def test_a_link_to_the_runners_passwd_is_refused(ctx, runner, gitlab, alice, tmp_path, booklab_env):
    events = deploy(
        ctx, gitlab, alice, tmp_path, "hostile/passwd", {"README.md": "hi\n"}, {"apt.txt": UP + "etc/passwd"}
    )
    assert_refused(events, "apt.txt")
    assert_nothing_read(events, booklab_env)


def test_links_to_process_environments_are_refused(ctx, runner, gitlab, alice, tmp_path, booklab_env):
    events = deploy(
        ctx,
        gitlab,
        alice,
        tmp_path,
        "hostile/environ",
        {"README.md": "hi\n"},
        {"apt.txt": "/proc/self/environ", "notes/runner.env": "/proc/1/environ"},
    )
    assert_refused(events, "apt.txt", "notes/runner.env")
    assert_nothing_read(events, booklab_env)


def test_a_chain_of_links_through_a_linked_directory_is_refused(ctx, runner, gitlab, alice, tmp_path, booklab_env):
    # apt.txt looks inside (data/passwd), but data leads to b, and b out of the checkout to /etc
    events = deploy(
        ctx,
        gitlab,
        alice,
        tmp_path,
        "hostile/chain",
        {"README.md": "hi\n"},
        {"apt.txt": "data/passwd", "data": "b", "b": UP + "etc"},
    )
    assert_refused(events, "apt.txt", "data", "b")
    assert_nothing_read(events, booklab_env)


def test_a_linked_binder_directory_is_refused(ctx, runner, gitlab, alice, tmp_path, booklab_env):
    events = deploy(ctx, gitlab, alice, tmp_path, "hostile/binder", {"README.md": "hi\n"}, {"binder": "/etc"})
    assert_refused(events, "binder")
    assert_nothing_read(events, booklab_env)


def test_links_inside_the_checkout_build_and_the_log_tells_nothing_of_the_host(
    ctx, runners, gitlab, alice, base_image, tmp_path, booklab_env
):
    host = socket.gethostname()
    (runner,) = runners(names=[f"runner-hostile@{host}"])  # named as runner/name's default names it
    events = deploy(
        ctx,
        gitlab,
        alice,
        tmp_path,
        "hostile/inside",
        {
            "Dockerfile": (
                f"FROM {base_image}\nCOPY --chown=1000:1000 . /home/jovyan/\nRUN cat /home/jovyan/docs/copy.ipynb\n"
            ),
            "hello.ipynb": NOTEBOOK,
        },
        {"docs/copy.ipynb": "../hello.ipynb", "latest.ipynb": "docs/copy.ipynb", "docs/later.txt": "not-yet.txt"},
    )
    assert phases(events)[-1] == "ready", messages(events)
    log = messages(events)
    assert "Hello from Booklab" in log  # the build read the notebook through two links
    assert booklab_env["TMPDIR"] not in log and os.path.realpath(booklab_env["TMPDIR"]) not in log
    assert runner.name not in log
    assert not re.search(rf"\b{re.escape(host)}\b", log), log
