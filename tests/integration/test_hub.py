"""Hub mode against a real JupyterHub (docs/jupyterhub_config.py, DockerSpawner, configurable-http-proxy, GitLab
login against the stand-in): Booklab, the hub's service, starts a user's named server of an image it grants,
follows its start, sees its container, and stops it; the hub starts no image without Booklab's grant for
exactly that user, server and image, whoever asks."""

from __future__ import annotations

import secrets

import pytest
import redis
import requests

from booklab import service
from booklab.errors import HubError
from booklab.hub import grants
from booklab.phases import Phase
from booklab.pipeline import hub_launch
from booklab.state import schema
from tests.fixtures.gitlab import create_local_repo
from tests.fixtures.hub import Site
from tests.fixtures.pipeline import MAINTAINER, events_of, messages, notebook_repo_files, run_to_end
from tests.fixtures.services import wait_until
from tests.integration.test_save_back import stand_in_git

pytestmark = pytest.mark.beside  # make test runs it in its second session (tests/lanes.py)

DISPLAY = "demo/notebooks @ main"


@pytest.fixture
def web_env(web_env, web_port):
    """Booklab's web tier at an address of its own (web/url), as the hub's link to it needs."""
    return {**web_env, "BOOKLAB_WEB_URL": f"http://127.0.0.1:{web_port}"}


MIB = 1024**2


def options(hub, user: str, server: str, image: str, granted_to: tuple[str, str, str] | None = None) -> dict:
    """The options of a start of ``image`` within 256 MiB and half a CPU, with Booklab's grant (of another user,
    server or image: ``granted_to``)."""
    user_, server_, image_ = granted_to or (user, server, image)
    return {**grants.options(hub.token, user_, server_, image_, 256 * MIB, 0.5, 600), "image": image}


def cpus(host_config: dict) -> float:
    """The CPUs a container may use (DockerSpawner sets them as a quota per period)."""
    return host_config["CpuQuota"] / host_config["CpuPeriod"]


def test_booklab_starts_a_users_named_server_of_an_image_it_grants_follows_it_and_stops_it_leaving_its_container(
    hub, gitlab, docker_engine, base_image
):
    gitlab.add_user("alice")
    client = hub.client()
    assert not client.has_user("alice")
    client.create_user("alice")
    assert client.has_user("alice")
    server = f"bk-{secrets.token_hex(3)}"
    client.start("alice", server, options(hub, "alice", server, base_image), DISPLAY)
    events = list(client.progress("alice", server))
    assert events[-1].get("ready") is True, events
    started = client.server("alice", server)
    assert started.ready and started.url == f"{hub.user_host('alice')}/user/alice/{server}/"
    container = docker_engine.containers.get(started.container)
    assert container.image.tags == [base_image]
    assert container.attrs["HostConfig"]["Memory"] == 256 * MIB and cpus(container.attrs["HostConfig"]) == 0.5
    assert container.attrs["HostConfig"]["CapDrop"] == ["ALL"]
    assert container.attrs["HostConfig"]["SecurityOpt"] == ["no-new-privileges"]
    assert list(container.attrs["NetworkSettings"]["Networks"]) == [hub.network]
    # served through the hub's proxy, behind the hub's login
    through_proxy = requests.get(f"{started.url}lab", allow_redirects=False, timeout=10)
    assert through_proxy.status_code == 302 and "/hub/api/oauth2/authorize" in through_proxy.headers["Location"]

    client.stop("alice", server)
    assert client.server("alice", server) is None
    # its container stays, stopped, for Booklab's runner to save from and remove; a new start never reuses it
    assert docker_engine.containers.get(started.container).status == "exited"
    client.start("alice", server, options(hub, "alice", server, base_image), DISPLAY)
    assert list(client.progress("alice", server))[-1].get("ready") is True
    again = client.server("alice", server)
    assert again.container != started.container
    assert docker_engine.containers.list(all=True, filters={"id": started.container}) == []
    # stopped from the hub's side, not forgotten: its API token goes; it starts again only with a new grant,
    # never from the hub's pages (no image), and its container waits for Booklab
    api_token = api_token_of(docker_engine.containers.get(again.container))
    assert requests.get(f"{hub.api_url}/user", headers={"Authorization": f"token {api_token}"}, timeout=10).ok
    stop_in_the_hub(hub, "alice", server)
    assert (
        requests.get(f"{hub.api_url}/user", headers={"Authorization": f"token {api_token}"}, timeout=10).status_code
        == 403
    )
    with pytest.raises(HubError, match="403.*launch it again from Booklab"):
        client.start("alice", server, {})
    assert docker_engine.containers.get(again.container).status == "exited"
    client.stop("alice", server)
    docker_engine.containers.get(again.container).remove()
    client.stop("alice", server)  # nothing to stop: nothing said

    # a server of the site's own (started from the hub's pages: no image): the site's image and limits, and
    # removed at its stop as the site says
    client.start("alice", "mine", {})
    assert list(client.progress("alice", "mine"))[-1].get("ready") is True
    plain = client.server("alice", "mine")
    assert docker_engine.containers.get(plain.container).attrs["HostConfig"]["Memory"] == 2048 * MIB
    stop_in_the_hub(hub, "alice", "mine")
    assert docker_engine.containers.list(all=True, filters={"id": plain.container}) == []
    client.stop("alice", "mine")


