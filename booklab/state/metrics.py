"""Booklab's figures for Prometheus, gathered from Redis so that every runner and every
web worker sees the same ones: deployments by phase, queue length, runners busy and free, warm spares,
build and launch duration histograms that the runners add to, the time from a launch's request
to its end by outcome (with BinderHub's buckets, so that both sit on one dashboard), and the
bytes of Booklab's images and the images removed on each runner host."""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from booklab.state import schema
from booklab.state.images import Images
from booklab.state.records import Deployments, Runners
from booklab.state.spares import Spares

#: upper bounds (seconds) of the duration buckets
BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)
HISTOGRAMS = {"build": "Seconds a repo2docker build took", "launch": "Seconds from container start to ready"}
#: BinderHub's buckets of its launch time (binderhub_launch_time_seconds)
LAUNCH_TIME_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)


class Outcome(str, Enum):
    """How a launch ended: ready in a warm spare, ready with an image there already (or pulled, or built by
    another launch), ready after building its image, or failed."""

    WARM = "warm"
    CACHED = "cached"
    BUILT = "built"
    FAILED = "failed"


def observe(client: redis.Redis, name: str, seconds: float, buckets: tuple[float, ...] = BUCKETS) -> None:
    """Add one duration to the ``name`` histogram."""
    with client.pipeline(transaction=True) as pipe:
        for bound in buckets:
            if seconds <= bound:
                pipe.hincrby(schema.histogram(name), f"le={bound}", 1)
        pipe.hincrbyfloat(schema.histogram(name), "sum", seconds)
        pipe.hincrby(schema.histogram(name), "count", 1)
        pipe.execute()


def observe_launch(client: redis.Redis, outcome: Outcome, requested_at: float, now: float) -> None:
    """Add a launch that ended in ``outcome`` at ``now``, requested at ``requested_at`` (epoch seconds)."""
    observe(client, _launch_time(outcome), max(now - requested_at, 0.0), LAUNCH_TIME_BUCKETS)


def _launch_time(outcome: Outcome) -> str:
    return f"launch_time:{outcome.value}"


class RedisCollector(Collector):
    """Reads the figures from Redis at each scrape."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def collect(self) -> Iterator:
        by_phase = GaugeMetricFamily("booklab_deployments", "Deployments by current phase", labels=["phase"])
        counts: dict[str, int] = {}
        for phase in Deployments(self.redis).all_statuses().values():
            counts[phase.value] = counts.get(phase.value, 0) + 1
        for phase, count in sorted(counts.items()):
            by_phase.add_metric([phase], count)
        yield by_phase
        yield GaugeMetricFamily(
            "booklab_queue_length", "Deployments waiting for a runner", value=self.redis.zcard(schema.QUEUE)
        )
        runners = Runners(self.redis)
        alive = runners.alive()
        busy = sum(1 for name in alive if runners.held(name))
        state = GaugeMetricFamily("booklab_runners", "Live runners, busy or free", labels=["state"])
        state.add_metric(["busy"], busy)
        state.add_metric(["free"], len(alive) - busy)
        yield state
        yield GaugeMetricFamily(
            "booklab_warm_spares",
            "Warm spares idle runners hold, starting or offered to the next launch of their image",
            value=sum(Spares(self.redis).counts().values()),
        )
        for name, help_text in HISTOGRAMS.items():
            yield self._histogram(name, help_text)
        yield self._launch_times()
        yield from self._images()

    def _launch_times(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(
            "booklab_launch_time_seconds",
            "Seconds from a launch's request to its end (ready or failed), by outcome",
            labels=["outcome"],
        )
        for outcome in Outcome:
            buckets, total = self._buckets(_launch_time(outcome), LAUNCH_TIME_BUCKETS)
            family.add_metric([outcome.value], buckets, total)
        return family

    def _images(self) -> Iterator:
        images = Images(self.redis)
        size = GaugeMetricFamily("booklab_images_bytes", "Bytes of Booklab's images on a runner host", labels=["host"])
        for host, n in sorted(images.bytes_by_host().items()):
            size.add_metric([host], n)
        yield size
        removed = CounterMetricFamily(
            "booklab_images_removed", "Images the cleaner of a runner host removed", labels=["host"]
        )
        for host, n in sorted(images.removed().items()):
            removed.add_metric([host], n)
        yield removed

    def _histogram(self, name: str, help_text: str) -> HistogramMetricFamily:
        buckets, total = self._buckets(name, BUCKETS)
        return HistogramMetricFamily(f"booklab_{name}_duration_seconds", help_text, buckets=buckets, sum_value=total)

    def _buckets(self, name: str, bounds: tuple[float, ...]) -> tuple[list[tuple[str, int]], float]:
        """The cumulative bucket counts of the ``name`` histogram (``+Inf`` last), and its sum."""
        stored = self.redis.hgetall(schema.histogram(name))
        buckets = [(str(float(bound)), int(stored.get(f"le={bound}", 0))) for bound in bounds]  # le="1.0", as usual
        buckets.append(("+Inf", int(stored.get("count", 0))))
        return buckets, float(stored.get("sum", 0))
