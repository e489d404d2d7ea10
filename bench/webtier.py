"""What the web tier's processes use: the resident memory of gunicorn's master and
workers (``VmRSS`` and ``Pss`` from /proc), and an event stream of a deployment that the
benchmarks write to themselves (:func:`viewer_stream`)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from bench.stack import OWNER, PROJECT, Stack
from bench.viewers import OPENED, Viewers
from booklab.deployment import Deployment
from booklab.phases import Phase
from booklab.web.projects import stream_path


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
    """A deployment of the owner that no runner serves, with one event (so it is active
    and each new viewer receives :data:`bench.viewers.OPENED` first), and viewers of its
    event stream resuming after id 0 (so that opening one never starts a deployment)."""
    dep = Deployment(PROJECT, ref, OWNER)
    stack.ctx.events.clear(dep.id)
    stack.ctx.events.emit(dep.id, Phase.FETCHING, OPENED.decode())
    url = urlsplit(stack.web_url)
    viewers = Viewers(url.hostname or "127.0.0.1", url.port or 80, stream_path(dep.project, dep.ref),
                      {"PRIVATE-TOKEN": stack.owner.token, "Last-Event-ID": "0"})
    return dep, viewers


def end_stream(stack: Stack, dep: Deployment) -> None:
    """The final event, which ends every open stream of ``dep``."""
    stack.ctx.events.emit(dep.id, Phase.STOPPED, "The benchmark is over.")
