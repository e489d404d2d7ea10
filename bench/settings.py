"""How much each benchmark does: repetition counts and loads, from the environment
(``BENCH_ROUNDS=5 make bench``) or the command line, with defaults that keep a full run
within a few minutes on a 2-core machine."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Settings:
    #: rounds of the relaunch and route figures (each against its floor, alternated)
    rounds: int = 10
    #: rounds of the first-deploy figure (each builds two new commits: Booklab's and the floor's); as many as
    #: ``rounds``: with 5, the ratio of two medians moved by 0.1 from one run to the next
    build_rounds: int = 10
    #: requests of the dispatch figure
    dispatch_rounds: int = 30
    #: finished deployments the Redis memory figure adds
    memory_deployments: int = 10
    #: concurrent event-stream viewers of the log-latency figure
    viewers: int = 200
    #: log lines written (and timed) in the log-latency figure, and how many per second
    log_lines: int = 100
    log_rate: float = 20.0
    #: open event streams of the streams figure
    streams: int = 500
    #: concurrent keep-alive clients and seconds of load of the API figure
    api_clients: int = 16
    api_seconds: float = 10.0
    #: live deployments Redis holds while forward-auth is measured, and its concurrent clients
    auth_deployments: int = 100_000
    auth_clients: int = 4
    #: runner processes (one serves one notebook; the figures need one)
    runners: int = 1
    #: the figures of several hosts: runners over the two hosts, projects, and launches of them at once
    scale_runners: int = 16
    scale_projects: int = 8
    scale_launches: int = 32
    #: the warm figures: runners holding a spare each, and bursts of as many launches at once
    warm_runners: int = 8
    warm_bursts: int = 3

    @classmethod
    def from_env(cls, environ: os._Environ | dict[str, str] | None = None, **overrides: int | None) -> Settings:
        """``BENCH_<NAME>`` for each field (``BENCH_ROUNDS``, ``BENCH_VIEWERS``...); a
        ``BENCH_ROUNDS`` alone also sets the build, dispatch and memory counts."""
        environ = os.environ if environ is None else environ
        values: dict[str, float | int] = {}
        rounds = overrides.get("rounds") or environ.get("BENCH_ROUNDS")
        if rounds:
            rounds = int(rounds)
            values.update(rounds=rounds, build_rounds=rounds, dispatch_rounds=3 * rounds, memory_deployments=rounds)
        for f in fields(cls):
            raw = environ.get(f"BENCH_{f.name.upper()}")
            if raw and f.name != "rounds":
                values[f.name] = type(f.default)(raw)
            if overrides.get(f.name) is not None:
                values[f.name] = type(f.default)(overrides[f.name])
        return cls(**values)
