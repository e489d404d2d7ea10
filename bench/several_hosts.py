"""Several hosts, on the demo of two Docker hosts (:mod:`booklab.demo.several_hosts`: each host a network
namespace with its own engine, images shared through Debian's docker-registry on the first host).

``placement``: what a relaunch costs on a host that holds the commit's image (where placement sends it
when one of that host's runners is idle) and on a host that must pull it from the registry first. Rounds
alternate: a relaunch with the image on its host, then the image removed from both hosts' engines and a
relaunch that pulls it. The base image's layers are on both hosts, as on hosts that have built or pulled
any image before, so a pull fetches the repository's own layers only: the demo's sample (a few kB of
notebooks), and a project whose Dockerfile adds an environment of :data:`ENVIRONMENT_MB` MB, as
installing a project's requirements does.

``redis-idle``, ``redis-launch``, ``traefik-keys``: what docs/SCALING.md extrapolates from. Redis
commands a second with every runner idle (heartbeats and the brokers' polls), by runner; Redis commands of
one relaunch to ``ready`` and its stop (the request, the client following its log, the runner's steps,
the route), the idle rate over the same time taken out; and the keys a notebook's route adds under
Traefik's root key. ``traefik-change``: Redis commands Traefik's Redis provider spends on one route
published, with :data:`ROUTES_PRESENT` other routes in its tree (to an address that answers nothing),
against the same with none: on each key event Traefik reads its tree again, with a ``SCAN`` of the whole
Redis database, so the cost grows with every key in Redis (docs/SCALING.md).

``scale``: :attr:`~bench.settings.Settings.scale_launches` launches of
:attr:`~bench.settings.Settings.scale_projects` projects never built, asked for at once, on
:attr:`~bench.settings.Settings.scale_runners` runners over the two hosts; each notebook is stopped as
soon as it is ready (a class that opens it and leaves), so that launches beyond the runners run as
runners free. Each project's launches are of branches at one commit: one image a project.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import docker
import redis
import requests

from bench import stack as bench_stack
from bench.settings import Settings
from bench.stack import Deployed
from bench.stats import Figure, median
from booklab import config as config_module
from booklab import service
from booklab.context import Context, set_context
from booklab.demo import docker_host, samples
from booklab.demo import stack as demo_stack
from booklab.demo.hosts import DockerHost
from booklab.demo.processes import Child
from booklab.demo.several_hosts import SeveralHosts
from booklab.dispatch.app import configure
from booklab.phases import Phase
from booklab.pipeline import image_sharing, traefik_config
from tests.fixtures.gitlab import create_local_repo
from tests.fixtures.services import wait_until

log = logging.getLogger(__name__)

SAMPLE = f"demo/{samples.NAME}"
#: a project whose image adds this many MB of its own (random: no compression shrinks it)
ENVIRONMENT_MB = 200
ENVIRONMENT = "demo/environment"
REGISTRY_TIMEOUT = 120
#: Traefik's root key in Redis (booklab.pipeline.traefik_config)
ROUTE_ROOT = "traefik"
#: seconds the scale figure's launches may take in all, and between two looks at their statuses
SCALE_TIMEOUT = 900
SCALE_POLL = 0.05
#: seconds over which the idle rate of Redis commands is measured, each sample
IDLE_SAMPLE = 5.0
#: routes in Traefik's tree while a change is measured
ROUTES_PRESENT = 1000
#: seconds Traefik is given to read a change (its providers' throttle is 100 ms)
CHANGE_SETTLE = 2.0


def _environment_dockerfile(base_image: str) -> str:
    return (
        f"FROM {base_image}\n"
        f"RUN head -c {ENVIRONMENT_MB * 1_000_000} /dev/urandom > /home/jovyan/.environment\n"
        "COPY --chown=1000:1000 . /home/jovyan/\n"
    )


@dataclass
class Hosts:
    """The running demo of several hosts, with this process's context on its Redis."""

    demo: demo_stack.Demo
    starter: SeveralHosts
    ctx: Context

    @property
    def runners(self) -> list[Child]:
        return [c for c in self.starter.processes.children if c.name.startswith("runner-")]

    def host_of(self, deployed: Deployed) -> DockerHost:
        return self.starter.host_of(deployed.record["runner"])

    def deploy(self, project: str) -> Deployed:
        return bench_stack.deploy(self.ctx, project, "main", self.demo.token, 300, self.starter.processes.log_dir)

    def wait_shared(self, image: str) -> None:
        """Wait until the registry holds ``image`` (pushed after its notebook started)."""
        repository, tag = image.split("/", 1)[1].rsplit(":", 1)
        url = f"http://{self.starter.registry_host}/v2/{repository}/tags/list"
        login = self.starter.registry_login

        def shared() -> bool:
            return tag in (requests.get(url, auth=login, timeout=5).json().get("tags") or [])

        wait_until(shared, REGISTRY_TIMEOUT, image)

    def stop(self, deployed: Deployed) -> None:
        bench_stack.stop(self.ctx, self.runners, deployed.id)

    def pulled(self, deployed: Deployed) -> bool:
        """Whether the run pulled its image from the registry (its log says so)."""
        events = self.ctx.lifecycle.events.read(f"{deployed.id}#{deployed.record['run']}")
        return any(event.data.get("message", "").startswith(image_sharing.PULLING) for event in events)

    def remove_everywhere(self, image: str) -> None:
        """Remove ``image`` from every host's engine: the registry alone holds it."""
        for host in self.starter.hosts:
            try:
                host.client.images.remove(image, force=True)
            except docker.errors.ImageNotFound:
                pass


