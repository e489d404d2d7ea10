"""Sizes and durations: the forms a setting may take, and how a value is shown back."""

import pytest

from booklab.units import format_duration, format_size, parse_duration, parse_size

G = 1024**3
M = 1024**2


@pytest.mark.parametrize(
    "value, size",
    [
        (1024, 1024),
        ("1024", 1024),
        ("64k", 64 * 1024),
        ("1.5k", 1536),
        ("512m", 512 * M),
        ("2G", 2 * G),
        ("2gb", 2 * G),
        (" 2 g ", 2 * G),
        (".5g", 512 * M),
        ("0", 0),
    ],
)
def test_parse_size_reads_bytes_and_units_of_1024(value, size):
    assert parse_size(value) == size


@pytest.mark.parametrize(
    "value, seconds",
    [
        (600, 600),
        ("600", 600),
        ("90s", 90),
        ("0.5m", 30),
        ("30m", 1800),
        ("1.5h", 5400),
        ("2H", 7200),
    ],
)
def test_parse_duration_reads_whole_seconds(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "lots", "-1g", "2t", "1e3", "2 gigabytes", "\u0662g", True, 2.5, None, [1]])
def test_parse_size_refuses_anything_else(value):
    with pytest.raises(ValueError):
        parse_size(value)


@pytest.mark.parametrize("value", ["", "soon", "-60", "2d", "1h30m", True, 600.0, None])
def test_parse_duration_refuses_anything_else(value):
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize(
    "n, text",
    [
        (4 * G, "4g"),
        (1536 * M, "1536m"),
        (128 * M, "128m"),
        (64 * 1024, "64k"),
        (1000, "1000"),
        (0, "0"),
    ],
)
def test_format_size_uses_the_largest_whole_unit(n, text):
    assert format_size(n) == text


@pytest.mark.parametrize("n, text", [(7200, "2h"), (5400, "90m"), (90, "90s"), (60, "1m"), (0, "0s")])
def test_format_duration_uses_the_largest_whole_unit(n, text):
    assert format_duration(n) == text
