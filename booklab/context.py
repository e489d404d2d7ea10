"""The clients one process shares: configuration, Redis, the event log, the lifecycle
(every move of a status), the vault, state stores (images, their builds' claims, warm spares and deploy key
sweeps among them), the key of notebook host names, the route publisher, Docker and GitLab. Built once per
process, rebuilt after a fork."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import docker
import redis

from booklab import config as config_module
from booklab.config import Config
from booklab.derived_keys import NOTEBOOK_SLUG, derive_key
from booklab.pipeline.gitlab_client import GitLabClient
from booklab.pipeline.routes.publishers import Routes, make_routes
from booklab.state.audit import AuditLog
from booklab.state.build_claims import BuildClaims
from booklab.state.deployment import Deployment
from booklab.state.events import EventLog
from booklab.state.grants import Grants
from booklab.state.images import Images
from booklab.state.key_sweeps import KeySweeps
from booklab.state.lifecycle import Lifecycle
from booklab.state.queue import Queue
from booklab.state.records import Deployments, Runners
from booklab.state.spares import Spares
from booklab.state.vault import Vault


@dataclass
class Context:
    config: Config
    #: seconds each GitLab call may take at most, and a wait for another process refreshing a user's login (None:
    #: ``gitlab/timeout`` and :data:`~booklab.state.grants.LOCK_WAIT`); a runner's checks wait less, as they hold
    #: up its heartbeat (:mod:`booklab.runner.worker`)
    gitlab_wait: float | None = None
    redis: redis.Redis = field(init=False)

    def __post_init__(self) -> None:
        self.redis = redis.Redis.from_url(self.config.redis_url, decode_responses=True, health_check_interval=30)
        self.events = EventLog(self.redis, self.config.log_max_events, self.config.log_retention)
        self.lifecycle = Lifecycle(self.redis, self.events)
        self.deployments = Deployments(self.redis)
        self.runners = Runners(self.redis)
        self.queue = Queue(self.redis, self.lifecycle, self.deployments)
        self.audit = AuditLog(self.redis)
        # a host that published nothing for three cleanings drops out of the inventory
        self.images = Images(self.redis, inventory_ttl=3 * self.config.images_clean_interval)
        self.build_claims = BuildClaims(self.redis)
        self.spares = Spares(self.redis)
        self.key_sweeps = KeySweeps(self.redis)

    @functools.cached_property
    def vault(self) -> Vault:
        self.config.require("secret_key")
        return Vault(self.redis, self.config.secret_key, self.config.key_ttl)

    @functools.cached_property
    def grants(self) -> Grants:
        return Grants(self.redis, self.vault)

    @functools.cached_property
    def slug_key(self) -> bytes:
        self.config.require("secret_key")
        return derive_key(self.config.secret_key, NOTEBOOK_SLUG)

    def slug(self, deployment_id: str) -> str:
        """The DNS label of the deployment's notebook host (``<slug>.<fqdn>``), also naming
        its container, route and checkout; keyed, so nobody can choose one that collides."""
        return Deployment.from_id(deployment_id).slug_with(self.slug_key)

    @functools.cached_property
    def route_tree(self) -> redis.Redis:
        """The Redis database of the routes Traefik's Redis provider reads (routes/redis_db); Booklab's own client
        when it is Booklab's database."""
        pool = self.redis.connection_pool
        if self.config.routes_redis_db == pool.connection_kwargs.get("db", 0):
            return self.redis
        # Booklab's connection in all but the database (a unix socket, TLS, a login: as redis/url says them)
        settings = {**pool.connection_kwargs, "db": self.config.routes_redis_db}
        return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **settings))

    @functools.cached_property
    def routes(self) -> Routes:
        return make_routes(self.config, self.redis, self.route_tree)

    @functools.cached_property
    def docker(self) -> docker.DockerClient:
        client = docker.from_env()
        # the engine is reached as DOCKER_HOST says, never through an HTTP proxy: without this, each call reads the
        # proxy settings of the whole environment again (a tenth of an idle runner's CPU, which polls its engine)
        client.api.trust_env = False
        return client

    @functools.cached_property
    def docker_host(self) -> str:
        """The name of the Docker Engine's host (``docker info``): what runners on one engine share,
        its images for one."""
        return self.docker.info()["Name"]

    @property
    def gitlab_timeout(self) -> float:
        """Seconds each GitLab call may take: ``gitlab/timeout``, or :attr:`gitlab_wait` when shorter."""
        timeout = self.config.gitlab_timeout
        return timeout if self.gitlab_wait is None else min(timeout, self.gitlab_wait)

    def gitlab(self, token: str, renew: Callable[[str], str | None] | None = None) -> GitLabClient:
        """A client of the configured GitLab acting with ``token`` as it is; with ``renew``, which
        gives another for a token GitLab refused (a login's: :func:`booklab.pipeline.gitlab_tokens.client`)."""
        return GitLabClient(self.config.gitlab_host, token, self.gitlab_timeout, renew)

    def close(self) -> None:
        if self.events.fanout is not None:
            self.events.fanout.close()
        self.redis.close()
        if "route_tree" in self.__dict__:
            self.route_tree.close()
        if "docker" in self.__dict__:
            self.docker.close()


_current: Context | None = None


def get_context() -> Context:
    """This process's context, from the configuration file and environment."""
    global _current
    if _current is None:
        _current = Context(config_module.load())
    return _current


def set_context(context: Context | None) -> None:
    """Use ``context`` from now on (``None``: build a new one when next asked)."""
    global _current
    _current = context
