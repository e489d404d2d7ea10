"""The demo on several Docker hosts (``make demo HOSTS=2``): the same parts as the one-host demo, laid
out as a department would run them on several servers, on this machine.

Each host is a network namespace with an address of its own on one wire and its own Docker Engine
(:mod:`booklab.demo.hosts`), under the host name ``booklab-a``, ``booklab-b``... The first host is the
front: Redis, Traefik (Redis provider), the web tier, Flower and an image registry (with a login) listen
there; runners are shared out over all hosts, each on its host's engine. The GitLab stand-in has a
namespace of its own. This machine is on the wire too, as the world outside where the user's browser
is: a forwarder on its loopback passes the browser's connections to Traefik.

As in production across hosts: notebooks are published on their host's address for Traefik's host
only, routes go through Redis, images built on one host are pushed to the registry and pulled by the
others, and each runner sets its host's firewall rules (``notebook/reachable_from``,
``notebook/unreachable``). Making namespaces and engines needs root.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import string
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import requests

from booklab.demo import docker_host, registry
from booklab.demo.hosts import DockerHost, Namespace, Wire
from booklab.demo.processes import free_ports
from booklab.demo.stack import Options, Starter, write_private
from booklab.errors import DemoError
from booklab.pipeline import traefik_config
from booklab.pipeline.routes.names import route_label

#: where images are shared, under the registry's address
REGISTRY_PATH = "booklab"
REGISTRY_USER = "booklab"
REGISTRY_TIMEOUT = 20

log = logging.getLogger(__name__)


def _registry_answers(url: str, login: tuple[str, str]) -> bool:
    try:
        return requests.get(f"{url}/v2/", auth=login, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


class SeveralHosts(Starter):
    """The steps of :func:`booklab.demo.stack.start` for ``options.hosts`` Docker hosts."""

    def __init__(self, options: Options, exits: ExitStack) -> None:
        if os.geteuid() != 0:
            raise DemoError("The demo of several hosts makes network namespaces and Docker Engines: run it as root.")
        for tool in ("ip", "nsenter", "unshare", "iptables", "docker-registry", "htpasswd"):
            if not shutil.which(tool):
                raise DemoError(f"The demo of several hosts needs {tool}: run make demo (it installs what it needs).")
        if options.runners < options.hosts:
            raise DemoError(f"{options.hosts} hosts need at least as many runners (RUNNERS={options.hosts}).")
        super().__init__(options, exits)
        (self.registry_port,) = free_ports(1)
        self.redis_password = secrets.token_urlsafe(18)
        #: the registry's one login, which every runner uses (pushes and pulls)
        self.registry_login = (REGISTRY_USER, secrets.token_urlsafe(18))
        self.registry_password_file: Path | None = None
        self.hosts: list[DockerHost] = []
        self.outside: Namespace | None = None
        # Traefik's port on this machine's loopback, held from now on: the forwarder is handed it
        self.listener = socket.create_server(("127.0.0.1", self.port), backlog=128)
        exits.callback(self.listener.close)

    @property
    def registry_host(self) -> str:
        """Where the registry listens (``address:port``), on the front."""
        return f"{self.front_address}:{self.registry_port}"

    def host_of(self, runner: str) -> DockerHost:
        """Runners are shared out over the hosts in turn."""
        return self.hosts[self.runner_names.index(runner) % len(self.hosts)]

    def runner_hosts(self) -> dict[str, str]:
        return {name: self.host_of(name).hostname for name in self.runner_names}

    def runner_wrap(self, name: str) -> tuple[str, ...]:
        return self.host_of(name).namespace.wrap()

    def runner_env(self, name: str) -> dict[str, str]:
        host = self.host_of(name)
        return {
            "DOCKER_HOST": host.docker_host,
            "BOOKLAB_NOTEBOOK_HOST": host.address,
            # Traefik's host only reaches a notebook; a notebook reaches no host of Booklab's, nor this machine
            "BOOKLAB_NOTEBOOK_REACHABLE_FROM": self.front_address,
            "BOOKLAB_NOTEBOOK_UNREACHABLE": ",".join(
                [self.outside.address, self.gitlab_address, *(h.address for h in self.hosts)]
            ),
            "BOOKLAB_IMAGES_REGISTRY_USERNAME": self.registry_login[0],
            "BOOKLAB_IMAGES_REGISTRY_PASSWORD_FILE": str(self.registry_password_file),
        }

    def booklab_env(self, gitlab: dict[str, Any], tmpdir: Path) -> dict[str, str]:
        return {
            **super().booklab_env(gitlab, tmpdir),
            "BOOKLAB_ROUTES_PUBLISHER": "redis",
            "BOOKLAB_IMAGES_REGISTRY": f"{self.registry_host}/{REGISTRY_PATH}",
        }

    def traefik_flags(self, routes: Path) -> list[str]:
        """Traefik's flags: the Redis provider for notebooks (docker labels are seen on one engine only)."""
        return traefik_config.static_flags(
            f"{self.front_address}:{self.port}",
            f"{self.front_address}:{self.api_port}",
            route_label=route_label(self.secret_key),
            redis_url=self.redis_url,
            routes_file=routes,
        )

    def docker(self) -> None:
        """This machine's engine with the base image, then the wire, the hosts' engines (each given the base
        image) and the demo's notebook network on each."""
        self.engine()
        wire = Wire(f"bd{secrets.token_hex(2)}")
        self.exits.callback(wire.remove)
        self.outside = wire.plug(1)
        directory = self.scratch("hosts")
        for index, letter in zip(range(self.options.hosts), string.ascii_lowercase):
            namespace = wire.plug(2 + index, letter)
            host = DockerHost(namespace, f"booklab-{letter}", directory / letter, str(wire.subnet))
            host.directory.mkdir()
            self.exits.callback(host.remove)
            log.info("starting the Docker Engine of %s at %s", host.hostname, host.address)
            host.start()
            log.info("copying the base image to %s", host.hostname)
            host.load(self.base_image)
            docker_host.create_network(host.client, self.network)
            self.hosts.append(host)
        self.front_address, self.front_wrap = self.hosts[0].address, self.hosts[0].namespace.wrap()
        # GitLab in a namespace of its own: this machine reaches it over the wire, nothing beyond this machine does
        gitlab = wire.plug(2 + len(self.hosts), "gitlab")
        self.gitlab_address, self.gitlab_wrap = gitlab.address, gitlab.wrap()

    def services(self) -> dict[str, Any]:
        """Redis, the GitLab stand-in and Traefik as on one host; then the registry on the front, and the
        forwarder from this machine's loopback to Traefik."""
        gitlab = super().services()
        storage = self.scratch("registry")
        storage.chmod(0o700)  # images of private projects
        user, password = self.registry_login
        htpasswd = storage / "htpasswd"  # bcrypt, the one hash docker-registry takes; the password on stdin
        subprocess.run(
            ["htpasswd", "-iBc", str(htpasswd), user], input=password, text=True, check=True, capture_output=True
        )
        self.registry_password_file = storage / "password"
        write_private(self.registry_password_file, password)
        config = storage / "config.yml"
        config.write_text(registry.config_text(storage / "data", self.registry_host, htpasswd=htpasswd))
        front = self.tier()
        url = f"http://{self.registry_host}"
        front.append(self.processes.start("registry", [*self.front_wrap, "docker-registry", "serve", str(config)]))
        self.processes.wait_until(
            front[-1], lambda: _registry_answers(url, self.registry_login), REGISTRY_TIMEOUT, "the registry answered"
        )
        fd, target = self.listener.fileno(), f"{self.front_address}:{self.port}"
        command = [sys.executable, "-m", "booklab.demo.forward", str(fd), target]
        front.append(self.processes.start("forward", command, self.python_env(), pass_fds=(fd,)))
        return gitlab
