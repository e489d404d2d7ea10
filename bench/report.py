"""BENCHMARKS.md: one table row per figure (median, p90, p99, the floor of the same run,
the ratio, the target and whether it is met, the date), a note per figure, the machine,
a fixed "Reading the figures" section, and whatever was written by hand below
:data:`KEPT` (profiles, fixes), which a new run keeps.

A run of some figures only (``python -m bench relaunch``) replaces their rows and notes
and keeps the others' from the file as it was.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from pathlib import Path

from bench.stats import Figure

KEPT = "<!-- Everything below this line is written by hand; `make bench` keeps it. -->"
HEADER = (
    "| figure | n | median | p90 | p99 | floor, same run (median) | ratio | target | met | measured |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)
ROW = re.compile(r"^\| `([a-z0-9-]+)`")
NOTE = re.compile(r"^- `([a-z0-9-]+)`")

READING = """\
## Reading the figures

- Every figure is measured against the real local stack started for the run (Docker
  Engine, Redis, the GitLab stand-in, Traefik, `booklab web` under gunicorn, a real
  `booklab runner`): nothing is mocked. The machine is shared and noisy, so each figure
  is a median over rounds, with p90 (and p99 where the target is about it), never a
  single time.
- **floor** is the same work done by hand in the same run, alternated round by round with
  Booklab's: `docker run` until Jupyter answers for a relaunch; `git clone` +
  `repo2docker --no-run` + `docker run` for a first deploy. **ratio** is Booklab's median
  over the floor's median: what Booklab adds around the work that must be done anyway.
  The route's floor is informative only (the issue gives none): Traefik serving the new
  route, polled every 20 ms, without Booklab's checks.
- Nearest-rank percentiles: every value shown was measured. With 10 rounds p90 is the
  second slowest; p99 is meaningful only for figures with many samples (dispatch, log
  latency).
- **met** compares the figure with the issue's target; benchmarks never fail a run, a
  figure that misses its target says why in its note or in the sections below.
- Repetitions are settable: `BENCH_ROUNDS=20 make bench`, or `python -m bench --help`;
  `python -m bench relaunch route` measures some figures only and keeps the other rows.
"""


def _number(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if unit == "s":
        return f"{value:.2f}"
    if unit in ("ms", "KiB"):
        return f"{value:.1f}" if value < 10 else f"{value:.0f}"
    return f"{value:.0f}"


def row(figure: Figure, measured: str) -> str:
    unit = figure.unit
    floor = f"{_number(figure.floor_median, unit)} {unit}: {figure.floor_title}" if figure.floor else "none"
    met = {True: "yes", False: "**no**", None: ""}[figure.met()]
    ratio = f"{figure.ratio:.2f}" if figure.ratio is not None else ""
    p99 = f"{_number(figure.p(99), unit)} {unit}" if figure.show_p99 and figure.samples else ""
    cells = [
        f"`{figure.key}`: {figure.title}",
        str(len(figure.samples)),
        f"{_number(figure.median, unit)} {unit}" if figure.samples else "did not run",
        f"{_number(figure.p(90), unit)} {unit}" if figure.samples else "",
        p99,
        floor,
        ratio,
        figure.target,
        met,
        measured,
    ]
    return "| " + " | ".join(cells) + " |"


def note(figure: Figure) -> str:
    return f"- `{figure.key}`: " + " ".join(figure.notes)


def _previous(path: Path) -> tuple[dict[str, str], dict[str, str], str]:
    """Rows and notes by figure key, and the hand-written tail, of an existing report."""
    if not path.exists():
        return {}, {}, ""
    text = path.read_text()
    head, _, tail = text.partition(KEPT)
    rows = {m.group(1): line for line in head.splitlines() if (m := ROW.match(line))}
    notes = {m.group(1): line for line in head.splitlines() if (m := NOTE.match(line))}
    return rows, notes, tail.strip("\n")


def write(
    path: Path, figures: list[Figure], order: list[str], machine: dict[str, str], settings: str, elapsed: float
) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows, notes, tail = _previous(path)
    for figure in figures:
        rows[figure.key] = row(figure, now)
        notes.pop(figure.key, None)
        if figure.notes:
            notes[figure.key] = note(figure)
    ordered = sorted(rows, key=lambda key: next((i for i, k in enumerate(order) if key.startswith(k)), len(order)))
    machine_line = ", ".join(f"{name} {value}" for name, value in machine.items())
    text = "\n".join(
        [
            "# Benchmarks",
            "",
            (
                f"Written by `make bench` (`python -m bench`). Last run: {now}, {elapsed / 60:.1f} minutes, "
                f"figures {', '.join(f'`{f.key}`' for f in figures)}; {settings}."
            ),
            "",
            f"**Machine**: {machine_line}.",
            "",
            HEADER,
            *(rows[key] for key in ordered),
            "",
            "### Notes",
            "",
            *(notes[key] for key in ordered if key in notes),
            "",
            READING,
            KEPT,
            "",
            tail,
            "",
        ]
    )
    path.write_text(re.sub(r"\n{3,}", "\n\n", text))
