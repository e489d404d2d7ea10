"""A site's JupyterHub beside Booklab (``make demo HUB=1``): the hub runs ``docs/jupyterhub_config.py`` as a
site would (JupyterHub, Booklab's spawner on the demo's notebook network, Debian's configurable-http-proxy,
GitLab login against the stand-in), each user's servers on a host of their own (``demo.hub.localhost``), and
the runners launch notebooks as the users' servers there (``launch/target: jupyterhub``). The tests run
their hubs with the same :class:`HubSite`.
"""

from __future__ import annotations

import os
import secrets
import shutil
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import docker
import requests

from booklab.demo.processes import free_ports
from booklab.demo.stack import SOURCE_ROOT, Options, Starter, write_private
from booklab.errors import DemoError
from booklab.pipeline import notebook_network

#: the hub's configuration, as the docs give it to sites
CONFIG = SOURCE_ROOT / "docs" / "jupyterhub_config.py"
#: where Debian's node modules are (configurable-http-proxy's own among them), for a Node.js not Debian's
DEBIAN_NODE_MODULES = "/usr/share/nodejs"
HUB_START_TIMEOUT = 60


@dataclass(frozen=True)
class HubSite:
    """How one hub is run: its files in ``state``, its proxy on ``port`` of loopback (or of every address, with
    ``all_addresses``), its own API at ``api_url`` (where its servers on ``network`` reach it)."""

    state: Path
    port: int
    api_url: str
    proxy_api_port: int
    network: str
    default_image: str
    booklab_url: str
    adds_users: bool = True
    """Booklab's service may add users to the hub (``jupyterhub/create_users``)"""
    subdomains: bool = True
    """each user's servers on a host of their own, as Booklab requires"""
    all_addresses: bool = False
    traefik: tuple[str, str] | None = None
    """Booklab's Redis as the hub logs in to it (``redis://user:password@host:port``, the routes' keys alone) and
    the API of Booklab's Traefik, when the hub's proxy is that Traefik (its entrypoint ``hub`` on :attr:`port`);
    else the hub starts configurable-http-proxy"""

    @property
    def bind_url(self) -> str:
        """Where Booklab reaches the hub (its ``jupyterhub/url``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Where users reach the hub."""
        return f"http://hub.localhost:{self.port}" if self.subdomains else self.bind_url

    @property
    def token_file(self) -> Path:
        return self.state / "booklab-token"

    def prepare(self) -> str:
        """The hub's directory, its owner's alone (the hub's database and cookie secret go there), with a new API
        token of Booklab's service in :attr:`token_file`, which the hub reads; returns the token."""
        self.state.mkdir(exist_ok=True)
        self.state.chmod(0o700)
        token = secrets.token_hex(32)
        write_private(self.token_file, token)
        return token

    def environment(self, gitlab_url: str, client_id: str, client_secret: str) -> dict[str, str]:
        """What ``docs/jupyterhub_config.py`` reads, over this process's environment; the hub's users log in
        with the OAuth application ``client_id`` of the GitLab at ``gitlab_url``."""
        environment = {
            **os.environ,
            "HOME": str(self.state),
            "NODE_PATH": DEBIAN_NODE_MODULES,
            "PYTHONPATH": str(SOURCE_ROOT),
            "HUB_URL": self.url,
            "HUB_BIND_URL": f"http://:{self.port}" if self.all_addresses else self.bind_url,
            "HUB_API_URL": self.api_url,
            "HUB_PROXY_API_URL": f"http://127.0.0.1:{self.proxy_api_port}",
            "HUB_STATE": str(self.state),
            "HUB_NOTEBOOK_NETWORK": self.network,
            "HUB_DEFAULT_IMAGE": self.default_image,
            "BOOKLAB_URL": self.booklab_url,
            "BOOKLAB_HUB_TOKEN_FILE": str(self.token_file),
            "BOOKLAB_ADDS_USERS": "true" if self.adds_users else "false",
            "GITLAB_URL": gitlab_url,
            "GITLAB_CLIENT_ID": client_id,
            "GITLAB_CLIENT_SECRET": client_secret,
        }
        if self.subdomains:
            environment["HUB_SUBDOMAIN_HOST"] = self.url
        if self.traefik:
            redis_url, api_url = self.traefik
            redis = urlsplit(redis_url)
            environment |= {
                "HUB_PROXY": "traefik",
                "HUB_TRAEFIK_REDIS_URL": f"redis://{redis.hostname}:{redis.port or 6379}",
                "HUB_TRAEFIK_REDIS_USERNAME": unquote(redis.username or ""),
                "HUB_TRAEFIK_REDIS_PASSWORD": unquote(redis.password or ""),
                "HUB_TRAEFIK_API_URL": api_url,
            }
        return environment

    def command(self) -> list[str]:
        return ["jupyterhub", "-f", str(CONFIG)]

    def booklab_env(self) -> dict[str, str]:
        """The settings of runners whose notebooks are servers of this hub."""
        return {
            "BOOKLAB_LAUNCH_TARGET": "jupyterhub",
            "BOOKLAB_JUPYTERHUB_URL": self.bind_url,
            "BOOKLAB_JUPYTERHUB_API_TOKEN_FILE": str(self.token_file),
            "BOOKLAB_JUPYTERHUB_CREATE_USERS": "true" if self.adds_users else "false",
        }


