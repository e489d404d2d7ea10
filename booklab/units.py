"""Sizes and durations as people write them in settings (``2g``, ``512m``, ``90s``, ``30m``),
read into bytes and seconds and shown back in the largest whole unit.

The bottom layer: it imports nothing of Booklab's, so that the configuration (``config.yml``)
and a repository's ``.booklab.yml`` read and show these values alike.
"""

from __future__ import annotations

import re
from fractions import Fraction

_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}

_AMOUNT = r"(?P<amount>[0-9]{1,18}(?:\.[0-9]{0,9})?|\.[0-9]{1,9})"
_SIZE = re.compile(_AMOUNT + r"\s*(?P<unit>[kmg]?)b?", re.IGNORECASE)
_DURATION = re.compile(_AMOUNT + r"\s*(?P<unit>[smh]?)", re.IGNORECASE)
_PERCENT = re.compile(_AMOUNT + r"\s*%")

#: a number without a unit, written as the amounts of sizes and durations are: no sign, no exponent
NUMBER = re.compile(_AMOUNT)


def parse_size(value: int | str) -> int:
    """Bytes from a size such as ``2g``, ``512m``, ``1.5G``, ``64k``, ``2gb`` or ``1024``
    (units k, m, g of 1024, either case); ``ValueError`` when it is not one."""
    return _amount(value, _SIZE, _SIZE_UNITS)


def parse_duration(value: int | str) -> int:
    """Whole seconds from a duration such as ``90s``, ``30m``, ``1.5h`` or ``600`` (seconds);
    ``ValueError`` when it is not one."""
    return _amount(value, _DURATION, _DURATION_UNITS)


def parse_percent(value: str) -> float:
    """The share a percentage such as ``50%`` or ``12.5%`` names (0.5, 0.125), more than 0 and at
    most 1; ``ValueError`` when it is not one."""
    match = _PERCENT.fullmatch(value.strip())
    share = Fraction(match["amount"]) / 100 if match else 0
    if not 0 < share <= 1:
        raise ValueError(value)
    return float(share)


def _amount(value: int | str, pattern: re.Pattern[str], units: dict[str, int]) -> int:
    """A whole number as is, or a number with one of ``units`` matched by ``pattern``."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(value)
    if isinstance(value, int):
        return value
    match = pattern.fullmatch(value.strip())
    if not match:
        raise ValueError(value)
    return int(Fraction(match["amount"]) * units[match["unit"].lower()])


def format_size(n: int) -> str:
    """A size in bytes in the largest whole unit: 4294967296 -> ``4g``, 1610612736 -> ``1536m``."""
    for unit in ("g", "m", "k"):
        if n and n % _SIZE_UNITS[unit] == 0:
            return f"{n // _SIZE_UNITS[unit]}{unit}"
    return str(n)


def human_size(n: int) -> str:
    """A size for people: 4294967296 -> ``4 GiB``, 1610612736 -> ``1.5 GiB``, 536870912 -> ``512 MiB``."""
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{round(n / size, 2):g} {unit}"
    return f"{n} bytes"


def format_duration(seconds: int) -> str:
    """Seconds in the largest whole unit: 7200 -> ``2h``, 5400 -> ``90m``, 90 -> ``90s``."""
    for unit in ("h", "m"):
        if seconds and seconds % _DURATION_UNITS[unit] == 0:
            return f"{seconds // _DURATION_UNITS[unit]}{unit}"
    return f"{seconds}s"
