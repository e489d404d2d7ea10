"""The route publishers, one for each value of ``routes/publisher``: none, Traefik's docker
provider (labels on the notebook container) and its Redis provider (keys under
``traefik/``), behind one interface, :class:`Routes` (:mod:`booklab.pipeline.routes`)."""

from __future__ import annotations

import logging
import time

import redis

from booklab.config import Config
from booklab.pipeline.launcher import Notebook
from booklab.pipeline.routes.names import (
    BACKEND,
    auth_keys,
    auth_labels,
    auth_pairs,
    docker_labels,
    kv_pairs,
    public_url,
    shared_auth_pairs,
)
from booklab.pipeline.routes.waiting import run_route_check
from booklab.state import schema

log = logging.getLogger(__name__)


class Routes:
    """No routes: a notebook is reached at the address its runner publishes it on. ``client``: Booklab's Redis;
    ``tree``: the database of Traefik's routes in it (routes/redis_db)."""

    def __init__(self, config: Config, client: redis.Redis, tree: redis.Redis) -> None:
        self.config = config
        self.redis = client
        self.tree = tree

    def labels(self, slug: str) -> dict[str, str]:
        """Labels the notebook container carries for its route."""
        return {}

    def prepare(self, slug: str, backend_url: str) -> None:
        """Route to a notebook that answers at ``backend_url`` ahead of its :meth:`publish`, where the provider
        allows (a warm spare a launch just claimed)."""

    def publish(self, slug: str, notebook: Notebook) -> str:
        """Route to the running ``notebook``; return its URL once it answers there."""
        return notebook.url

    def remove(self, slug: str) -> None:
        """Take the route down; nothing happens when there is none."""


class TraefikRoutes(Routes):
    """Routes Traefik serves at ``<slug>.<domain>``, read by its provider ``provider``."""

    provider = ""

    def publish(self, slug: str, notebook: Notebook) -> str:
        started = time.monotonic()
        run_route_check(self.config, self.redis, slug, self.provider, notebook.token)
        log.info("%s answers through Traefik %.2f s after the notebook", slug, time.monotonic() - started)
        return public_url(self.config, slug)


class DockerLabelRoutes(TraefikRoutes):
    """Labels on the notebook container (one host): the route goes with the container."""

    provider = "docker"

    def labels(self, slug: str) -> dict[str, str]:
        return {**docker_labels(self.config, slug), **auth_labels(self.config, slug)}


class RedisRoutes(TraefikRoutes):
    """Keys for Traefik's Redis provider, to the port the runner publishes (several hosts)."""

    provider = "redis"

    def prepare(self, slug: str, backend_url: str) -> None:
        auth = self.config.routes_forward_auth
        # each key written has Traefik read the whole tree again: what all routes share (the anchor, the
        # forward-auth middleware) is written once, not with each route
        once = {schema.TRAEFIK_ANCHOR: "1", **(shared_auth_pairs(self.config) if auth else {})}
        with self.tree.pipeline(transaction=False) as pipe:
            for key, value in once.items():
                pipe.set(key, value, nx=True)
            pipe.mset({**kv_pairs(self.config, slug, backend_url), **(auth_pairs(self.config, slug) if auth else {})})
            pipe.execute()

    def publish(self, slug: str, notebook: Notebook) -> str:
        # prepared already (a warm spare): not written again, which would have Traefik read its tree again
        if self.tree.get(schema.traefik_service(slug, BACKEND)) != notebook.url.rstrip("/"):
            self.prepare(slug, notebook.url)
        return super().publish(slug, notebook)

    def remove(self, slug: str) -> None:
        self.tree.delete(*kv_pairs(self.config, slug, ""), *auth_keys(slug))


PUBLISHERS: dict[str, type[Routes]] = {"none": Routes, "docker": DockerLabelRoutes, "redis": RedisRoutes}


def make_routes(config: Config, client: redis.Redis, tree: redis.Redis) -> Routes:
    """The publisher ``routes/publisher`` names."""
    return PUBLISHERS[config.routes_publisher](config, client, tree)
