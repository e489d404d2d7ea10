"""First deploy of a Dockerfile repository (``FROM`` the local base image, ``COPY`` of the
repository): seconds from the request to ``ready`` for a commit never built, through a
real runner: deploy key added to the stand-in, clone over SSH, key removed, repo2docker
build through the Engine API, container start, route, token.

Floor, in the same round: the same repository by hand (:func:`bench.floors.clone_build_run`):
``git clone`` over HTTPS, ``repo2docker --engine booklab --no-run``, ``docker run`` until
``/api/status`` answers. Each round pushes a new commit for Booklab and another for the
floor (a file with a fresh value), so both really build their ``COPY`` layer.
"""

from __future__ import annotations

import logging
import secrets

from bench.floors import clone_build_run
from bench.relaunch import split_note
from bench.settings import Settings
from bench.stack import IMAGE_PREFIX, PROJECT, Deployed, Stack, ensure_image
from bench.stats import Figure, median

log = logging.getLogger(__name__)

BRANCH = "fresh"


def run(stack: Stack, settings: Settings) -> list[Figure]:
    ensure_image(stack)  # the runner is warm, as it is for a user's first deploy
    config = stack.ctx.config
    with stack.ctx.gitlab(stack.owner.token) as gl:
        http_url = gl.project(PROJECT).http_url
    runs: list[Deployed] = []
    floor: list[float] = []
    parts: list[tuple[float, float, float]] = []
    for i in range(settings.build_rounds):
        stack.commit(BRANCH, {"round.txt": f"booklab {i} {secrets.token_hex(8)}\n"})
        runs.append(stack.deploy(BRANCH))
        stack.stop(runs[-1].id)

        stack.commit(BRANCH, {"round.txt": f"floor {i} {secrets.token_hex(8)}\n"})
        image = f"{IMAGE_PREFIX}/floor:{secrets.token_hex(6)}"
        parts.append(clone_build_run(stack.docker, http_url, BRANCH, stack.owner.token, image, stack.state, config))
        floor.append(sum(parts[-1]))
        log.info("first deploy %d/%d: %.2f s (floor %.2f s)", i + 1, settings.build_rounds, runs[-1].elapsed, floor[-1])
    figure = Figure(
        "first-deploy",
        "first deploy of a Dockerfile repository: request -> `ready`",
        "s",
        [r.elapsed for r in runs],
        target="ratio <= 1.10",
        meets=lambda f: f.ratio is not None and f.ratio <= 1.10,
        floor=floor,
        floor_title="`git clone` + `repo2docker --no-run` + `docker run` until `/api/status`",
    )
    clone, build, start = zip(*parts)
    figure.notes.append(split_note(runs))
    figure.notes.append(
        f"The floor's parts (medians): clone {median(clone):.2f} s, build {median(build):.2f} s, "
        f"run until it answers {median(start):.2f} s."
    )
    return [figure]
