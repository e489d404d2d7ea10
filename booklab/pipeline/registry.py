"""The image registry runner hosts share (``images/registry``), asked through the Docker Engine:
the digest of the image it holds under a name, pull, push.

Runner hosts share nothing but Redis and this registry: a commit's image, named alike on every
host (:func:`booklab.pipeline.builder.image_name` under ``images/registry``), is built on one
host, pushed there, and pulled by the others. Credentials go to the Docker Engine in the
``X-Registry-Auth`` header (the docker SDK's ``auth_config``), never in argv; an error says what
the engine or the registry answered, never the request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterator

import docker
import requests

from booklab.config import Config
from booklab.errors import RegistryError

log = logging.getLogger(__name__)

#: statuses of a pull's layers not worth a line of the log each
_PULL_CHATTER = frozenset(
    {"Waiting", "Pulling fs layer", "Downloading", "Verifying Checksum", "Download complete", "Extracting"}
)


@dataclass(frozen=True)
class Registry:
    """Where images are shared, and the login to it (none: a registry that asks for none)."""

    path: str
    """``host[:port]/path``: images are named under it"""
    username: str = ""
    password: str = field(default="", repr=False)

    @classmethod
    def of(cls, config: Config) -> Registry | None:
        """The registry of ``images/registry``; None when runner hosts share none."""
        if not config.images_registry:
            return None
        return cls(config.images_registry, config.images_registry_username, config.images_registry_password)

    @property
    def auth_config(self) -> dict[str, str] | None:
        return {"username": self.username, "password": self.password} if self.username else None


def digest(client: docker.DockerClient, registry: Registry, image: str) -> str | None:
    """The digest of the image the registry holds under the name ``image``, None when it holds none;
    :class:`RegistryError` when it does not answer or refuses."""
    try:
        answer = client.api.inspect_distribution(image, auth_config=registry.auth_config)
    except docker.errors.NotFound:
        return None
    except (docker.errors.APIError, requests.RequestException) as e:
        raise RegistryError(_reason(e)) from None
    return answer["Descriptor"]["digest"]


def holds(client: docker.DockerClient, registry: Registry, image: str) -> bool:
    """Whether the registry's image of the name ``image`` is the engine's (pulled from there or pushed)."""
    repository = image.rsplit(":", 1)[0]
    known = {
        repo_digest.partition("@")[2]
        for repo_digest in client.api.inspect_image(image).get("RepoDigests") or []
        if repo_digest.partition("@")[0] == repository
    }
    return bool(known) and digest(client, registry, image) in known


def pull(client: docker.DockerClient, registry: Registry, image: str) -> Iterator[str]:
    """Pull ``image`` from the registry, yielding a line for each layer done; :class:`RegistryError`
    when the pull fails."""
    repository, tag = image.rsplit(":", 1)
    try:
        for event in client.api.pull(repository, tag=tag, stream=True, decode=True, auth_config=registry.auth_config):
            if "error" in event:
                raise RegistryError(str(event["error"]))
            status = str(event.get("status") or "")
            if status and status not in _PULL_CHATTER:
                yield f"{event['id']}: {status}" if event.get("id") else status
    except (docker.errors.APIError, requests.RequestException) as e:
        raise RegistryError(_reason(e)) from None


def push(client: docker.DockerClient, registry: Registry, image: str) -> str:
    """Push ``image`` to the registry (in place of the image its name had there); its digest there.
    :class:`RegistryError` when the push fails."""
    repository, tag = image.rsplit(":", 1)
    pushed = None
    try:
        for event in client.api.push(repository, tag=tag, stream=True, decode=True, auth_config=registry.auth_config):
            if "error" in event:
                raise RegistryError(str(event["error"]))
            pushed = (event.get("aux") or {}).get("Digest") or pushed
    except (docker.errors.APIError, requests.RequestException) as e:
        raise RegistryError(_reason(e)) from None
    if pushed is None:
        raise RegistryError("the Docker Engine ended the push without the image's digest")
    return pushed


def _reason(e: Exception) -> str:
    """What the engine (or the registry, through it) answered; the request, which holds the credentials, left out."""
    if isinstance(e, docker.errors.APIError):
        return str(e.explanation or f"the Docker Engine answered {e.status_code}")
    return f"the Docker Engine did not answer ({type(e).__name__})"
