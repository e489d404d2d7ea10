"""A measured figure and its statistics: median, p90, p99 (nearest rank, no
interpolation: every value shown was measured), the floor's median and the ratio."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile (``p`` in 0..100) of ``values``."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    """The middle value (the mean of the two middle ones for an even count)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


@dataclass
class Figure:
    """One row of BENCHMARKS.md."""

    key: str
    title: str
    unit: str
    samples: list[float]
    target: str = ""
    #: whether the samples (and floor) meet the target; None when there is none to judge
    meets: Callable[[Figure], bool] | None = None
    floor: list[float] | None = None
    floor_title: str = ""
    #: show p99 (the target is about it, or the samples are many)
    show_p99: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def median(self) -> float:
        return median(self.samples)

    def p(self, q: float) -> float:
        return percentile(self.samples, q)

    @property
    def floor_median(self) -> float | None:
        return median(self.floor) if self.floor else None

    @property
    def ratio(self) -> float | None:
        floor = self.floor_median
        return self.median / floor if floor else None

    def met(self) -> bool | None:
        if self.meets is None or not self.samples:
            return None
        return bool(self.meets(self))
