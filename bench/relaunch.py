"""Relaunch, the commit's image already built: seconds from the request
(:func:`booklab.service.request_deployment`) to the ``ready`` event a client of the
service receives, through a real runner (claim, cache check against the stand-in, container
start, Jupyter's first answer, the route through Traefik with forward-auth, the token).

Floor, alternated with it round by round: ``docker run`` of the same image until Jupyter
answers ``/api/status`` (:func:`bench.floors.run_until_ready`). The notebook is stopped
and the runner free again between rounds. The record's timestamps split Booklab's time
into dispatch (requested -> first step), preparation (first step -> container started)
and launch (container started -> ready).
"""

from __future__ import annotations

import logging

from bench.floors import run_until_ready
from bench.settings import Settings
from bench.stack import Deployed, Stack, ensure_image
from bench.stats import Figure, median

log = logging.getLogger(__name__)


def split_note(runs: list[Deployed]) -> str:
    """Booklab's time split by the record's timestamps and the client's view of the phases."""
    dispatch, prepare, launch = zip(*(run.split() for run in runs))
    phases = sorted({p for run in runs for p in run.phases}, key=lambda p: median([r.phases.get(p, 0) for r in runs]))
    seen = ", ".join(f"{p} {median([r.phases[p] for r in runs if p in r.phases]):.2f} s" for p in phases)
    return (
        f"Booklab's time by the record's timestamps (medians): dispatch {median(dispatch) * 1000:.0f} ms, "
        f"first step -> container started {median(prepare):.2f} s, container started -> `ready` "
        f"{median(launch):.2f} s. First event of each phase as the client saw it: {seen}."
    )


def run(stack: Stack, settings: Settings) -> list[Figure]:
    image = ensure_image(stack)
    config = stack.ctx.config
    runs: list[Deployed] = []
    floor: list[float] = []
    for i in range(settings.rounds):
        floor.append(run_until_ready(stack.docker, image, config))
        runs.append(stack.deploy("main"))
        log.info("relaunch %d/%d: %.2f s (floor %.2f s)", i + 1, settings.rounds, runs[-1].elapsed, floor[-1])
        stack.stop(runs[-1].id)
    figure = Figure(
        "relaunch",
        "relaunch, image already built: request -> `ready`",
        "s",
        [r.elapsed for r in runs],
        target="ratio <= 1.15",
        meets=lambda f: f.ratio is not None and f.ratio <= 1.15,
        floor=floor,
        floor_title="`docker run` until `/api/status` answers",
    )
    figure.notes.append(split_note(runs))
    return [figure]