def start(exits: ExitStack, runners: int, class_projects: int, class_branches: int) -> Hosts:
    """The demo of two hosts with ``runners`` runners shared out, serving the sample, the environment project
    and ``class_projects`` projects of ``class_branches`` branches at one commit; closing ``exits`` stops it."""
    state = Path(tempfile.mkdtemp(prefix="booklab-bench-hosts-"))
    state.chmod(0o755)  # the stand-in's sshd serves git as the user git
    if not os.environ.get("BENCH_KEEP_HOSTS"):
        exits.callback(shutil.rmtree, state, ignore_errors=True)
    base_image = os.environ.get("BOOKLAB_BASE_IMAGE", docker_host.BASE_IMAGE)
    create_local_repo(state / "repos" / "environment", {"main": {"Dockerfile": _environment_dockerfile(base_image)}})
    for i in range(class_projects):
        _class_repository(state / "repos" / f"class-{i}", base_image, class_branches)
    options = demo_stack.Options(state_dir=state / "demo", port=0, runners=runners, hosts=2, repos=(state / "repos",))
    demo, starter = demo_stack.start(options, exits, SeveralHosts)
    env = {
        "BOOKLAB_REDIS_URL": demo.redis_url,
        "BOOKLAB_SECRET_KEY_FILE": str(Path(demo.state_dir) / "secret_key"),
        "BOOKLAB_GITLAB_HOST": demo.gitlab_url,
        "BOOKLAB_FQDN": demo_stack.FQDN,
        # one user plays a whole class, asking for all its launches at once
        "BOOKLAB_LIMITS_NOTEBOOKS_PER_USER": "0",
        "BOOKLAB_LIMITS_QUEUE_LENGTH": "0",
    }
    ctx = Context(config_module.load(os.devnull, environ=env))
    configure(ctx.config)
    set_context(ctx)
    exits.callback(ctx.close)
    exits.callback(set_context, None)
    return Hosts(demo, starter, ctx)


def placement(hosts: Hosts, project: str, key: str, what: str, rounds: int) -> Figure:
    warm_up = hosts.deploy(project)  # builds the commit on one host and pushes it
    image = warm_up.record["image"]
    log.info("built %s on %s in %.1f s (not counted)", image, hosts.host_of(warm_up).hostname, warm_up.elapsed)
    hosts.stop(warm_up)
    hosts.wait_shared(image)
    here: list[Deployed] = []
    pulled: list[Deployed] = []
    for i in range(rounds):
        here.append(hosts.deploy(project))
        hosts.stop(here[-1])
        hosts.remove_everywhere(image)
        pulled.append(hosts.deploy(project))
        hosts.stop(pulled[-1])
        log.info("%s %d/%d: %.2f s here, %.2f s pulled", key, i + 1, rounds, here[-1].elapsed, pulled[-1].elapsed)
    placed = [r for r in here if r.record.get("placed_on")]
    pulls = (sum(map(hosts.pulled, here)), sum(map(hosts.pulled, pulled)))
    figure = Figure(
        key,
        f"relaunch of {what} on another host, pulling its image from the registry: request -> `ready`",
        "s",
        [r.elapsed for r in pulled],
        floor=[r.elapsed for r in here],
        floor_title="the same relaunch on a host holding the image (placement's choice)",
    )
    saved = median([r.elapsed for r in pulled]) - median([r.elapsed for r in here])
    figure.notes.append(
        f"Placement saves {saved:.2f} s a relaunch of {what} (medians) by sending it to an idle runner of a host "
        f"that holds the image; {len(placed)} of {len(here)} relaunches with the image on a host went there by "
        "placement, the others were taken by that host's runner from the shared queue. Pulls, by the runs' logs: "
        f"{pulls[0]} of {len(here)} relaunches on a host holding the image, {pulls[1]} of {len(pulled)} after it "
        f"was removed from both hosts. Two hosts, {len(hosts.runners)} runners, images pulled over a Linux bridge "
        "from Debian's docker-registry on the first host, with the base image's layers already on both."
    )
    return figure


