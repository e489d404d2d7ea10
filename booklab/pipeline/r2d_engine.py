"""A repo2docker container engine that builds through the Docker Engine API.

repo2docker's own engine drives ``docker buildx``, which a runner (a container that only
has the Docker socket) does not have. This engine sends the build to the daemon with the
docker SDK instead. It is registered as the ``booklab`` entry point of the
``repo2docker.engines`` group: ``repo2docker --engine booklab ...``.
Booklab never lets repo2docker run or push images, so this engine only builds and inspects.

The image's labels are set in one step after the build: the Engine's classic builder makes one
step of each label given to its build API, a container and a commit each (about 50 ms apiece).
Booklab's labels come as a setting of this engine (``final_labels``), never as repo2docker's
``--label``: for a repository without a Dockerfile, repo2docker writes those into the Dockerfile
it generates, unquoted, where a value (the settings a repository's ``.booklab.yml`` gives) could
set other labels. Here each value is quoted, and Booklab's labels are set last, over any label of
the repository's or repo2docker's of the same name.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any, Iterator

import docker
from repo2docker.engine import BuildError, ContainerEngine, Image
from repo2docker.utils import ByteSpecification
from traitlets import Bool, Unicode, validate

#: a label's name as repo2docker and Booklab write them; its value may hold anything but a line break
_LABEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")


class EngineAPIEngine(ContainerEngine):
    """Build and inspect images with ``docker.APIClient``; output is plain strings."""

    string_output = True

    build_memory_limit = ByteSpecification(
        0,
        help="Memory (and memory+swap) limit of each build container, e.g. 4G; 0: none.",
        config=True,
    )
    no_cache = Bool(False, help="Build every layer again, reusing none from earlier builds.", config=True)
    final_labels = Unicode(
        "{}",
        help="A JSON object of labels set on the image last, over any label of the same name, each value "
        "exactly as given.",
        config=True,
    )

    @validate("final_labels")
    def _one_json_object_of_strings(self, proposal: Any) -> str:
        given = json.loads(proposal["value"])
        if not isinstance(given, dict) or not all(isinstance(value, str) for value in given.values()):
            raise ValueError("final_labels must be a JSON object of strings")
        return proposal["value"]

    def __init__(self, *, parent: Any) -> None:
        super().__init__(parent=parent)
        self._api = docker.APIClient(version="auto", **docker.utils.kwargs_from_env())

    def build(
        self,
        *,
        push: bool = False,
        load: bool = False,
        buildargs: dict | None = None,
        cache_from: list | None = None,
        container_limits: dict | None = None,
        tag: str = "",
        custom_context: bool = False,
        dockerfile: str = "",
        fileobj: Any = None,
        path: str = "",
        labels: dict | None = None,
        platform: str | None = None,
        **kwargs: Any,
    ) -> Iterator[str]:
        """Build in the daemon (so the image is always loaded) and yield its output; the image's labels are
        ``labels`` (a Dockerfile build's, from repo2docker) and :attr:`final_labels`, set in one step."""
        if push:
            raise BuildError("The booklab engine does not push images.")
        limits = dict(container_limits or {})
        if self.build_memory_limit:
            limits.update(memory=self.build_memory_limit, memswap=self.build_memory_limit)
        labels = (labels or {}) | json.loads(self.final_labels)
        built = yield from self._build(
            path=path or None,
            fileobj=fileobj,
            custom_context=custom_context,
            dockerfile=dockerfile or None,
            tag=None if labels else tag or None,
            buildargs=buildargs,
            container_limits=limits,
            cache_from=cache_from,
            platform=platform or None,
        )
        if labels:  # under the same limits: the repository's ONBUILD commands run at its FROM
            labelling = io.BytesIO(labelled(built, labels).encode())
            yield from self._build(fileobj=labelling, tag=tag or None, container_limits=limits)

    def _build(self, **options: Any) -> Iterator[str]:
        """One build in the daemon: yields its output, returns the built image's ID."""
        built = ""
        for event in self._api.build(decode=True, rm=True, forcerm=True, nocache=self.no_cache, **options):
            if "error" in event or "errorDetail" in event:
                message = event.get("error") or event["errorDetail"].get("message", "")
                # repo2docker prints a BuildError only with --debug: say it here
                self.log.error(f"{message}\n", extra={"phase": "failed"})
                raise BuildError(message)
            if "stream" in event:
                yield event["stream"]
            built = (event.get("aux") or {}).get("ID", built)
        if not built:
            raise BuildError("The Docker Engine did not say which image it built.")
        return built

    def inspect_image(self, image: str) -> Image | None:
        """The image's tags and config, or None when the daemon does not have it."""
        try:
            attrs = self._api.inspect_image(image)
        except docker.errors.ImageNotFound:
            return None
        config = attrs["Config"] or {}
        config.setdefault("WorkingDir", "")
        return Image(tags=attrs.get("RepoTags") or [], config=config)


def final_labels_option(labels: dict[str, str]) -> str:
    """The repo2docker argument that has this engine set ``labels`` last (:attr:`EngineAPIEngine.final_labels`).
    Its JSON holds no space: repo2docker's parser would take an argument with one for the repository."""
    return "--EngineAPIEngine.final_labels=" + json.dumps(labels, separators=(",", ":")).replace(" ", "\\u0020")


def labelled(image_id: str, labels: dict[str, str | None]) -> str:
    """A Dockerfile giving the image ``image_id`` all of ``labels`` in one step, each value
    exactly as given (quoted, with nothing expanded)."""
    pairs = []
    for key, given in sorted(labels.items()):
        value = "" if given is None else str(given)
        if not _LABEL_KEY.fullmatch(key) or "\n" in value or "\r" in value:
            raise BuildError(f"Label {key!r} cannot be set: a name of letters, digits and ._/- and a one-line value.")
        pairs.append(f'"{key}"="{_quoted(value)}"')
    return f"FROM {image_id}\nLABEL " + " \\\n      ".join(pairs) + "\n"


def _quoted(value: str) -> str:
    """``value`` within a Dockerfile's double quotes: its backslashes, quotes and dollars escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
