"""The Docker network notebooks run on, and the one rule it must keep: notebooks cannot
reach each other.

A notebook runs a repository's code, so it must reach nothing of Booklab's but Traefik's
entrypoint. Three things give that:

- every Booklab service (Redis, the web tier, Flower, Traefik's API, the runners) listens on
  the host's loopback or on a network notebooks do not join, so a notebook finds none of them
  at its gateway address (Docker keeps bridge networks apart, and a container's 127.0.0.1 is
  its own);
- the notebook network is a bridge with inter-container communication off
  (``com.docker.network.bridge.enable_icc=false``): a notebook cannot open a connection to
  another notebook, while the host (Traefik, a runner watching its notebook) still reaches
  each one;
- :func:`ensure_isolated`, run when a runner starts, creates ``notebook/network`` so when it
  is missing, and refuses one that lets notebooks talk to each other, saying how to create
  one that does not.
"""

from __future__ import annotations

import logging

import docker

from booklab.errors import ConfigError

log = logging.getLogger(__name__)

ICC_OPTION = "com.docker.network.bridge.enable_icc"
#: the driver options of a notebook network
ISOLATED = {ICC_OPTION: "false"}


def create(client: docker.DockerClient, name: str, labels: dict[str, str] | None = None):
    """Create the bridge network ``name`` on which notebooks cannot reach each other."""
    return client.networks.create(name, driver="bridge", options=ISOLATED, labels=labels or {}, check_duplicate=True)


def gateway(network) -> str:
    """The address at which the containers of ``network`` (a docker-py Network) reach their host."""
    return network.attrs["IPAM"]["Config"][0]["Gateway"]


def isolates(network) -> bool:
    """Whether ``network`` (a docker-py Network) keeps its containers from reaching each other."""
    options = network.attrs.get("Options") or {}
    return network.attrs.get("Driver") == "bridge" and options.get(ICC_OPTION) == "false"


def ensure_isolated(client: docker.DockerClient, name: str) -> None:
    """Create the network ``name`` when it is missing; raise :class:`ConfigError` when it
    lets notebooks reach each other. With no name (Docker's default bridge) only warn, since
    that is the Docker Engine's own setting (``dockerd --icc=false``)."""
    if not name:
        bridge = client.networks.get("bridge")
        if not isolates(bridge):
            log.warning(
                "notebooks run on Docker's default bridge, where they can reach each other: set "
                "notebook/network to a network created with -o %s=false",
                ICC_OPTION,
            )
        return
    try:
        network = client.networks.get(name)
    except docker.errors.NotFound:
        try:
            network = create(client, name)
            log.info("created the notebook network %s", name)
        except docker.errors.APIError as e:
            if e.status_code != 409:
                raise
            network = client.networks.get(name)  # another runner created it meanwhile
    if not isolates(network):
        raise ConfigError(
            f"The Docker network {name!r} (notebook/network) lets notebooks reach each other: recreate it "
            f"with `docker network create -o {ICC_OPTION}=false {name}`, or name another one."
        )