def _commands(client: redis.Redis) -> int:
    return int(client.info("stats")["total_commands_processed"])


def costs(hosts: Hosts, rounds: int) -> list[Figure]:
    client, runners = hosts.ctx.redis, len(hosts.runners)
    idle: list[float] = []
    for _ in range(rounds):
        before, started = _commands(client), time.monotonic()
        time.sleep(IDLE_SAMPLE)
        idle.append((_commands(client) - before - 2) / (time.monotonic() - started) / runners)  # 2: INFO itself
    rate = median(idle) * runners
    launch: list[float] = []
    keys: list[float] = []
    for _ in range(rounds):
        before, started = _commands(client), time.monotonic()
        deployed = hosts.deploy(SAMPLE)
        route = f"{ROUTE_ROOT}/*{deployed.record['slug']}*"
        keys.append(sum(1 for _ in hosts.ctx.route_tree.scan_iter(route, count=1000)))
        hosts.stop(deployed)
        spent = _commands(client) - before - 1
        launch.append(spent - rate * (time.monotonic() - started))
    return [
        *traefik_change(hosts, rounds, rate),
        Figure("redis-idle", f"Redis commands a second, every runner idle ({runners} runners), by runner", "/s", idle),
        Figure(
            "redis-launch", "Redis commands of one relaunch to `ready` and its stop, idle traffic taken out", "", launch
        ),
        Figure("traefik-keys", "keys a notebook's route adds to Traefik's Redis tree", "", keys),
    ]


def _route_keys(name: str) -> dict[str, str]:
    """The keys of a route of Traefik's that goes nowhere."""
    return {
        f"{ROUTE_ROOT}/http/routers/{name}/rule": f"Host(`{name}.bench.invalid`)",
        f"{ROUTE_ROOT}/http/routers/{name}/service": name,
        f"{ROUTE_ROOT}/http/routers/{name}/entryPoints/0": traefik_config.ENTRYPOINT,
        f"{ROUTE_ROOT}/http/services/{name}/loadBalancer/servers/0/url": "http://127.0.0.1:9",
    }


def _commands_of_a_change(client: redis.Redis, tree: redis.Redis, name: str, idle_rate: float) -> float:
    """Redis commands (of the whole server, ``client``) in the :data:`CHANGE_SETTLE` s after one route is published
    in Traefik's database ``tree``, but its own and idle traffic."""
    keys = _route_keys(name)
    before, started = _commands(client), time.monotonic()
    tree.mset(keys)
    time.sleep(CHANGE_SETTLE)
    spent = _commands(client) - before - 2
    tree.delete(*keys)
    time.sleep(CHANGE_SETTLE)
    return spent - idle_rate * (time.monotonic() - started - CHANGE_SETTLE)


def traefik_change(hosts: Hosts, rounds: int, idle_rate: float) -> list[Figure]:
    client, tree = hosts.ctx.redis, hosts.ctx.route_tree
    alone = [_commands_of_a_change(client, tree, f"bench-change-{i}", idle_rate) for i in range(rounds)]
    present = {}
    for i in range(ROUTES_PRESENT):
        present |= _route_keys(f"bench-present-{i}")
    tree.mset(present)
    time.sleep(CHANGE_SETTLE)
    crowded = [_commands_of_a_change(client, tree, f"bench-change-{i}", idle_rate) for i in range(rounds)]
    tree.delete(*present)
    keys = len(present)
    return [
        Figure(
            "traefik-change",
            f"Redis commands of one route change, {ROUTES_PRESENT} routes ({keys} keys) in Traefik's tree",
            "",
            crowded,
            floor=alone,
            floor_title="the same, no other route in the tree",
        )
    ]


