"""What the web tier's processes use: the resident memory of gunicorn's master and
workers (``VmRSS`` and ``Pss`` from /proc), and an event stream of a deployment that the
benchmarks write to themselves (:func:`viewer_stream`)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from bench.stack import OWNER, PROJECT, Stack
from bench.viewers import OPENED, Viewers
from booklab.phases import Phase
from booklab.state.deployment import Deployment
from booklab.state.lifecycle import Run
from booklab.web.projects import stream_path

#: the runner the benchmark plays when it writes a run's events itself
BENCH_RUNNER = "bench-runner"


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _kib(pid: int, file: str, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def processes(stack: Stack) -> list[int]:
    """gunicorn's master (the ``booklab web`` process) and its workers."""
    master = stack.web.process.pid
    return [master, *_children(master)]


def rss_mb(stack: Stack) -> float:
    """The summed resident set of the web tier's processes, in MB (shared pages counted in each)."""
    return sum(_kib(pid, "status", "VmRSS") for pid in processes(stack)) / 1024


def pss_mb(stack: Stack) -> float:
    """The proportional set size of the web tier's processes, in MB (shared pages split)."""
    return sum(_kib(pid, "smaps_rollup", "Pss") for pid in processes(stack)) / 1024


def viewer_stream(stack: Stack, ref: str) -> tuple[Deployment, Viewers]:
    """A run of the owner's deployment that the benchmark claims as its runner, with one
    more event (so each new viewer receives :data:`bench.viewers.OPENED` first), and viewers
    of its event stream resuming after the claim's event (so that opening one never starts a
    deployment)."""
    dep = Deployment(PROJECT, ref, OWNER)
    run = hold_run(stack, dep)
    stack.ctx.lifecycle.say(run, Phase.FETCHING, OPENED.decode())
    url = urlsplit(stack.web_url)
    viewers = Viewers(
        url.hostname or "127.0.0.1",
        url.port or 80,
        stream_path(dep.project, dep.ref),
        {"PRIVATE-TOKEN": stack.owner.token, "Last-Event-ID": f"{run.number}.1"},
    )
    return dep, viewers


def hold_run(stack: Stack, dep: Deployment) -> Run:
    """A new run of ``dep``, taken by the benchmark as if it were its runner (live, and
    left alone by the stack's runners)."""
    lifecycle = stack.ctx.lifecycle
    _, run = lifecycle.request(dep, stack.ctx.slug(dep.id), {}, stack.ctx.vault.seal(b"unused"), 60)
    assert lifecycle.claim(run, BENCH_RUNNER), f"{run} was not queued"
    return run


def say(stack: Stack, dep: Deployment, phase: Phase, message: str) -> None:
    """An event of the run the benchmark holds, as its runner writes one."""
    stack.ctx.lifecycle.say(stack.ctx.lifecycle.current(dep.id)[1], phase, message)


def end_stream(stack: Stack, dep: Deployment) -> None:
    """The final event of the run the benchmark holds, which ends every open stream of ``dep``."""
    run = stack.ctx.lifecycle.current(dep.id)[1]
    claim = stack.ctx.lifecycle.claim_end(run, BENCH_RUNNER)
    stack.ctx.lifecycle.finish(run, claim.token, Phase.STOPPED, "The benchmark is over.")
    stack.ctx.runners.release(BENCH_RUNNER, dep.id)
