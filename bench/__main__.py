"""``python -m bench [FIGURE ...]``: start the local stack, measure the figures (all of
them by default) and write BENCHMARKS.md. A figure that cannot be measured is reported
as such and the others still run; the exit status is 0 unless the stack does not start."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, fields
from pathlib import Path

from bench import (
    api,
    dispatch,
    first_deploy,
    forward_auth,
    log_latency,
    machine,
    redis_memory,
    relaunch,
    report,
    route,
    several_hosts,
    stack,
    warm,
)
from bench import streams as open_streams
from bench.settings import Settings
from bench.stats import Figure

log = logging.getLogger("bench")

#: figure -> its benchmark, in the order a full run measures them
FIGURES: dict[str, Callable[[stack.Stack, Settings], list[Figure]]] = {
    "relaunch": relaunch.run,
    "warm": warm.run,
    "first-deploy": first_deploy.run,
    "dispatch": dispatch.run,
    "route": route.run,
    "log-latency": log_latency.run,
    "streams": open_streams.run,
    "api": api.run,
    "forward-auth": forward_auth.run,
    "redis-memory": redis_memory.run,
    "placement": several_hosts.run,
}
TITLES = {"route": "route (docker labels and Redis KV)", "warm": "warm launches (one, then bursts)"}


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    counts = ", ".join(f"BENCH_{f.name.upper()} (default {f.default})" for f in fields(Settings))
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.split("\n\n")[0], epilog=f"Counts from the environment: {counts}."
    )
    parser.add_argument(
        "figures",
        nargs="*",
        choices=[[], *FIGURES],
        metavar="FIGURE",
        help=f"figures to measure (default: all): {', '.join(FIGURES)}",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help="rounds of relaunch and route (BENCH_ROUNDS, default 10); scales the build, dispatch and memory counts",
    )
    parser.add_argument("--output", type=Path, default=Path("BENCHMARKS.md"), help="report (default BENCHMARKS.md)")
    parser.add_argument("--keep", action="store_true", help="keep the run's state directory and logs")
    return parser.parse_args(argv)


def _stop_on_sigterm() -> None:
    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds the stack's ExitStack

    signal.signal(signal.SIGTERM, stop)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("urllib3", "docker", "gitlab_standin", "werkzeug", "booklab"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _stop_on_sigterm()
    settings = Settings.from_env(rounds=args.rounds)
    chosen = [name for name in FIGURES if not args.figures or name in args.figures]
    log.info("figures: %s; %s", ", ".join(chosen), asdict(settings))
    started = time.monotonic()
    figures: list[Figure] = []
    with ExitStack() as exits:
        local = stack.start(exits, runners=settings.runners, keep_state=args.keep)
        log.info("stack up in %.1f s", time.monotonic() - started)
        description = machine.describe(local.engine_version)
        for name in chosen:
            begun = time.monotonic()
            try:
                figures += FIGURES[name](local, settings)
            except Exception as e:  # a benchmark never stops the others
                log.exception("%s could not be measured", name)
                failed = Figure(name, TITLES.get(name, name), "", [])
                failed.notes.append(f"Not measured in the last run: {type(e).__name__}: {e}")
                figures.append(failed)
            log.info("%s took %.0f s", name, time.monotonic() - begun)
    elapsed = time.monotonic() - started
    settings_text = ", ".join(f"{k}={v}" for k, v in asdict(settings).items())
    report.write(args.output, figures, list(FIGURES), description, settings_text, elapsed)
    log.info("wrote %s after %.1f minutes", args.output, elapsed / 60)
    for figure in figures:
        log.info("%s", report.row(figure, "").strip("| "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
