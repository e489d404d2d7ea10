"""A runner killed with SIGKILL mid-build: its deployment does not stay stuck in a phase."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from booklab import schema, service
from booklab.phases import Phase
from tests.fixtures.gitlab import create_local_repo
from tests.fixtures.pipeline import MAINTAINER, notebook_repo_files, run_to_end
from tests.fixtures.services import wait_until


def test_a_runner_killed_during_the_build_is_noticed_and_its_deployment_fails(
        ctx, runners, gitlab, alice, base_image, tmp_path):
    repo = create_local_repo(tmp_path / "slow", {"main": notebook_repo_files(base_image, "RUN sleep 60\n")})
    gitlab.add_project("demo/slow-build", members={"alice": MAINTAINER})
    gitlab.push("demo/slow-build", repo)
    first, second = runners(2)
    request = service.request_deployment(ctx, "demo/slow-build", "main", alice.token)
    wait_until(lambda: ctx.deployments.status(request.id) is Phase.BUILDING, 60, "the build")
    victim = next(r for r in (first, second) if ctx.deployments.record(request.id)["runner"] == r.name)
    survivor = second if victim is first else first

    os.killpg(victim.proc.pid, signal.SIGKILL)
    events = run_to_end(ctx, request.id, timeout=60)  # heartbeat expiry (30 s) + one check

    assert events[-1]["phase"] == "failed"
    assert f"runner {victim.name} was lost" in events[-1]["message"] and "retry" in events[-1]["message"]
    assert victim.name not in ctx.redis.smembers(schema.RUNNERS)
    assert not ctx.runners.held(victim.name)
    assert survivor.name in ctx.runners.alive()
    image = ctx.deployments.record(request.id)["image"]
    wait_until(lambda: not _processes_naming(image), 10, "the lost runner's build to end with it")


def _processes_naming(text: str) -> list[int]:
    """Ids of the processes whose command line holds ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:  # it ended meanwhile
            pass
    return found
