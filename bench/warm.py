"""Warm launches: the project's ``main`` kept warm (``warm/projects``) on runners of their own (Traefik's
Redis provider, forward-auth to the web tier), each idle one holding a started spare of its image.

- ``warm``: one launch at a time, every spare offered: seconds from the request to the ``ready`` event.
- ``warm-burst``: as many launches at once as there are runners holding spares, by as many users.

Floor, alternated with the single launches: ``docker run`` of the same image until Jupyter answers, as for
the relaunch. The record's timestamps split each launch into dispatch (the request, its claim of a spare,
the runner taking it), the hand-over (the runner's steps until the spare is the run's) and the route
(Traefik serving it, through forward-auth) with the token.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor

from bench.floors import run_until_ready
from bench.settings import Settings
from bench.stack import PROJECT, Deployed, Stack, add_runners, deploy, ensure_image, stop
from bench.stats import Figure, median
from booklab.state.spares import OFFERED
from gitlab_standin.store import MAINTAINER
from tests.fixtures.services import wait_until

log = logging.getLogger(__name__)

#: the issue's targets, as ratios to the floor's median
WARM_RATIO, BURST_RATIO = 0.2, 0.3


def _all_offered(stack: Stack, names: list[str], image: str) -> bool:
    spares = [stack.ctx.spares.of(name) for name in names]
    return all(spare is not None and spare.state == OFFERED and spare.image == image for spare in spares)


def split_note(runs: list[Deployed]) -> str:
    dispatch, hand_over, route = zip(*(run.split() for run in runs))
    return (
        f"Booklab's time by the record's timestamps (medians): dispatch with the claim of a spare "
        f"{median(dispatch) * 1000:.0f} ms, first step -> the spare is the run's {median(hand_over) * 1000:.0f} ms, "
        f"-> `ready` (route through Traefik with forward-auth, token) {median(route) * 1000:.0f} ms; "
        f"{sum(1 for r in runs if r.record.get('warm_run'))} of {len(runs)} launches served by a spare."
    )


def run(stack: Stack, settings: Settings) -> list[Figure]:
    image = ensure_image(stack)  # main's image, launched once: the branch's latest, which spares are kept of
    count = settings.warm_runners
    names = [f"warm-{i}@{stack.runner_name(stack.runners[0]).split('@')[1]}" for i in range(1, count + 1)]
    runners = add_runners(
        stack,
        names,
        BOOKLAB_ROUTES_PUBLISHER="redis",
        BOOKLAB_WARM_PROJECTS=json.dumps({f"{PROJECT}@main": count}),
    )
    try:
        return _measure(stack, settings, names, runners, image)
    finally:  # the next figures' launches are for the stack's own runners
        stack.processes.stop(runners)


def _measure(stack: Stack, settings: Settings, names: list[str], runners: list, image: str) -> list[Figure]:
    count = len(names)
    users = [stack.gitlab.add_user(f"student{i:02}") for i in range(count)]
    for user in users:
        stack.gitlab.set_member(PROJECT, user.username, MAINTAINER)
    config = stack.ctx.config

    def launch(user) -> Deployed:
        return deploy(stack.ctx, PROJECT, "main", user.token, 120, stack.processes.log_dir)

    single: list[Deployed] = []
    floor: list[float] = []
    for i in range(settings.rounds):
        wait_until(lambda: _all_offered(stack, names, image), 120, "every spare offered")
        floor.append(run_until_ready(stack.docker, image, config))
        single.append(launch(users[i % count]))
        log.info("warm launch %d/%d: %.3f s (floor %.2f s)", i + 1, settings.rounds, single[-1].elapsed, floor[-1])
        stop(stack.ctx, runners, single[-1].id)

    burst: list[Deployed] = []
    for i in range(settings.warm_bursts):
        wait_until(lambda: _all_offered(stack, names, image), 120, "every spare offered")
        with ThreadPoolExecutor(count) as pool:
            ready = list(pool.map(launch, users))
        burst.extend(ready)
        slowest = max(ready, key=lambda r: r.elapsed)
        log.info(
            "warm burst %d/%d: slowest %.3f s (dispatch %.0f ms, hand-over %.0f ms, route %.0f ms)",
            i + 1,
            settings.warm_bursts,
            slowest.elapsed,
            *(part * 1000 for part in slowest.split()),
        )
        for each in ready:
            stop(stack.ctx, runners, each.id)

    floor_title = "`docker run` until `/api/status` answers"
    warm = Figure(
        "warm",
        "warm launch, a spare of the image offered by an idle runner: request -> `ready`",
        "s",
        [r.elapsed for r in single],
        target=f"ratio <= {WARM_RATIO}",
        meets=lambda f: f.ratio is not None and f.ratio <= WARM_RATIO,
        floor=floor,
        floor_title=floor_title,
    )
    warm.notes.append(split_note(single))
    burst_figure = Figure(
        "warm-burst",
        f"{count} launches at once of a warm project, {count} idle runners holding spares: request -> `ready`",
        "s",
        [r.elapsed for r in burst],
        target=f"p95 <= {BURST_RATIO} x floor",
        meets=lambda f: f.p(95) <= BURST_RATIO * median(floor),
        floor=floor,
        floor_title=floor_title + " (the warm launches' floor)",
    )
    burst_figure.notes.append(
        f"{settings.warm_bursts} bursts; p95 {burst_figure.p(95):.3f} s = "
        f"{burst_figure.p(95) / median(floor):.2f} x the floor. " + split_note(burst)
    )
    return [warm, burst_figure]
