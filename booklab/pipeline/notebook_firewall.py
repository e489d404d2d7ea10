"""The firewall rules a runner sets on its host when notebooks run on several hosts.

On one host a notebook's port is published on loopback (or not at all) and Booklab's services
listen on loopback, so nothing else reaches a notebook and a notebook reaches nothing of
Booklab's. Across hosts both stop being true: a notebook on host B is published on B's address
for Traefik on host A, and Redis and the registry listen on A's address for B's runners. Two
settings, set on every runner host, give the same guarantees back with iptables rules in the
host's network namespace (the runner needs it and the NET_ADMIN capability there):

- ``notebook/reachable_from``: only these addresses (Traefik's host) may open a connection to a
  notebook of this host; others are refused, whether they come through the published port or
  straight to the container's address routed through the host;
- ``notebook/unreachable``: notebooks of this host, and the builds of repositories (their
  Dockerfile's commands run on Docker's default bridge), may not open a connection to these networks
  (Booklab's hosts: Redis, the registry, the web tier, other hosts' notebooks); Traefik's host
  among them is reached at its public address, as a user's browser reaches it.

On the host's own addresses (its gateway on each bridge, its public address), notebooks and builds reach
Traefik's entrypoints (ports 80, 443 and ``routes/port``) and nothing else, whatever listens there; in hub
mode, notebooks (not builds) reach the hub's own API too, on the notebook network's gateway
(``jupyterhub/api_port``), which its servers report to and which the hub's proxy serves to anyone at
``/hub/api`` anyway.

The rules live in chains of Booklab's own, rewritten whole and at once (``iptables-restore
--noflush``) at each launch, so that a change of the settings or a flushed firewall is mended
before the next notebook starts; the chains are entered from Docker's ``DOCKER-USER`` chain
(connections forwarded to or from the notebook network's bridge) and from ``INPUT``
(connections from a notebook to the host's own addresses).
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess

import docker

from booklab.config import Config
from booklab.errors import ConfigError
from booklab.pipeline import notebook_network

#: connections opened towards a notebook of this host
INGRESS = "BOOKLAB-NOTEBOOKS-IN"
#: connections a notebook of this host opens
EGRESS = "BOOKLAB-NOTEBOOKS-OUT"
#: connections a notebook of this host, or a build, opens to the host's own addresses
HOST = "BOOKLAB-NOTEBOOKS-HOST"
#: the ports of Traefik's public entrypoints (plain and TLS): what notebooks reach on a host's own addresses
TRAEFIK_PORTS = (80, 443)
#: the option of a bridge network that names its Linux bridge
BRIDGE_NAME = "com.docker.network.bridge.name"


def chains(
    reachable_from: tuple[ipaddress.IPv4Network, ...],
    unreachable: tuple[ipaddress.IPv4Network, ...],
    traefik_ports: tuple[int, ...],
    hub_api: tuple[str, str, int] | None = None,
) -> str:
    """Booklab's chains, whole, as ``iptables-restore`` reads them: declaring a chain empties it. On the
    host's own addresses (any of them: its gateway on each bridge, its public address) notebooks and builds
    reach ``traefik_ports`` only; and, with ``hub_api`` (bridge, address, port), the notebooks of that bridge
    reach a hub's own API at that address and port."""
    lines = ["*filter", f":{INGRESS} - [0:0]", f":{EGRESS} - [0:0]", f":{HOST} - [0:0]"]
    lines += [f"-A {HOST} -p tcp --dport {port} -j RETURN" for port in traefik_ports]
    if hub_api:
        bridge, address, port = hub_api
        lines.append(f"-A {HOST} -i {bridge} -d {address} -p tcp --dport {port} -j RETURN")
    lines += [f"-A {HOST} -p tcp -j REJECT --reject-with tcp-reset", f"-A {HOST} -j REJECT"]
    if reachable_from:
        lines += [f"-A {INGRESS} -s {network} -j RETURN" for network in reachable_from]
        lines += [f"-A {INGRESS} -p tcp -j REJECT --reject-with tcp-reset", f"-A {INGRESS} -j REJECT"]
    for network in unreachable:
        lines += [
            f"-A {EGRESS} -d {network} -p tcp -j REJECT --reject-with tcp-reset",
            f"-A {EGRESS} -d {network} -j REJECT",
        ]
    return "\n".join([*lines, "COMMIT", ""])


