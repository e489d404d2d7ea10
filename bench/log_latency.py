"""Log latency: milliseconds from a log line written the way a runner writes it
(:meth:`booklab.state.lifecycle.Lifecycle.say`, timed before the call) to its arrival at each of
``BENCH_VIEWERS`` (200) concurrent event-stream clients of the web tier (gunicorn, 2
gthread workers, the owner's personal access token), one sample per line and viewer.
Lines are written ``BENCH_LOG_RATE`` per second (20), ``BENCH_LOG_LINES`` of them (100).
The clients are plain sockets read by one thread (:mod:`bench.viewers`).
"""

from __future__ import annotations

import logging
import time

from bench.settings import Settings
from bench.stack import Stack
from bench.stats import Figure
from bench.viewers import probe_message
from bench.webtier import end_stream, say, viewer_stream
from booklab.phases import Phase
from tests.fixtures.services import wait_until

log = logging.getLogger(__name__)


def run(stack: Stack, settings: Settings) -> list[Figure]:
    dep, viewers = viewer_stream(stack, "bench-log-latency")
    count, lines = settings.viewers, settings.log_lines
    with viewers:
        started = time.monotonic()
        viewers.open(count)
        wait_until(lambda: viewers.opened() == count, 120, f"{count} event streams to open")
        opened_in = time.monotonic() - started
        interval = 1 / settings.log_rate
        next_at = time.monotonic()
        for n in range(lines):
            say(stack, dep, Phase.BUILDING, probe_message(n))
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        try:
            wait_until(lambda: viewers.received(lines - 1) == count, 10, "the last line to reach every viewer")
        except AssertionError:
            pass  # counted as lost below
        end_stream(stack, dep)
        latencies = [s * 1000 for s in viewers.latencies]
        lost = count * lines - len(latencies)
        errors = len(viewers.errors) + sum(v.closed for v in viewers.viewers)
    log.info("log latency: %d samples, %d lost", len(latencies), lost)
    figure = Figure(
        "log-latency",
        f"log line written (`Lifecycle.say`) -> received by an event-stream client, {count} concurrent viewers",
        "ms",
        latencies,
        target="p99 <= 100 ms",
        meets=lambda f: f.p(99) <= 100 and lost == 0,
        show_p99=True,
    )
    figure.notes.append(
        f"{lines} lines at {settings.log_rate:g} per second to {count} viewers: "
        f"{len(latencies)} samples, {lost} lines lost, {errors} stream errors; "
        f"max {max(latencies, default=0):.0f} ms; the {count} streams opened in {opened_in:.1f} s."
    )
    return [figure]
