"""``python -m booklab.demo [--port P] [--runners N] [--hosts N] [--hub] [--repos DIR]... [--state-dir DIR]``:
start the whole demo, print where to open it, how to log in, and two lines for scripts
(``BOOKLAB_URL=...``, ``BOOKLAB_GITLAB_TOKEN=...``), then run until Ctrl-C or SIGTERM, or
until a part of it stops; either way stop everything it started. While it runs it tells
which host and runner serve each notebook that turns ready.

Progress goes to stderr, the summary to stdout; ``<state dir>/demo.json`` holds the same
facts (and the processes' ids) for scripts.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from types import FrameType

import redis

from booklab.demo.hub import WithHub
from booklab.demo.processes import Processes
from booklab.demo.served import ServedBy
from booklab.demo.several_hosts import SeveralHosts
from booklab.demo.stack import Demo, Options, Starter, start
from booklab.demo.terminal import printable
from booklab.errors import DemoError

log = logging.getLogger("booklab.demo")

WATCH_INTERVAL = 1.0
#: host names run from booklab-a to booklab-z
MAX_HOSTS = 26


def _options(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m booklab.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--port",
        type=int,
        default=Options.port,
        help="Traefik's port, where the web tier, Flower and notebooks are served (0: a free one)",
    )
    parser.add_argument("--runners", type=int, default=Options.runners, help="how many runners")
    parser.add_argument(
        "--hosts",
        type=int,
        default=Options.hosts,
        help="Docker hosts of their own on this machine (network namespaces; as root), the runners shared out",
    )
    parser.add_argument(
        "--hub",
        action="store_true",
        help="a JupyterHub beside Booklab, where notebooks open as their users' servers (launch/target: jupyterhub)",
    )
    parser.add_argument(
        "--repos",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="serve every git repository in DIR as the project demo/<its name> (repeatable)",
    )
    parser.add_argument(
        "--state-dir", type=Path, help="a new or empty directory for state and logs (default: a new one under /tmp)"
    )
    args = parser.parse_args(argv)
    if args.runners < 1:
        parser.error("--runners must be at least 1")
    if not 1 <= args.hosts <= MAX_HOSTS:
        parser.error(f"--hosts must be between 1 and {MAX_HOSTS}")
    if args.hub and args.hosts > 1:
        parser.error("--hub goes with one host: the hub starts its servers on this machine's Docker Engine")
    for directory in args.repos:
        if not directory.is_dir():
            parser.error(f"--repos {directory}: no such directory")
    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="booklab-demo-", dir="/tmp"))
    return Options(
        state_dir=state_dir,
        port=args.port,
        runners=args.runners,
        repos=tuple(d.resolve() for d in args.repos),
        hosts=args.hosts,
        hub=args.hub,
    )


def _summary(demo: Demo) -> str:
    runners = ", ".join(f"{name.split('@')[0]} on {host}" for name, host in demo.runner_hosts.items())
    projects = "\n".join(
        f"                {printable(path)}  (branches: {', '.join(map(printable, branches))})"
        for path, branches in demo.projects.items()
    )
    notebooks = (
        f"JupyterHub    {demo.hub_url}/  (notebooks open there, as {demo.username}'s servers)"
        if demo.hub_url
        else f"Notebooks at  http://<slug>.localhost:{demo.traefik_port}/"
    )
    return f"""
Booklab's demo is running (started in {demo.started_in:g} s).

  Open          {demo.url}/
  Log in as     {demo.username}  password {demo.password}  (on the GitLab stand-in's sign-in page)
  Projects
{projects}
  {notebooks}
  Operators     {demo.url}/admin  (runners, queue, everyone's notebooks)
  Flower        {demo.flower_url}  user {demo.flower_user}  password {demo.flower_password}
  Traefik       {demo.traefik_dashboard}
  Health        {demo.url}/health
  Metrics       curl -H 'Authorization: Bearer {demo.metrics_token}' {demo.url}/metrics
  Runners       {runners}
  Logs          {demo.logs}/

Press Ctrl-C to stop everything. For the CLI (booklab deploy/status/stop):

BOOKLAB_URL={demo.url}
BOOKLAB_GITLAB_TOKEN={demo.token}
"""


def _starter_type(options: Options) -> type[Starter]:
    if options.hub:
        return WithHub
    return SeveralHosts if options.hosts > 1 else Starter


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _watch(processes: Processes, served: ServedBy) -> None:
    """Tell which host serves each new notebook until a process of the demo stops; raise that as
    :class:`DemoError`."""
    while (child := processes.exited()) is None:
        for line in served.news():
            print(line, flush=True)
        time.sleep(WATCH_INTERVAL)
    raise DemoError(
        f"{child.name} stopped (status {child.process.returncode}); the end of {child.log}:\n{child.tail()}"
    )


def main(argv: list[str] | None = None) -> int:
    options = _options(argv)
    logging.basicConfig(level=logging.INFO, format="demo: %(message)s", stream=sys.stderr)
    for signum in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a shell's `&` starts it ignored
        signal.signal(signum, _interrupted)
    status = 0
    exits = ExitStack()
    try:
        demo, starter = start(options, exits, _starter_type(options))
        print(_summary(demo), flush=True)
        client = redis.Redis.from_url(demo.redis_url, decode_responses=True)
        exits.callback(client.close)
        _watch(starter.processes, ServedBy(client))
    except KeyboardInterrupt:
        log.info("stopping")
    except DemoError as e:
        log.error("%s", e)
        status = 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):  # stopping must not be cut short
            signal.signal(signum, signal.SIG_IGN)
        exits.close()
    log.info("stopped; logs kept in %s", options.state_dir / "logs")
    return status


if __name__ == "__main__":
    sys.exit(main())