def installed() -> bool:
    return bool(shutil.which("jupyterhub") and shutil.which("configurable-http-proxy"))


def answers(api_url: str) -> bool:
    """Whether the hub's API at ``api_url`` (``.../hub/api``) answers."""
    try:
        return requests.get(f"{api_url}/", timeout=2).status_code == 200
    except requests.RequestException:
        return False


class WithHub(Starter):
    """The steps of :func:`booklab.demo.stack.start` with a JupyterHub where notebooks open."""

    def __init__(self, options: Options, exits: ExitStack) -> None:
        if not installed():
            raise DemoError(
                "The demo's hub needs JupyterHub and configurable-http-proxy: run make demo (it installs them)."
            )
        super().__init__(options, exits)
        self.hub_port, self.hub_api_port, self.proxy_api_port = free_ports(3)
        self.hub: HubSite | None = None

    @property
    def hub_url(self) -> str:
        return self.hub.url if self.hub else ""

    def docker(self) -> None:
        super().docker()
        with closing(docker.from_env()) as client:
            api_url = f"http://{notebook_network.gateway(client.networks.get(self.network))}:{self.hub_api_port}"
        hub = HubSite(
            self.scratch("hub"),
            self.hub_port,
            api_url,
            self.proxy_api_port,
            self.network,
            self.base_image,
            self.web_tier,
        )
        hub.prepare()
        self.hub = hub

    @property
    def web_tier(self) -> str:
        """The web tier's own address, where the hub's proxy sends its Services link (keeping the hub's host,
        which Traefik's routes would not know)."""
        return f"http://127.0.0.1:{self.web_port}"

    def gitlab_args(self) -> list[str]:
        assert self.hub is not None
        return [*super().gitlab_args(), "--hub-redirect-uri", f"{self.hub.url}/hub/oauth_callback"]

    def services(self) -> dict[str, Any]:
        assert self.hub is not None
        gitlab = super().services()
        app = gitlab["hub_oauth"]
        environment = self.hub.environment(gitlab["url"], app["client_id"], app["client_secret"])
        child = self.processes.start("jupyterhub", self.hub.command(), env=environment, cwd=self.hub.state)
        self.tier().append(child)
        api = f"{self.hub.bind_url}/hub/api"
        self.processes.wait_until(child, lambda: answers(api), HUB_START_TIMEOUT, "JupyterHub answered")
        return gitlab

    def runner_env(self, name: str) -> dict[str, str]:
        assert self.hub is not None
        return {**super().runner_env(name), **self.hub.booklab_env()}
