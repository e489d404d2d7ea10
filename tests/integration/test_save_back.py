"""Save back: a notebook's changes, made through Jupyter's contents API in the real container,
reach a new branch of the project on the GitLab stand-in over real git, pushed by a real
runner; nothing is pushed when nothing changed, and a refused push loses nothing: an
automatic save that GitLab refuses for good is given up, its changes kept for download."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
from datetime import datetime, timezone
from urllib.parse import quote

import pytest
import requests

from booklab import service
from booklab.errors import BooklabError
from booklab.phases import Phase
from booklab.saveback import kept as saveback_kept
from booklab.saveback import push
from booklab.state import schema
from gitlab_standin.repos import git_env
from tests.fixtures.pipeline import MAINTAINER, events_of, messages, phases, run_to_end
from tests.fixtures.services import wait_until

pytestmark = pytest.mark.beside  # make test runs it in its second session (tests/lanes.py)

REPORTER, DEVELOPER = 20, 30
EDITED = {
    "cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# Edited in Booklab"]}],
    "metadata": {},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def jupyter(ready: dict, method: str, path: str, body: dict | None = None) -> dict:
    response = requests.request(
        method,
        ready["url"] + "api/contents/" + path,
        json=body,
        timeout=10,
        headers={"Authorization": f"token {ready['token']}"},
    )
    assert response.ok, response.text
    return response.json() if response.content else {}


def write_text(ready: dict, path: str, text: str) -> None:
    jupyter(ready, "PUT", path, {"type": "file", "format": "text", "content": text})


def stand_in_git(gitlab, project: str, *args: str) -> str:
    done = subprocess.run(
        ["git", "--git-dir", str(gitlab.repos.path(project)), *args],
        env=git_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def branches(gitlab, project: str) -> list[str]:
    return stand_in_git(gitlab, project, "for-each-ref", "--format=%(refname:lstrip=2)", "refs/heads").split()


def deployed(ctx, runners, project, alice) -> tuple[str, dict]:
    runners(1)
    request = service.request_deployment(ctx, project, "main", alice.token, save_back=True)
    events = run_to_end(ctx, request.id)
    assert phases(events)[-1] == "ready", messages(events)
    return request.id, events[-1]


def stopped(ctx, deployment_id: str, **options) -> dict:
    service.stop(ctx, deployment_id, **options)
    wait_until(lambda: ctx.deployments.status(deployment_id) is Phase.STOPPED, 60, "the notebook to stop")
    return events_of(ctx, deployment_id, 0)[-1].data


def save_finished(ctx, deployment_id: str) -> dict:
    wait_until(
        lambda: ctx.deployments.record(deployment_id).get("save_state") not in (None, "saving"), 60, "the save to end"
    )
    return ctx.deployments.record(deployment_id)


def test_an_edited_notebook_is_pushed_to_a_new_branch_on_stop(
    ctx, runners, gitlab, alice, project, docker_engine, tmp_path
):
    deployment_id, ready = deployed(ctx, runners, project, alice)
    jupyter(ready, "PUT", "hello.ipynb", {"type": "notebook", "content": EDITED})
    jupyter(ready, "POST", "hello.ipynb/checkpoints")  # Jupyter's own copy: never saved
    jupyter(ready, "PUT", "results", {"type": "directory"})
    write_text(ready, "results/summary.txt", "42\n")
    container = ctx.deployments.record(deployment_id)["container"]
    # the notebook's code rewrites the repository's git configuration to run a command
    # wherever git next runs in that repository: never on the runner
    marker = tmp_path / "ran-on-the-runner"
    hostile = f"[core]\n\tfsmonitor = touch {marker}\n[alias]\n\tcommit-tree = !touch {marker}\n"
    exit_code, output = docker_engine.containers.get(container).exec_run(
        ["sh", "-c", f"test -d .git && printf '{hostile}' >> .git/config"]
    )
    assert exit_code == 0, output
    before = datetime.now(timezone.utc)

    final = stopped(ctx, deployment_id)

    branch = f"booklab/alice/{before:%Y%m%d-%H%M}"
    assert final["phase"] == "stopped"
    assert branch in final["message"] and "merge_requests/new" in final["message"], final["message"]
    assert branch in branches(gitlab, project)
    saved = json.loads(stand_in_git(gitlab, project, "show", f"{branch}:hello.ipynb"))
    assert saved["cells"][0]["source"] == ["# Edited in Booklab"]
    assert stand_in_git(gitlab, project, "show", f"{branch}:results/summary.txt") == "42\n"
    files = stand_in_git(gitlab, project, "ls-tree", "-r", "--name-only", branch).split()
    assert not [f for f in files if ".ipynb_checkpoints" in f or f.startswith(".")], files
    author = stand_in_git(gitlab, project, "log", "-1", "--format=%an <%ae>", branch).strip()
    assert author == f"{alice.name} <{alice.email}>"
    parent = stand_in_git(gitlab, project, "rev-parse", f"{branch}~1").strip()
    assert parent == stand_in_git(gitlab, project, "rev-parse", "main").strip()
    # pushed with a deploy key that could push, removed once the push was done
    posts = [r for r in gitlab.request_log() if r.method == "POST" and "/deploy_keys" in r.path]
    assert len(posts) == 2 and gitlab.deploy_keys(project) == []
    assert not docker_engine.containers.list(all=True, filters={"id": container})
    assert ctx.redis.keys("secret:*") == []
    assert not marker.exists()
    # the save is over: nothing waits on it (a relaunch could otherwise never stop)
    wait_until(lambda: ctx.redis.get(schema.saving(deployment_id)) is None, 10, "the save's lock to go")
    assert ctx.deployments.record(deployment_id)["save_state"] == "saved"


def test_nothing_is_pushed_when_nothing_changed(ctx, runners, gitlab, alice, project):
    deployment_id, ready = deployed(ctx, runners, project, alice)
    jupyter(ready, "GET", "hello.ipynb")  # opened, not changed
    before = branches(gitlab, project)

    final = stopped(ctx, deployment_id)

    assert final["phase"] == "stopped" and "nothing was pushed" in final["message"], final["message"]
    assert branches(gitlab, project) == before
    posts = [r for r in gitlab.request_log() if r.method == "POST" and "/deploy_keys" in r.path]
    assert len(posts) == 1  # the clone's only


def test_a_refused_push_keeps_the_notebook_until_a_save_works(ctx, runners, gitlab, alice, project, docker_engine):
    deployment_id, ready = deployed(ctx, runners, project, alice)
    write_text(ready, "notes.md", "kept safe\n")
    gitlab.set_member(project, "alice", REPORTER)  # may no longer push, nor add deploy keys
    before = branches(gitlab, project)

    service.stop(ctx, deployment_id)
    record = save_finished(ctx, deployment_id)

    assert record["save_state"] == "failed", record
    assert "could not be saved" in record["save_message"] and "push" in record["save_message"], record
    assert ctx.lifecycle.current(deployment_id)[0::2] == (Phase.READY, "")  # the Stop is called off
    assert docker_engine.containers.get(record["container"]).status == "running"
    assert branches(gitlab, project) == before
    assert jupyter(ready, "GET", "notes.md")["content"] == "kept safe\n"

    gitlab.set_member(project, "alice", MAINTAINER)
    assert service.save_now(ctx, deployment_id, alice.token)
    record = save_finished(ctx, deployment_id)
    assert record["save_state"] == "saved", record
    assert stand_in_git(gitlab, project, "show", f"{record['saved_branch']}:notes.md") == "kept safe\n"
    assert ctx.deployments.status(deployment_id) is Phase.READY  # Save now keeps it running

    # a file saved, then deleted: the next save deletes it on the branch too
    jupyter(ready, "DELETE", "notes.md")
    assert service.save_now(ctx, deployment_id, alice.token)
    record = save_finished(ctx, deployment_id)
    assert record["save_state"] == "saved", record
    files = stand_in_git(gitlab, project, "ls-tree", "--name-only", record["saved_branch"]).split()
    assert "notes.md" not in files and "hello.ipynb" in files
    assert stand_in_git(gitlab, project, "show", f"{record['saved_branch']}~1:notes.md") == "kept safe\n"

    write_text(ready, "notes.md", "second thoughts\n")
    final = stopped(ctx, deployment_id, discard=True)
    assert "saved" not in final["message"].lower(), final["message"]
    assert "notes.md" not in stand_in_git(gitlab, project, "ls-tree", "--name-only", record["saved_branch"])
    assert ctx.redis.get(schema.saving(deployment_id)) is None


def test_an_idle_notebook_is_saved_before_it_is_culled(ctx, runners, gitlab, alice, project):
    runners(1, BOOKLAB_NOTEBOOK_IDLE_TIMEOUT="4")
    request = service.request_deployment(ctx, project, "main", alice.token, save_back=True)
    ready = run_to_end(ctx, request.id)[-1]
    write_text(ready, "draft.md", "written just before a break\n")

    wait_until(lambda: ctx.deployments.status(request.id) is Phase.STOPPED, 60, "the idle notebook to be culled")

    final = events_of(ctx, request.id, 0)[-1].data
    assert "idle" in final["message"] and "Saved your changes to branch" in final["message"], final["message"]
    branch = ctx.deployments.record(request.id)["saved_branch"]
    assert stand_in_git(gitlab, project, "show", f"{branch}:draft.md") == "written just before a break\n"


def test_a_runner_shut_down_saves_the_notebook_first(ctx, runners, gitlab, alice, project):
    (runner,) = runners(1)
    deployment_id = service.request_deployment(ctx, project, "main", alice.token, save_back=True).id
    ready = run_to_end(ctx, deployment_id)[-1]
    write_text(ready, "draft.md", "the runner went away\n")

    runner.proc.send_signal(signal.SIGTERM)
    runner.proc.wait(60)

    assert ctx.deployments.status(deployment_id) is Phase.STOPPED
    branch = ctx.deployments.record(deployment_id)["saved_branch"]
    assert stand_in_git(gitlab, project, "show", f"{branch}:draft.md") == "the runner went away\n"


def test_a_developer_pushes_with_their_own_token(ctx, runners, gitlab, project):
    dev = gitlab.add_user("dev")
    gitlab.set_member(project, "dev", DEVELOPER)
    runners(1)
    request = service.request_deployment(ctx, project, "main", dev.token, save_back=True)
    events = run_to_end(ctx, request.id)
    assert phases(events)[-1] == "ready", messages(events)
    write_text(events[-1], "mine.md", "pushed over HTTPS\n")

    final = stopped(ctx, request.id)

    branch = ctx.deployments.record(request.id)["saved_branch"]
    assert branch.startswith("booklab/dev/") and branch in final["message"]
    assert stand_in_git(gitlab, project, "show", f"{branch}:mine.md") == "pushed over HTTPS\n"
    assert [r.status for r in gitlab.request_log() if r.method == "POST" and "/deploy_keys" in r.path] == [403, 403]


def test_a_lost_runners_notebook_is_saved_by_another_runner(ctx, runners, gitlab, alice, project):
    started = runners(2)
    deployment_id = service.request_deployment(ctx, project, "main", alice.token, save_back=True).id
    ready = run_to_end(ctx, deployment_id)[-1]
    write_text(ready, "draft.md", "the runner was lost\n")
    lost = next(r for r in started if r.name == ctx.deployments.record(deployment_id)["runner"])

    os.killpg(lost.proc.pid, signal.SIGKILL)  # no shutdown: its heartbeat simply stops
    lost.proc.wait()

    wait_until(lambda: ctx.deployments.status(deployment_id) is Phase.STOPPED, 120, "the lost notebook to end")
    final = events_of(ctx, deployment_id, 0)[-1].data
    assert "was lost" in final["message"] and "Saved your changes to branch" in final["message"], final["message"]
    branch = ctx.deployments.record(deployment_id)["saved_branch"]
    assert stand_in_git(gitlab, project, "show", f"{branch}:draft.md") == "the runner was lost\n"
    wait_until(lambda: lost.name not in ctx.redis.smembers(schema.RUNNERS), 10, "the lost runner to be forgotten")


def test_an_archived_projects_automatic_save_is_given_up_and_its_changes_kept_for_download(
    ctx, runners, gitlab, alice, project, web_server, tmp_path
):
    (runner,) = runners(1, BOOKLAB_NOTEBOOK_IDLE_TIMEOUT="4")
    deployment_id = service.request_deployment(ctx, project, "main", alice.token, save_back=True).id
    ready = run_to_end(ctx, deployment_id)[-1]
    jupyter(ready, "PUT", "results", {"type": "directory"})
    write_text(ready, "results/draft.md", "written before the project was archived\n")
    jupyter(ready, "PUT", "hello.ipynb", {"type": "notebook", "content": EDITED})
    gitlab.archive(project)  # read-only from now on: GitLab refuses every push, for good
    before = branches(gitlab, project)

    wait_until(lambda: ctx.deployments.status(deployment_id) is Phase.STOPPED, 60, "the idle notebook to end")

    final = events_of(ctx, deployment_id, 0)[-1].data["message"]
    assert "idle" in final and "the project is archived" in final, final
    assert "kept for 7 days (2 files): download them from your Booklab home page" in final, final
    assert ctx.deployments.record(deployment_id)["save_state"] == "kept"
    assert branches(gitlab, project) == before
    assert not ctx.runners.held(runner.name).get("deployment")  # the runner is back in the pool

    # the owner downloads the changes: API, then CLI
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {alice.token}"
    (kept,) = api.get(f"{web_server}/api/deployments/{quote(deployment_id, safe='')}", timeout=10).json()["kept"]
    assert kept["run"] == 1 and kept["files"] == 2 and "the project is archived" in kept["reason"], kept
    download = api.get(kept["download"], timeout=10)
    assert download.headers["Content-Type"] == "application/gzip"
    assert f'filename="{kept["filename"]}"' in download.headers["Content-Disposition"]
    with tarfile.open(fileobj=io.BytesIO(download.content)) as archive:
        top = kept["filename"].removesuffix(".tar.gz")
        names = sorted(archive.getnames())
        assert names == [f"{top}/BOOKLAB.txt", f"{top}/hello.ipynb", f"{top}/results/draft.md"], names
        draft = archive.extractfile(f"{top}/results/draft.md").read()
        assert draft == b"written before the project was archived\n"
        notebook = json.loads(archive.extractfile(f"{top}/hello.ipynb").read())
        assert notebook["cells"][0]["source"] == ["# Edited in Booklab"]
        assert "the project is archived" in archive.extractfile(f"{top}/BOOKLAB.txt").read().decode()
    bob = gitlab.add_user("bob")
    as_bob = requests.get(kept["download"], headers={"Authorization": f"Bearer {bob.token}"}, timeout=10)
    assert as_bob.status_code == 404
    assert requests.get(kept["download"], timeout=10).status_code == 401

    target = tmp_path / "changes.tar.gz"
    cli = subprocess.run(
        [sys.executable, "-m", "booklab.cli", "save", deployment_id, "--download", "--output", str(target)],
        env={**os.environ, "BOOKLAB_URL": web_server, "BOOKLAB_GITLAB_TOKEN": alice.token},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli.returncode == 0 and "2 changed files of run 1" in cli.stdout, cli.stdout + cli.stderr
    assert target.read_bytes() == download.content

    # a relaunch is served by the same runner, and loses none of the changes kept
    relaunched = service.request_deployment(ctx, project, "main", alice.token)
    assert phases(run_to_end(ctx, relaunched.run))[-1] == "ready"
    assert [k.run for k in saveback_kept.listing(ctx, deployment_id)] == [1]


def test_each_save_gitlab_refuses_for_good_is_told_apart_from_one_it_did_not_answer(
    ctx, runners, gitlab, alice, project
):
    """The cases an automatic save gives up at once (``protocol.gives_up``), each as the real
    container, real git and the stand-in answer them; the save is run here, as a runner runs it."""
    deployment_id, ready = deployed(ctx, runners, project, alice)
    write_text(ready, "draft.md", "to be saved\n")

    def refusal() -> BooklabError:
        with pytest.raises(BooklabError) as raised:
            push.save(ctx, deployment_id)
        if gitlab.store.project(project) is not None:  # the key that could push is gone again
            assert not [key for key in gitlab.deploy_keys(project) if key["can_push"]]
        return raised.value

    gitlab.fail_next(r"/api/v4/user$", status=503)
    assert refusal().transient  # GitLab did not answer: tried again later

    service.set_save_back(ctx, deployment_id, True, gitlab.issue_oauth_token(alice, scope="read_api"))
    refused = refusal()
    assert not refused.transient and "lacks the scope api" in str(refused)
    service.set_save_back(ctx, deployment_id, True, alice.token)

    gitlab.protect_branches(project, "booklab/*")
    refused = refusal()
    assert not refused.transient and "not allowed to create protected branches" in str(refused)

    gitlab.set_member(project, "alice", REPORTER)
    refused = refusal()
    assert not refused.transient and "your role cannot push" in str(refused)
    gitlab.set_member(project, "alice", MAINTAINER)

    gitlab.archive(project)
    refused = refusal()
    assert not refused.transient and "the project is archived" in str(refused)

    gitlab.remove_project(project)
    refused = refusal()
    assert not refused.transient and "was not found on GitLab" in str(refused)


def test_the_changes_kept_hold_plain_files_only_within_their_bounds(
    ctx, runners, gitlab, alice, project, docker_engine, monkeypatch
):
    deployment_id, _ = deployed(ctx, runners, project, alice)
    container = docker_engine.containers.get(ctx.deployments.record(deployment_id)["container"])
    # what the notebook's code (a hostile repository's) leaves in its directory
    script = (
        "printf a > one.txt; printf bb > two.txt; printf ccc > three.txt; printf dddd > four.txt; "
        "printf x > \"$(printf 'forged\\nline.txt')\"; ln -s /etc/passwd link.txt; head -c 5000 /dev/zero > big.bin"
    )
    exit_code, output = container.exec_run(["sh", "-c", script])
    assert exit_code == 0, output
    monkeypatch.setattr(saveback_kept, "MAX_FILES", 3)

    archive, files, left_out = saveback_kept.read(container, ctx.lifecycle.current(deployment_id)[1], "Why.", 4000)

    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = {m.name.split("/", 1)[1]: m for m in tar.getmembers()}
        assert sorted(members) == ["BOOKLAB.txt", "four.txt", "one.txt", "three.txt"]
        assert all(m.isfile() and m.mode in (0o644, 0o755) for m in members.values())
        assert tar.extractfile(members["four.txt"]).read() == b"dddd"
        readme = tar.extractfile(members["BOOKLAB.txt"]).read().decode()
    assert (files, left_out) == (3, 4)
    assert "big.bin (beyond save/keep_max_size)" in readme
    assert "forged\\nline.txt (its name holds control characters)" in readme
    assert "link.txt (not a regular file)" in readme
    assert "two.txt (more than 3 files changed)" in readme
