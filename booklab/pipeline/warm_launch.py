"""Warm spares on the pipeline's side (:mod:`booklab.state.spares`): start one (a notebook container of the
image with a token no one has yet and no route, under the default profile's limits and the hardening of
every notebook), hand the one a runner holds to the run that claimed it, and remove one no run takes.

A spare is handed to a run only when the run's branch resolved to the spare's image and its user's notebook
would get the same memory and CPUs; otherwise the run starts its own notebook, as without a spare. Until its
run is ready the spare's container is the run's (its record names it), so that whatever ends the run
removes it; once ready, its route is published and its owner alone is let through, as for any notebook.
"""

from __future__ import annotations

import logging
import uuid

import docker
import requests

from booklab.context import Context
from booklab.pipeline import launcher, notebook_container, notebook_firewall, notebook_settings
from booklab.state import schema
from booklab.state.lifecycle import Run
from booklab.state.spares import Spare
from booklab.state.vault import NOTEBOOK_TOKEN

log = logging.getLogger(__name__)

#: what a spare's container is named after
SPARE_PREFIX = "booklab-spare-"
#: seconds a probe of a spare may take in all
PROBE_SECONDS = 1.0


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def start(ctx: Context, runner: str, spare_id: str, image: str) -> tuple[launcher.Notebook, tuple[str, str], str]:
    """Start a spare notebook of ``image`` on the runner's Docker Engine, once its network and firewall are
    checked as for any notebook, with the memory and CPUs of a launch that picks no profile; returns it, those
    limits as :func:`limits_of` writes them, and the id of the image it runs. It answers soon after
    (:func:`answers`). LaunchError when the image may not run."""
    notebook_firewall.before_notebook(ctx.docker, ctx.config)
    found = ctx.docker.images.get(image)
    settings = notebook_settings.for_image(found.labels, ctx.config)[1]
    notebook = launcher.launch(
        ctx.docker,
        image,
        name=f"{SPARE_PREFIX}{spare_id}",
        deployment_id="",
        labels={"booklab.runner": runner},
        limits=notebook_container.Limits(
            settings.memory, settings.cpus, ctx.config.notebook_pids_limit, ctx.config.notebook_allow_root
        ),
        network=ctx.config.notebook_network,
        host_ip=ctx.config.notebook_host,
        publish=ctx.config.notebook_publish,
    )
    return notebook, limits_of(settings), found.id


def limits_of(settings: notebook_settings.Effective) -> tuple[str, str]:
    """The memory and CPUs of ``settings``, as a spare's record keeps them."""
    return str(settings.memory), repr(float(settings.cpus))


def answers(url: str, token: str) -> bool:
    """Whether the spare answers, asked within :data:`PROBE_SECONDS` in all (a runner's main loop asks)."""
    return launcher.answers_within(url, token, PROBE_SECONDS)


def hand_to(ctx: Context, run: Run, runner: str, spare: Spare) -> None:
    """The runner took ``run``, which claimed its ``spare``: the container is the run's from now on."""
    token = ctx.vault.unseal(spare.token)
    if token is None:  # sealed under another secret_key: of no use
        remove(ctx, spare.container)
        return
    ctx.vault.put(run.deployment, NOTEBOOK_TOKEN, token, ttl=schema.RECORD_TTL)  # as long as the notebook may live
    ctx.deployments.update(
        run.deployment,
        container=spare.container,
        warm_run=run.id,
        warm_runner=runner,
        spare_image=spare.image,
        spare_url=spare.url,
        spare_memory=spare.memory,
        spare_cpus=spare.cpus,
    )


def held_by(record: dict[str, str], run: Run, runner: str) -> bool:
    """Whether the run holds a spare of ``runner`` (handed to it, not let go since)."""
    return record.get("warm_run") == run.id and record.get("warm_runner") == runner and bool(record.get("container"))


def let_go(ctx: Context, run: Run, record: dict[str, str]) -> None:
    """The run starts its own notebook instead: its spare goes."""
    remove(ctx, record.get("container", ""))
    ctx.vault.delete(run.deployment, NOTEBOOK_TOKEN)
    ctx.deployments.update(run.deployment, container="", warm_run="")


def fits(record: dict[str, str], settings: notebook_settings.Effective) -> bool:
    """Whether the run's notebook, with ``settings``, may be its spare: same memory and CPUs."""
    return (record.get("spare_memory"), record.get("spare_cpus")) == limits_of(settings)


def notebook(ctx: Context, run: Run, record: dict[str, str]) -> launcher.Notebook | None:
    """The run's spare as a started notebook, if it still answers; None when it does not."""
    token = ctx.vault.notebook_token(run.deployment)
    if token is None or launcher.api_status(record["spare_url"], token) is None:
        return None
    slug = ctx.slug(run.deployment)
    return launcher.Notebook(record["container"], f"booklab-{slug}", record["spare_url"], token, record["image"])


def strays(ctx: Context, runner: str, keep: str = "") -> list[str]:
    """The spare containers ``runner`` left on its Docker Engine besides ``keep`` (a handover cut off, a spare
    dropped while its engine did not answer)."""
    found = launcher.find_notebooks(ctx.docker, {"booklab.runner": runner})
    return [c.id for c in found if c.name.startswith(SPARE_PREFIX) and c.id != keep]


def remove(ctx: Context, container: str) -> None:
    """Remove a spare's container at once (nothing of anyone's is in it); nothing happens when it is gone or
    the Docker Engine does not answer (its runner removes what it left at its next start)."""
    if not container:
        return
    try:
        ctx.docker.api.remove_container(container, v=True, force=True)
    except docker.errors.NotFound:
        pass
    except (docker.errors.DockerException, requests.RequestException) as e:
        log.warning("the spare container %s could not be removed: %s", container[:12], e)