def api_token_of(container) -> str:
    """The hub's API token a server's container was given."""
    (token,) = [e.split("=", 1)[1] for e in container.attrs["Config"]["Env"] if e.startswith("JUPYTERHUB_API_TOKEN=")]
    return token


def stop_in_the_hub(hub, user: str, server: str) -> None:
    """Stop the server as the hub's admin page or culler does (the hub keeps its record of it)."""
    service_token = {"Authorization": f"token {hub.token}"}
    requests.delete(
        f"{hub.api_url}/users/{user}/servers/{server}", headers=service_token, timeout=30
    ).raise_for_status()
    wait_until(lambda: not hub.client().server(user, server).ready, 30, "the hub to stop the server")


def test_booklabs_link_in_the_hubs_services_menu_leads_to_booklab(hub, web_server):
    """The hub proxies /services/booklab/ to Booklab: Booklab sends the user home."""
    linked = requests.get(hub.service_url("booklab"), allow_redirects=False, timeout=10)
    assert linked.status_code == 302 and linked.headers["Location"] == f"{web_server}/"


@pytest.mark.parametrize(
    "granted_to", [("bob", "SERVER", "IMAGE"), ("alice", "bk-other", "IMAGE"), ("alice", "SERVER", "other/image:1")]
)
def test_the_hub_starts_no_image_without_booklabs_grant_for_that_user_server_and_image(
    hub, gitlab, docker_engine, base_image, granted_to
):
    gitlab.add_user("alice")
    client = hub.client()
    client.create_user("alice")
    server = f"bk-{secrets.token_hex(3)}"
    granted_to = tuple({"SERVER": server, "IMAGE": base_image}.get(part, part) for part in granted_to)
    with pytest.raises(HubError, match="403.*has not granted this image"):
        client.start("alice", server, options(hub, "alice", server, base_image, granted_to))
    # nor when the user asks the hub herself, with a token of her own
    own = hub.user_token("alice")
    asked = requests.post(
        f"{hub.api_url}/users/alice/servers/{server}",
        headers={"Authorization": f"token {own}"},
        json={"user_options": {"image": base_image, grants.OPTION: "1.forged"}},
        timeout=30,
    )
    assert asked.status_code == 403 and "has not granted this image" in asked.json()["message"]
    assert "allowed list" not in asked.text and base_image not in asked.json()["message"]
    assert docker_engine.containers.list(all=True, filters={"network": hub.network}) == []


def test_a_launch_in_hub_mode_ends_as_its_users_server_of_the_hub_and_a_stop_from_either_side_frees_the_runner(
    hub, ctx, runners, alice, project, docker_engine
):
    (runner,) = runners(1, **hub.booklab_env(), BOOKLAB_NOTEBOOK_MEMORY="384m", BOOKLAB_NOTEBOOK_CPUS="0.75")
    client = hub.client()
    request = service.request_deployment(ctx, project, "main", alice.token)
    events = run_to_end(ctx, request.run)
    told = messages(events)
    assert events[-1]["phase"] == "ready", told
    assert "Added alice to JupyterHub." in told and "JupyterHub: Server ready at" in told
    server = hub_launch.server_name(ctx, request.id)
    started = client.server("alice", server)
    assert started.ready and events[-1]["url"] == f"{hub.user_host('alice')}/user/alice/{server}/"
    assert ctx.deployments.record(request.id)["container"] == started.container
    limits = docker_engine.containers.get(started.container).attrs["HostConfig"]
    assert limits["Memory"] == 384 * MIB and cpus(limits) == 0.75  # Booklab's, not the site's
    assert events[-1].get("token") is None  # the hub's login guards it, not a token of Booklab's

    service.stop(ctx, request.id)
    wait_until(lambda: ctx.deployments.status(request.id) is Phase.STOPPED, 60, "the notebook to stop")
    assert client.server("alice", server) is None
    wait_until(lambda: not ctx.runners.held(runner.name), 10, "the runner to be free")

    # stopped from the hub's side (its admin page, its culler): the deployment ends, the runner is free
    again = service.request_deployment(ctx, project, "main", alice.token)
    assert run_to_end(ctx, again.run)[-1]["phase"] == "ready"
    client.stop("alice", server)
    wait_until(lambda: ctx.deployments.status(again.id).is_final, 60, "the deployment to end")
    wait_until(lambda: not ctx.runners.held(runner.name), 10, "the runner to be free")


