"""A repo2docker container engine that builds through the Docker Engine API.

repo2docker's own engine drives ``docker buildx``, which a runner (a container that only
has the Docker socket) does not have. This engine sends the build to the daemon with the
docker SDK instead. It is registered as the ``booklab`` entry point of the
``repo2docker.engines`` group: ``repo2docker --engine booklab ...``.
Booklab never lets repo2docker run or push images, so this engine only builds and inspects.
"""

from __future__ import annotations

from typing import Any, Iterator

import docker
from repo2docker.engine import BuildError, ContainerEngine, Image
from repo2docker.utils import ByteSpecification
from traitlets import Bool


class EngineAPIEngine(ContainerEngine):
    """Build and inspect images with ``docker.APIClient``; output is plain strings."""

    string_output = True

    build_memory_limit = ByteSpecification(
        0,
        help="Memory (and memory+swap) limit of each build container, e.g. 4G; 0: none.",
        config=True,
    )
    no_cache = Bool(False, help="Build every layer again, reusing none from earlier builds.", config=True)

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
        """Build in the daemon (so the image is always loaded) and yield its output."""
        if push:
            raise BuildError("The booklab engine does not push images.")
        limits = dict(container_limits or {})
        if self.build_memory_limit:
            limits.update(memory=self.build_memory_limit, memswap=self.build_memory_limit)
        events = self._api.build(
            path=path or None,
            fileobj=fileobj,
            custom_context=custom_context,
            dockerfile=dockerfile or None,
            tag=tag or None,
            buildargs=buildargs,
            container_limits=limits,
            cache_from=cache_from,
            labels=labels,
            platform=platform or None,
            decode=True,
            rm=True,
            forcerm=True,
            nocache=self.no_cache,
        )
        for event in events:
            if "error" in event or "errorDetail" in event:
                message = event.get("error") or event["errorDetail"].get("message", "")
                # repo2docker prints a BuildError only with --debug: say it here
                self.log.error(f"{message}\n", extra={"phase": "failed"})
                raise BuildError(message)
            if "stream" in event:
                yield event["stream"]

    def inspect_image(self, image: str) -> Image | None:
        """The image's tags and config, or None when the daemon does not have it."""
        try:
            attrs = self._api.inspect_image(image)
        except docker.errors.ImageNotFound:
            return None
        config = attrs["Config"] or {}
        config.setdefault("WorkingDir", "")
        return Image(tags=attrs.get("RepoTags") or [], config=config)