def _class_repository(directory: Path, base_image: str, branches: int) -> None:
    """A git repository at ``directory`` whose ``branches`` branches are at one commit."""
    create_local_repo(
        directory, {"main": {"Dockerfile": f"FROM {base_image}\nCOPY --chown=1000:1000 . /home/jovyan/\n"}}
    )
    for i in range(1, branches):
        subprocess.run(["git", "-C", str(directory), "branch", f"class-{i}"], check=True)


def scale(hosts: Hosts, settings: Settings) -> list[Figure]:
    ctx = hosts.ctx
    per_project = settings.scale_launches // settings.scale_projects
    launches = [
        (f"demo/class-{p}", "main" if b == 0 else f"class-{b}")
        for b in range(per_project)
        for p in range(settings.scale_projects)
    ]
    requests_ = [service.request_deployment(ctx, project, ref, hosts.demo.token) for project, ref in launches]
    waiting = {r.id for r in requests_}
    ready: dict[str, float] = {}
    queued: dict[str, float] = {}  # request -> a runner takes it
    ended: dict[str, str] = {}
    deadline = time.monotonic() + SCALE_TIMEOUT
    while waiting and time.monotonic() < deadline:
        for deployment_id in list(waiting):
            status = ctx.deployments.status(deployment_id)
            if status is Phase.READY:
                record = ctx.deployments.record(deployment_id)
                requested, started = float(record["requested_at"]), float(record["started_at"])
                ready[deployment_id] = float(record["ready_at"]) - requested
                queued[deployment_id] = started - requested
                service.stop(ctx, deployment_id)  # the class leaves: its runner takes the next launch
                waiting.discard(deployment_id)
            elif status.is_final:
                ended[deployment_id] = status.value
                waiting.discard(deployment_id)
        time.sleep(SCALE_POLL)
    logs = [[event.data.get("message", "") for event in ctx.lifecycle.events.read(r.run.id)] for r in requests_]

    def runs_saying(start: str) -> int:
        return sum(any(message.startswith(start) for message in log) for log in logs)

    builds, waited = runs_saying("Building image"), runs_saying("Another launch is building")
    pulls = runs_saying(image_sharing.PULLING)
    served_by = Counter(hosts.starter.host_of(ctx.deployments.record(r.id)["runner"]).hostname for r in requests_)
    figure = Figure(
        "scale",
        f"{len(launches)} launches of {settings.scale_projects} projects at once, {settings.scale_runners} runners "
        "over 2 hosts: request -> `ready`",
        "s",
        list(ready.values()),
        target=f"all ready, {settings.scale_projects} builds",
        meets=lambda f: len(ready) == len(launches) and builds == settings.scale_projects,
        show_p99=True,
    )
    figure.notes.append(
        f"{len(ready)} of {len(launches)} ready (not ready: {len(waiting)} still waiting after {SCALE_TIMEOUT} s, "
        f"{len(ended)} ended otherwise: {sorted(set(ended.values())) or 'none'}); {builds} builds for "
        f"{settings.scale_projects} images (one launch of each commit builds it, the others wait for its image: "
        f"{waited} waited, {pulls} pulled); "
        f"served by host: {dict(sorted(served_by.items()))}. Each notebook is stopped once ready, so launches beyond "
        f"the {settings.scale_runners} runners wait for one to free: the slowest include that wait (request -> a "
        f"runner takes it, median {median(list(queued.values())):.1f} s, slowest {max(queued.values(), default=0):.1f}"
        f" s). All on the machine below: every build, pull, push and Jupyter start shares its cores. Each project's "
        f"{per_project} launches are of branches at one commit, by one user."
    )
    return [figure]


def run(local: bench_stack.Stack, settings: Settings) -> list[Figure]:
    with ExitStack() as exits:
        exits.callback(set_context, local.ctx)  # the other figures' stack, once this one is gone
        exits.callback(configure, local.ctx.config)
        hosts = start(
            exits,
            runners=settings.scale_runners,
            class_projects=settings.scale_projects,
            class_branches=settings.scale_launches // settings.scale_projects,
        )
        return [
            *scale(hosts, settings),
            placement(hosts, SAMPLE, "placement", "the demo's sample (kB of its own)", settings.rounds),
            placement(
                hosts, ENVIRONMENT, "placement-environment", f"a project adding {ENVIRONMENT_MB} MB", settings.rounds
            ),
            *costs(hosts, settings.rounds),
        ]
