"""Hub mode's launch (``launch/target: jupyterhub``): the image Booklab built becomes its user's named server
of the site's JupyterHub, and the server goes when the notebook ends.

An image that would run as root, or whose labels would route traffic or pass for Booklab's own, is refused
before the hub sees it, as for Booklab's own notebooks. The hub's
user is the deployment's GitLab username, lowercase (the hub logs users in with the same GitLab); one the hub
does not know is added when ``jupyterhub/create_users`` allows it, else the launch fails saying what to do.
The server's name is derived from the notebook's slug (the hub takes 30 characters at most); its start goes
with Booklab's grant for that user, server and image (:mod:`booklab.hub.grants`), and its progress is told
in the run's log. A hub that serves its users' servers on its own host (without JupyterHub's
``subdomain_host``) is refused: a repository's pages there would act as their user on the hub. The runner
stays with the server's container (DockerSpawner's, on the runner's engine) as with its own notebooks: it
sees it end, whoever stops it.
"""

from __future__ import annotations

import hashlib
import logging
from contextlib import closing
from datetime import datetime
from urllib.parse import urlsplit

from booklab.context import Context
from booklab.errors import HubError, LaunchError
from booklab.hub import grants
from booklab.phases import Phase
from booklab.pipeline import notebook_container, notebook_settings
from booklab.pipeline.hub_client import HubClient
from booklab.state.deployment import Deployment
from booklab.state.lifecycle import Run

log = logging.getLogger(__name__)

#: seconds a grant admits its server's start (the hub checks it as the start begins, seconds after it is made):
#: short, since its user reads it in the server's options and could start that server again with it meanwhile
GRANT_LIFETIME = 60


def server_name(ctx: Context, deployment_id: str) -> str:
    """The named server of the deployment's notebook: lowercase, 23 characters, as the hub's names must be."""
    return "bk-" + hashlib.sha256(ctx.slug(deployment_id).encode()).hexdigest()[:20]


def hub_user(deployment_id: str) -> str:
    """The hub's name of the deployment's user: the GitLab username, lowercase as JupyterHub keeps names."""
    return Deployment.from_id(deployment_id).user.lower()


def _refuse_what_booklab_refuses(ctx: Context, image: str) -> None:
    """As for Booklab's own notebooks: :class:`LaunchError` for an image whose labels would route traffic or
    pass for Booklab's own (its containers carry them), or that would run as root (unless
    ``notebook/allow_root``), by its configuration or by its ``/etc/passwd`` (read from a container created
    for that, never started)."""
    attrs = ctx.docker.api.inspect_image(image)
    notebook_container.refuse_labels(attrs["Config"].get("Labels") or {})
    if ctx.config.notebook_allow_root:
        return
    notebook_container.refuse_root(attrs["Config"].get("User") or "")
    probe = ctx.docker.containers.create(image, ["true"], network_disabled=True)
    try:
        notebook_container.check_before_start(probe, attrs, notebook_container.Limits(0, 0, 0))
    finally:
        probe.remove(force=True)


#: why a launch on a hub without subdomains fails
SHARED_ORIGIN = (
    "JupyterHub serves its users' servers on its own host (it has no subdomain_host): a repository's pages "
    "there could act as their user on the hub, so Booklab launches nothing on it. Its administrators can give "
    "each user a host of their own (Booklab's README: With your JupyterHub)."
)


def client(ctx: Context) -> HubClient:
    return HubClient(f"{ctx.config.jupyterhub_url.rstrip('/')}/hub/api", ctx.config.jupyterhub_api_token)


def start(ctx: Context, run: Run, image: str, limits: notebook_settings.Effective) -> tuple[str, str]:
    """Start the run's notebook as its user's named server of ``image`` within the memory and CPUs of
    ``limits``, telling its progress; its container and URL once the hub says it is ready. :class:`LaunchError`
    when the hub cannot start it."""
    deployment = Deployment.from_id(run.deployment)
    user, server = hub_user(run.deployment), server_name(ctx, run.deployment)
    _refuse_what_booklab_refuses(ctx, image)
    try:
        with closing(client(ctx)) as hub:
            _ensure_user(ctx, run, hub, user)
            _refuse_the_hubs_own_host(hub, user, server, display_name=f"{deployment.project} @ {deployment.ref}")
            # granted with the service's token, which the hub's spawner knows too
            secret = ctx.config.jupyterhub_api_token
            options = grants.options(secret, user, server, image, limits.memory, limits.cpus, GRANT_LIFETIME)
            hub.start(user, server, options)
            for event in hub.progress(user, server):
                if event.get("failed"):
                    raise LaunchError(f"JupyterHub could not start the server: {event.get('message', '')}")
                if event.get("message"):
                    ctx.lifecycle.say(run, Phase.LAUNCHING, f"JupyterHub: {event['message']}")
            started = hub.server(user, server)
    except HubError as e:
        raise LaunchError(str(e)) from None
    if started is None or not started.ready or not started.container:
        raise LaunchError("JupyterHub said the server was ready, then showed no running server of that name.")
    if not _on_a_host_of_its_own(started.url):
        raise LaunchError(SHARED_ORIGIN)
    return started.container, started.url


def _refuse_the_hubs_own_host(hub: HubClient, user: str, server: str, display_name: str) -> None:
    """Have the hub make the server, not started yet, and read its URL: when it is a path on the hub's own host
    (the hub gives a full URL, on the user's host, only with subdomains), forget it and raise
    :class:`LaunchError`."""
    placed = hub.create(user, server, display_name) or hub.server(user, server)
    if placed is None:
        raise LaunchError("JupyterHub did not keep the server Booklab asked it to make.")
    if not _on_a_host_of_its_own(placed.url):
        hub.stop(user, server)
        raise LaunchError(SHARED_ORIGIN)


def _on_a_host_of_its_own(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def stop(ctx: Context, deployment_id: str) -> str | None:
    """Ask the hub to stop the deployment's server and forget it; the server's container, as the hub told it
    (Booklab's spawner leaves it for the runner to remove; a launch stopped halfway never recorded it), or None.
    A hub that does not answer is logged (the runner removes the container it knows, which the hub then sees)."""
    user, name = hub_user(deployment_id), server_name(ctx, deployment_id)
    found = None
    with closing(client(ctx)) as hub:
        try:
            found = hub.server(user, name)
            hub.stop(user, name)
        except HubError as e:
            log.warning("JupyterHub did not stop the server of %s (%s): its container is removed", deployment_id, e)
    return found.container if found else None


def last_activity(ctx: Context, deployment_id: str) -> datetime | None:
    """When the hub last saw the deployment's server active; None when it does not say (or does not answer)."""
    with closing(client(ctx)) as hub:
        try:
            found = hub.server(hub_user(deployment_id), server_name(ctx, deployment_id))
        except HubError:
            return None
    return found.last_activity if found else None


def _ensure_user(ctx: Context, run: Run, hub: HubClient, user: str) -> None:
    if hub.has_user(user):
        return
    if not ctx.config.jupyterhub_create_users:
        raise LaunchError(
            f"JupyterHub has no user {user}, and Booklab does not add users to it (jupyterhub/create_users): "
            "log in to the hub once, or ask its administrators to add you."
        )
    hub.create_user(user)
    ctx.lifecycle.say(run, Phase.LAUNCHING, f"Added {user} to JupyterHub.")
