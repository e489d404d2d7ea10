"""What a notebook container may be: the one place that decides how a repository's image
runs (labels it keeps, capabilities, privileges, pids, memory, CPUs, user, network).

A repository chooses its image's labels and user. Docker keeps every image label the
container does not set itself, and Traefik's docker provider turns ``traefik*`` labels
into routes, so such an image could take any host, the web tier's included: it is
refused, as is one that carries the labels Booklab sets on its own containers. An image
whose user is root is refused unless the operator allows root (``notebook/allow_root``);
a user given by name is looked up in the created container's ``/etc/passwd`` before it
starts, the way Docker resolves it.
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import docker
from docker.models.containers import Container

from booklab.errors import LaunchError

#: Traefik reads labels case-insensitively: ``traefik.``, ``Traefik.``, ...
ROUTER_LABEL_PREFIX = "traefik"
#: labels Booklab sets on a notebook container: an image has no business carrying them
OWN_LABELS = frozenset({"booklab.deployment", "booklab.runner"})
#: the highest uid Docker accepts; a larger one may wrap around to root in the kernel
MAX_UID = 2**31 - 1
MAX_PASSWD_SIZE = 1 << 20
#: what Go's strings.TrimSpace (and so Docker's passwd parser) trims: ASCII and Unicode spaces only
GO_SPACE = (
    " \t\n\v\f\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
NUMBER = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class Limits:
    """What a notebook container gets: memory and CPUs (within the operator's maxima), at
    most ``pids`` processes, and whether its image may run as root."""

    memory: int | str
    cpus: float
    pids: int
    allow_root: bool = False


def create_kwargs(
    image: Mapping[str, Any],
    *,
    name: str,
    deployment_id: str,
    labels: Mapping[str, str],
    limits: Limits,
    environment: Mapping[str, str],
    network: str,
    host_ip: str,
    publish: bool,
    port: int,
) -> dict[str, Any]:
    """The keyword arguments of ``containers.create`` for a notebook of ``image`` (its
    inspect data); raise :class:`LaunchError` when the image may not run as a notebook."""
    refuse_labels(image["Config"].get("Labels") or {})
    if not limits.allow_root:
        refuse_root(image["Config"].get("User") or "")
    return {
        "name": name,
        "environment": dict(environment),
        "labels": {**labels, "booklab.deployment": deployment_id},
        "mem_limit": limits.memory,
        "nano_cpus": int(limits.cpus * 1e9),
        "pids_limit": limits.pids,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "privileged": False,
        "ports": {f"{port}/tcp": (host_ip, None)} if publish else {},
        "network": network or None,
    }


def refuse_labels(labels: Mapping[str, str]) -> None:
    """Raise :class:`LaunchError` naming the image labels that would route traffic or pass
    for Booklab's own (keys only: values are the repository's)."""
    routing = sorted(key for key in labels if key.lower().startswith(ROUTER_LABEL_PREFIX))
    own = sorted(key for key in labels if key.lower() in OWN_LABELS)
    if routing:
        raise LaunchError(
            f"The image carries Traefik labels ({', '.join(routing)}), which could route other "
            "people's traffic to it: remove those LABEL lines from the Dockerfile (or from the image "
            "it is built FROM); Booklab sets the notebook's route itself."
        )
    if own:
        raise LaunchError(
            f"The image carries labels that only Booklab sets ({', '.join(own)}): remove those LABEL "
            "lines from the Dockerfile (or from the image it is built FROM)."
        )


def refuse_root(user: str) -> None:
    """Raise :class:`LaunchError` when the image user ``user`` (``name``, ``uid``, either
    with ``:group``; empty means root) is root by its configuration alone."""
    name = user.split(":", 1)[0]
    if name in ("", "root") or (NUMBER.fullmatch(name) and is_root_uid(name)):
        raise _runs_as_root()


def check_before_start(container: Container, image: Mapping[str, Any], limits: Limits) -> None:
    """Raise :class:`LaunchError` when ``container`` (created from ``image``, not started)
    would run as root because the image's user is a name that the container's
    ``/etc/passwd`` maps to uid 0, unless ``limits`` allow root. Numeric users were
    checked by :func:`create_kwargs` already."""
    name = (image["Config"].get("User") or "").split(":", 1)[0]
    if limits.allow_root or NUMBER.fullmatch(name):
        return
    try:
        stream, stat = container.get_archive("/etc/passwd")
    except docker.errors.NotFound as e:
        raise LaunchError(
            f"The image has no /etc/passwd to find its user {name!r} in: add `USER 1000` "
            "(a numeric uid) to the Dockerfile."
        ) from e
    if stat.get("linkTarget") or stat.get("size", 0) > MAX_PASSWD_SIZE:
        raise LaunchError(
            f"The image's /etc/passwd is a link or too large, so its user {name!r} cannot be "
            "checked: add `USER 1000` (a numeric uid) to the Dockerfile."
        )
    archive = b"".join(stream)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        member = tar.extractfile(tar.getmembers()[0])
        passwd = member.read().decode(errors="replace") if member else ""
    if any(is_root_uid(uid) for uid in uids_of(name, passwd)):
        raise _runs_as_root()


def uids_of(name: str, passwd: str) -> list[str]:
    """The uid fields of every ``passwd`` line that Docker could take for ``name``: its own
    parser keeps the first line whose name matches once the line is trimmed, and trimming
    differs between Go and Python (Python also strips control characters such as ``\\x1c``),
    so every line that matches either way counts. Empty when there is none (Docker then
    refuses to start the container)."""
    uids = []
    for line in passwd.split("\n"):  # Docker splits on newlines only, then trims each line
        for trimmed in {line.strip(), line.strip(GO_SPACE)}:
            fields = trimmed.split(":")
            if fields[0] == name:
                uids.append(fields[2] if len(fields) > 2 else "")
    return uids


def is_root_uid(uid: str) -> bool:
    """Whether Docker may run the uid field ``uid`` as root: a number it reads as 0, one it
    cannot read (taken as 0) and one past the kernel's range (which may wrap around)."""
    return not (NUMBER.fullmatch(uid) and 0 < int(uid) <= MAX_UID)


def _runs_as_root() -> LaunchError:
    return LaunchError(
        "The image runs as root: add `USER 1000` (or a named user that is not uid 0, such as "
        "repo2docker's jovyan) to the Dockerfile, or ask the operator to allow root notebooks "
        "(notebook/allow_root)."
    )