def jumps(notebooks: str, builds: str) -> list[list[str]]:
    """The rules that send new connections through Booklab's chains: to and from the notebook network's
    bridge ``notebooks``, and from the bridge ``builds`` the builds' containers run on (a repository's
    Dockerfile runs there)."""
    new = ["-m", "conntrack", "--ctstate", "NEW"]
    rules = [["DOCKER-USER", "-o", notebooks, *new, "-j", INGRESS]]
    for bridge in dict.fromkeys([notebooks, builds]):
        rules += [["DOCKER-USER", "-i", bridge, *new, "-j", EGRESS], ["INPUT", "-i", bridge, *new, "-j", HOST]]
    return rules


def bridge_of(network) -> str:
    """The Linux bridge of a Docker bridge network (a docker-py Network)."""
    return (network.attrs.get("Options") or {}).get(BRIDGE_NAME) or f"br-{network.id[:12]}"


def wanted(config: Config) -> bool:
    """Whether ``notebook/reachable_from`` or ``notebook/unreachable`` asks for rules."""
    return bool(config.networks_of("notebook_reachable_from") or config.networks_of("notebook_unreachable"))


def ensure(client: docker.DockerClient, config: Config) -> None:
    """Set the rules for the notebook network (``notebook/network``, empty: Docker's default bridge) when
    ``notebook/reachable_from`` or ``notebook/unreachable`` asks for any; ConfigError when they cannot be
    set, so that no notebook starts without them."""
    if not wanted(config):
        return
    if not (shutil.which("iptables") and shutil.which("iptables-restore")):
        raise ConfigError(
            "Settings notebook/reachable_from and notebook/unreachable need iptables on the runner's host: install "
            "it (apt-get install iptables), or empty both settings."
        )
    networks = [client.networks.get(config.notebook_network or "bridge"), client.networks.get("bridge")]
    for network in networks:
        if network.attrs.get("EnableIPv6"):
            raise ConfigError(
                f"The Docker network {network.name!r} has IPv6, which the firewall rules of notebook/reachable_from "
                "and notebook/unreachable (iptables) do not cover: use a network without IPv6."
            )
    notebooks, builds = (bridge_of(network) for network in networks)
    ports = tuple(sorted({*TRAEFIK_PORTS, config.routes_port} - {0}))
    hub_api = None
    if config.launch_target == "jupyterhub":  # the hub listens on the notebook network's gateway
        hub_api = (notebooks, notebook_network.gateway(networks[0]), config.jupyterhub_api_port)
    reachable_from = config.networks_of("notebook_reachable_from")
    rules = chains(reachable_from, config.networks_of("notebook_unreachable"), ports, hub_api)
    _iptables(["iptables-restore", "--wait", "--noflush"], rules)
    for rule in jumps(notebooks, builds):
        if subprocess.run(["iptables", "--wait", "-C", *rule], capture_output=True).returncode != 0:
            _iptables(["iptables", "--wait", "-I", *rule])


def _iptables(argv: list[str], stdin: str | None = None) -> None:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        raise ConfigError(
            f"The runner could not set its notebooks' firewall rules ({argv[0]}: {done.stderr.strip()}): it needs "
            "the host's network namespace and the NET_ADMIN capability (docker compose: network_mode: host, "
            "cap_add: [NET_ADMIN]), and Docker's iptables rules (DOCKER-USER)."
        )


def before_notebook(client: docker.DockerClient, config: Config) -> None:
    """What every notebook's start checks first, a launch's or a warm spare's: its network isolates notebooks
    from each other (checked at the runner's start too, but Docker may not have answered then) and the
    firewall rules hold (mended, should they be gone)."""
    if config.notebook_network:
        notebook_network.ensure_isolated(client, config.notebook_network)
    ensure(client, config)