def test_a_server_its_user_stops_in_the_hub_is_saved_first_and_then_frees_the_runner(
    hub, ctx, runners, gitlab, alice, project, docker_engine
):
    """The hub stops the server (here its user's own Stop, with a token of hers); its container stays for
    Booklab, which saves the work to a branch, then removes the container and the hub's record of the server."""
    (runner,) = runners(1, **hub.booklab_env())
    request = service.request_deployment(ctx, project, "main", alice.token, save_back=True)
    ready = run_to_end(ctx, request.run)[-1]
    assert ready["phase"] == "ready"
    own = {"Authorization": f"token {hub.user_token('alice')}"}
    draft = {"type": "file", "format": "text", "content": "written in the hub\n"}
    written = requests.put(f"{ready['url']}api/contents/draft.md", headers=own, json=draft, timeout=10)
    assert written.status_code == 201, written.text
    server, container = hub_launch.server_name(ctx, request.id), ctx.deployments.record(request.id)["container"]

    stopped = requests.delete(f"{hub.api_url}/users/alice/servers/{server}", headers=own, timeout=30)
    assert stopped.status_code in (202, 204), stopped.text
    wait_until(lambda: ctx.deployments.status(request.id) is Phase.STOPPED, 60, "the notebook to stop")

    final = events_of(ctx, request.id)[-1].data
    assert "The notebook server ended" in final["message"] and "Saved your changes to branch" in final["message"]
    branch = ctx.deployments.record(request.id)["saved_branch"]
    assert stand_in_git(gitlab, project, "show", f"{branch}:draft.md") == "written in the hub\n"
    assert docker_engine.containers.list(all=True, filters={"id": container}) == []
    assert hub.client().server("alice", server) is None
    wait_until(lambda: not ctx.runners.held(runner.name), 10, "the runner to be free")


def test_a_stop_while_the_hub_starts_the_server_leaves_no_server_nor_container(
    hub, ctx, runners, alice, project, docker_engine
):
    """The launch ends without recording the server's container: the hub names it, and it goes too."""
    (runner,) = runners(1, **hub.booklab_env())
    request = service.request_deployment(ctx, project, "main", alice.token)
    server, client = hub_launch.server_name(ctx, request.id), hub.client()
    wait_until(lambda: client.has_user("alice") and client.server("alice", server), 240, "the hub to start it")
    service.stop(ctx, request.id)
    wait_until(lambda: ctx.deployments.status(request.id) is Phase.STOPPED, 60, "the notebook to stop")
    wait_until(lambda: not ctx.runners.held(runner.name), 10, "the runner to be free")
    assert client.server("alice", server) is None
    assert docker_engine.containers.list(all=True, filters={"network": hub.network}) == []


def test_a_server_idle_as_the_hub_sees_it_is_culled_as_booklabs_own_notebooks_are(hub, ctx, runners, alice, project):
    (runner,) = runners(1, **hub.booklab_env(), BOOKLAB_NOTEBOOK_IDLE_TIMEOUT="4")
    request = service.request_deployment(ctx, project, "main", alice.token)
    assert run_to_end(ctx, request.run)[-1]["phase"] == "ready"
    wait_until(lambda: ctx.deployments.status(request.id) is Phase.STOPPED, 60, "the idle server to be culled")
    assert "The notebook was idle for more than 4 s." in events_of(ctx, request.id)[-1].data["message"]
    assert hub.client().server("alice", hub_launch.server_name(ctx, request.id)) is None
    wait_until(lambda: not ctx.runners.held(runner.name), 10, "the runner to be free")


@pytest.mark.parametrize("hub", [Site(adds_users=False)], indirect=True)
def test_a_launch_for_a_user_the_hub_does_not_know_fails_saying_what_to_do(hub, ctx, runners, alice, project):
    runners(1, **hub.booklab_env())
    request = service.request_deployment(ctx, project, "main", alice.token)
    events = run_to_end(ctx, request.run)
    assert events[-1]["phase"] == "failed"
    assert "JupyterHub has no user alice" in events[-1]["message"] and "log in to the hub once" in events[-1]["message"]
    assert not hub.client().has_user("alice")
    with pytest.raises(HubError, match="403"):  # nor could it
        hub.client().create_user("alice")


