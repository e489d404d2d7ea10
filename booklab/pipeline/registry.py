"""The image registry runner hosts share (``images/registry``), asked through the Docker Engine:
the digest of the image it holds under a name, pull, push; and through its HTTP API v2 for what
the engine cannot do: list the tags under the registry's path, delete one.

Runner hosts share nothing but Redis and this registry: a commit's image, named alike on every
host (:func:`booklab.pipeline.builder.image_name` under ``images/registry``), is built on one
host, pushed there, and pulled by the others. Credentials go to the Docker Engine in the
``X-Registry-Auth`` header (the docker SDK's ``auth_config``), never in argv, and to the HTTP API
as basic auth; an error says what the engine or the registry answered, never the request. The
HTTP API is reached as Docker reaches it: plain HTTP on a loopback address, else HTTPS trusting
the CA of ``/etc/docker/certs.d/<host[:port]>/ca.crt`` when there is one.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Iterator
from urllib.parse import urljoin

import docker
import requests
import urllib3

from booklab.config import Config, is_loopback
from booklab.errors import RegistryError

log = logging.getLogger(__name__)

#: where Docker finds the CA a registry's certificate is signed by; the HTTP API trusts it too
DOCKER_CERTS = "/etc/docker/certs.d"
#: seconds the HTTP API has to answer
API_TIMEOUT = 30
#: the manifests Booklab's images have in a registry (a HEAD of a tag answers with the digest of one)
MANIFESTS = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)

#: what a call to the Docker Engine may fail with: its answer, or its connection (refused, or silent past the
#: client's timeout while a push or pull streams its progress: urllib3's own error, not requests')
_ENGINE_ERRORS = (docker.errors.APIError, requests.RequestException, urllib3.exceptions.HTTPError, OSError)

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

    @property
    def host(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def base_path(self) -> str:
        """The path of images/registry in the registry: its repositories are ``<base_path>/<name>``."""
        return self.path.split("/", 1)[1]


def digest(client: docker.DockerClient, registry: Registry, image: str) -> str | None:
    """The digest of the image the registry holds under the name ``image``, None when it holds none;
    :class:`RegistryError` when it does not answer or refuses."""
    try:
        answer = client.api.inspect_distribution(image, auth_config=registry.auth_config)
    except docker.errors.NotFound:
        return None
    except _ENGINE_ERRORS as e:
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
    except _ENGINE_ERRORS as e:
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
    except _ENGINE_ERRORS as e:
        raise RegistryError(_reason(e)) from None
    if pushed is None:
        raise RegistryError("the Docker Engine ended the push without the image's digest")
    return pushed


def _reason(e: Exception) -> str:
    """What the engine (or the registry, through it) answered; the request, which holds the credentials, left out."""
    if isinstance(e, docker.errors.APIError):
        return str(e.explanation or f"the Docker Engine answered {e.status_code}")
    return f"the Docker Engine did not answer ({type(e).__name__})"


class _API:
    """The registry's HTTP API v2, with its login and the CA Docker trusts for it."""

    def __init__(self, registry: Registry) -> None:
        self.session = requests.Session()
        if registry.username:
            self.session.auth = (registry.username, registry.password)
        ca = os.path.join(DOCKER_CERTS, registry.host, "ca.crt")
        # given with each request: a session's own is overridden by REQUESTS_CA_BUNDLE
        self.verify: str | bool = ca if os.path.isfile(ca) else True
        scheme = "http" if is_loopback(registry.host.rsplit(":", 1)[0].strip("[]")) else "https"
        self.base = f"{scheme}://{registry.host}/v2/"

    def __enter__(self) -> _API:
        return self

    def __exit__(self, *exc: object) -> None:
        self.session.close()

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        """``method`` on ``path`` (under /v2/, or an absolute URL the registry gave)."""
        url = urljoin(self.base, path)
        return self.session.request(method, url, verify=self.verify, timeout=API_TIMEOUT, **kwargs)

    def listing(self, path: str, key: str) -> list[str]:
        """The items ``key`` of every page of a listing (``Link: <next>; rel="next"``); none when it is not found."""
        items: list[str] = []
        while path:
            answer = self.call("GET", path)
            if answer.status_code == 404:
                return items
            answer.raise_for_status()
            items += answer.json().get(key) or []
            path = urljoin(answer.url, answer.links["next"]["url"]) if "next" in answer.links else ""
        return items


def tags(registry: Registry) -> dict[str, list[str]]:
    """Each repository under images/registry's path (``host/path/name``), with its tags; :class:`RegistryError`
    when the registry does not answer or refuses."""
    with _API(registry) as api:
        try:
            return {
                f"{registry.host}/{repository}": sorted(api.listing(f"{repository}/tags/list", "tags"))
                for repository in api.listing("_catalog?n=1000", "repositories")
                if repository.startswith(f"{registry.base_path}/")
            }
        except (requests.RequestException, ValueError) as e:
            raise RegistryError(_http_reason(e)) from None


def delete(registry: Registry, image: str) -> bool:
    """Delete ``image`` (``host/path/name:tag``) from the registry (its manifest, so every tag of the same
    image); whether it was there. The registry frees the space at its next garbage collection."""
    repository, tag = image.removeprefix(f"{registry.host}/").rsplit(":", 1)
    with _API(registry) as api:
        try:
            found = api.call("HEAD", f"{repository}/manifests/{tag}", headers={"Accept": ", ".join(MANIFESTS)})
            if found.status_code == 404:
                return False
            found.raise_for_status()
            answer = api.call("DELETE", f"{repository}/manifests/{found.headers['Docker-Content-Digest']}")
            if answer.status_code == 404:
                return False
            answer.raise_for_status()
        except (requests.RequestException, KeyError) as e:
            raise RegistryError(_http_reason(e)) from None
    return True


def _http_reason(e: Exception) -> str:
    """What the registry answered (status and reason), without the request."""
    if isinstance(e, requests.HTTPError) and e.response is not None:
        return f"the registry answered {e.response.status_code} {e.response.reason}"
    if isinstance(e, KeyError):
        return "the registry gave no digest of the image"
    return f"the registry did not answer ({type(e).__name__})"
