"""Route: milliseconds from the notebook answering at its own address to it answering
through Traefik, as a runner waits for it (:meth:`booklab.pipeline.routes.publishers.TraefikRoutes.publish`:
Traefik's API shows the router, then ``/api/status`` answers through the entrypoint with
forward-auth to the web tier), for both publishers:

- ``docker``: labels on the container (Traefik's docker provider sees it start);
- ``redis``: keys Traefik's Redis provider reads (written by ``publish``).

Each round starts a notebook from the built image the way a runner does
(:func:`booklab.pipeline.launcher.launch`), waits until it answers directly (polled every 20 ms),
then times ``publish``. Floor, alternated with it: the same, but instead of ``publish``
the route is written (``redis``) and the entrypoint polled every 20 ms until it answers,
without Booklab's polling of Traefik's API: what Traefik itself takes.
"""

from __future__ import annotations

import logging
import secrets
import time

from bench.settings import Settings
from bench.stack import OWNER, PROJECT, Stack, ensure_image
from bench.stats import Figure
from bench.webtier import end_stream, hold_run
from booklab.pipeline import launcher, notebook_container
from booklab.pipeline.routes import names, publishers, waiting
from booklab.state import schema
from booklab.state.deployment import Deployment

log = logging.getLogger(__name__)

POLL = 0.02
TIMEOUT = 30


def _answers_through_traefik(entrypoint: str, host: str, token: str, check: str) -> bool:
    """As the runner's route check asks (:func:`booklab.pipeline.routes.waiting.wait_served`)."""
    headers = {waiting.ROUTE_CHECK_HEADER: check}
    return launcher.api_status(f"{entrypoint.rstrip('/')}/", token, host, headers, allow_redirects=False) is not None


def _round(stack: Stack, image: str, provider: str, name: str, booklab: bool) -> float:
    """One notebook: seconds from answering directly to answering through Traefik."""
    ctx = stack.ctx
    config = stack.config(BOOKLAB_ROUTES_PUBLISHER=provider)
    publisher = publishers.make_routes(config, ctx.redis, ctx.route_tree)
    dep = Deployment(PROJECT, name, OWNER)
    slug = ctx.slug(dep.id)
    hold_run(stack, dep)  # forward-auth's owner check finds it, live
    notebook = launcher.launch(
        ctx.docker,
        image,
        name=f"booklab-bench-{slug}",
        deployment_id=dep.id,
        labels={"booklab.bench": "route", **publisher.labels(slug)},
        limits=notebook_container.Limits(config.notebook_memory, config.notebook_cpus, config.notebook_pids_limit),
        network=config.notebook_network,
        host_ip=config.notebook_host,
        publish=config.notebook_publish,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while launcher.api_status(notebook.url, notebook.token) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the notebook {notebook.name} did not answer within {TIMEOUT} s")
            time.sleep(POLL)
        started = time.monotonic()
        if booklab:
            publisher.publish(slug, notebook)
            return time.monotonic() - started
        check = secrets.token_urlsafe(32)
        ctx.redis.set(schema.route_check(slug), check, ex=TIMEOUT + 10)
        if provider == "redis":
            ctx.route_tree.mset(
                {
                    schema.TRAEFIK_ANCHOR: "1",
                    **names.kv_pairs(config, slug, notebook.url),
                    **names.shared_auth_pairs(config),
                    **names.auth_pairs(config, slug),
                }
            )
        host = names.route_host(config, slug)
        while not _answers_through_traefik(config.routes_traefik_entrypoint_url, host, notebook.token, check):
            if time.monotonic() > deadline + TIMEOUT:
                raise RuntimeError(f"Traefik did not serve {host} within {TIMEOUT} s")
            time.sleep(POLL)
        return time.monotonic() - started
    finally:
        publisher.remove(slug)
        ctx.redis.delete(schema.route_check(slug))
        ctx.docker.containers.get(notebook.container_id).remove(force=True)
        end_stream(stack, dep)


def run(stack: Stack, settings: Settings) -> list[Figure]:
    image = ensure_image(stack)
    figures = []
    for provider in ("docker", "redis"):
        booklab, floor = [], []
        for i in range(settings.rounds):
            floor.append(_round(stack, image, provider, f"bench-route-floor-{provider}-{i}", booklab=False) * 1000)
            booklab.append(_round(stack, image, provider, f"bench-route-{provider}-{i}", booklab=True) * 1000)
            log.info(
                "route (%s) %d/%d: %.0f ms (Traefik alone %.0f ms)",
                provider,
                i + 1,
                settings.rounds,
                booklab[-1],
                floor[-1],
            )
        figures.append(
            Figure(
                f"route-{provider}",
                f"route ({'docker labels' if provider == 'docker' else 'Redis KV'}): "
                "notebook answers -> answers through Traefik",
                "ms",
                booklab,
                target="p50 <= 300 ms",
                meets=lambda f: f.median <= 300,
                floor=floor,
                floor_title="Traefik alone: entrypoint polled every 20 ms (none in the issue)",
            )
        )
    return figures