def test_an_image_that_would_run_as_root_or_carries_routing_labels_is_never_granted(
    hub, ctx, runners, gitlab, base_image, tmp_path
):
    """As for Booklab's own notebooks, whatever the hub's spawner would do with it; and a GitLab user whose name
    has capitals is the hub's lowercase user."""
    carol = gitlab.add_user("Carol")
    labelled = "LABEL traefik.http.routers.x.rule=Host(`booklab.localhost`) booklab.runner=runner-1@test\n"
    for path, extra in (("lab/rooted", "USER root\n"), ("lab/labelled", labelled), ("lab/plain", "")):
        gitlab.add_project(path, members={"Carol": MAINTAINER})
        gitlab.push(path, create_local_repo(tmp_path / path, {"main": notebook_repo_files(base_image, extra)}))
    runners(1, **hub.booklab_env())
    rooted = service.request_deployment(ctx, "lab/rooted", "main", carol.token)
    events = run_to_end(ctx, rooted.run)
    assert events[-1]["phase"] == "failed" and "The image runs as root" in events[-1]["message"]
    labelled_run = service.request_deployment(ctx, "lab/labelled", "main", carol.token)
    told = run_to_end(ctx, labelled_run.run)[-1]
    assert told["phase"] == "failed" and "The image carries Traefik labels" in told["message"]
    assert not hub.client().has_user("carol")  # nothing was asked of the hub

    plain = service.request_deployment(ctx, "lab/plain", "main", carol.token)
    events = run_to_end(ctx, plain.run)
    assert events[-1]["phase"] == "ready", messages(events)
    assert events[-1]["url"].startswith(f"{hub.user_host('carol')}/user/carol/")
    service.stop(ctx, plain.id)
    wait_until(lambda: ctx.deployments.status(plain.id) is Phase.STOPPED, 60, "the notebook to stop")
    assert hub.client().server("carol", hub_launch.server_name(ctx, plain.id)) is None


@pytest.mark.parametrize("hub", [Site(subdomains=False)], indirect=True)
def test_a_hub_that_serves_its_users_servers_on_its_own_host_is_refused(
    hub, ctx, runners, alice, project, docker_engine
):
    """There a repository's pages would act as their user on the hub: the launch fails, and leaves no server."""
    (runner,) = runners(1, **hub.booklab_env())
    request = service.request_deployment(ctx, project, "main", alice.token)
    events = run_to_end(ctx, request.run)
    assert events[-1]["phase"] == "failed" and hub_launch.SHARED_ORIGIN in events[-1]["message"]
    assert hub.client().server("alice", hub_launch.server_name(ctx, request.id)) is None
    assert docker_engine.containers.list(all=True, filters={"network": hub.network}) == []  # nothing started
    wait_until(lambda: not ctx.runners.held(runner.name), 10, "the runner to be free")


@pytest.mark.parametrize("hub", [Site(proxy="traefik")], indirect=True)
def test_the_hubs_proxy_can_be_booklabs_traefik_serving_the_hubs_routes_on_their_own_entrypoint(
    hub, ctx, runners, alice, project, traefik
):
    """docs/jupyterhub_config.py with HUB_PROXY=traefik: the hub writes its routes into Booklab's routes
    database, and Booklab's Traefik serves them on the hub's entrypoint only, never on Booklab's."""
    runners(1, **hub.booklab_env())
    request = service.request_deployment(ctx, project, "main", alice.token)
    events = run_to_end(ctx, request.run)
    assert events[-1]["phase"] == "ready", messages(events)
    url = events[-1]["url"]
    assert url.startswith(f"http://alice.hub.localhost:{traefik.hub_port}/user/alice/bk-")
    through_traefik = requests.get(f"{url}lab", allow_redirects=False, timeout=10)
    assert through_traefik.status_code == 302 and "/hub/api/oauth2/authorize" in through_traefik.headers["Location"]
    path = url.split(str(traefik.hub_port), 1)[1]
    on_booklabs = {"Host": f"alice.hub.localhost:{traefik.port}"}
    assert requests.get(f"{traefik.entrypoint_url}{path}lab", headers=on_booklabs, timeout=10).status_code == 404

    # the hub's login to Redis reaches the routes' keys alone: not Booklab's state, nor its runners' queue
    with redis.Redis.from_url(hub.site.traefik[0], db=ctx.config.routes_redis_db) as as_the_hub:
        assert any(as_the_hub.scan_iter("traefik/http/routers/*"))
        for key in (schema.QUEUE, f"deployment:{request.id}"):
            with pytest.raises(redis.exceptions.NoPermissionError):
                as_the_hub.exists(key)

    service.stop(ctx, request.id)
    wait_until(lambda: ctx.deployments.status(request.id) is Phase.STOPPED, 60, "the notebook to stop")
    # the server's route is gone: the hub itself answers there, sending the user to its page of the server
    wait_until(
        lambda: (
            requests.get(f"{url}lab", allow_redirects=False, timeout=10)
            .headers["Location"]
            .startswith(f"{hub.url}/hub/user/alice/")
        ),
        10,
        "Traefik to drop the server's route",
    )
