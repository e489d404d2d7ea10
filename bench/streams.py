"""Open streams: the web tier (gunicorn, 2 gthread workers) holding ``BENCH_STREAMS``
(500) open event streams of one deployment: the summed resident memory of its processes
while they are open (sampled 10 times), and the errors: streams refused, closed early,
or that missed the one line written while all were open.
"""

from __future__ import annotations

import logging
import time

from bench.settings import Settings
from bench.stack import Stack
from bench.stats import Figure
from bench.viewers import probe_message
from bench.webtier import end_stream, pss_mb, rss_mb, say, viewer_stream
from booklab.phases import Phase
from tests.fixtures.services import wait_until

log = logging.getLogger(__name__)

SAMPLES = 10


def run(stack: Stack, settings: Settings) -> list[Figure]:
    count = settings.streams
    idle_rss, idle_pss = rss_mb(stack), pss_mb(stack)
    dep, viewers = viewer_stream(stack, "bench-streams")
    with viewers:
        started = time.monotonic()
        viewers.open(count)
        try:
            wait_until(lambda: viewers.opened() == count, 120, f"{count} event streams to open")
        except AssertionError:
            pass  # counted as errors below
        opened_in = time.monotonic() - started
        samples, pss = [], []
        for _ in range(SAMPLES):
            samples.append(rss_mb(stack))
            pss.append(pss_mb(stack))
            time.sleep(0.3)
        written = time.monotonic()
        say(stack, dep, Phase.BUILDING, probe_message(0))
        try:
            wait_until(lambda: viewers.received(0) == count, 10, "the line to reach every stream", interval=0.01)
        except AssertionError:
            pass
        reached_in = time.monotonic() - written
        errors = (count - viewers.opened()) + (count - viewers.received(0)) + len(viewers.errors)
        end_stream(stack, dep)
    log.info("streams: %d open, %.0f MB RSS, %d errors", count, max(samples), errors)
    figure = Figure(
        "streams",
        f"web tier holding {count} open event streams: RSS of its processes",
        "MB",
        samples,
        target="RSS <= 512 MB, no error",
        meets=lambda f: max(f.samples) <= 512 and errors == 0,
    )
    figure.notes.append(
        f"{errors} errors; idle before: {idle_rss:.0f} MB RSS ({idle_pss:.0f} MB PSS); with the streams open: "
        f"max {max(samples):.0f} MB RSS, {max(pss):.0f} MB PSS (shared pages split between the master and its "
        f"workers); the {count} streams opened in {opened_in:.1f} s and one new line reached all of them in "
        f"{reached_in * 1000:.0f} ms."
    )
    return [figure]
