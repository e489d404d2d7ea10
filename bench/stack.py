"""The local stack the benchmarks measure, started as ``make demo`` and the test bed start
theirs: the Docker Engine (dockerd when none answers; stopped at the end), the local base
image, a Docker network of the run's own, Redis (``tests.fixtures.services.start_redis``),
Traefik (docker and Redis providers, flags from :mod:`booklab.pipeline.traefik_config` as in
``tests/fixtures/traefik.py``), the web tier served by gunicorn (``booklab web``, the
production defaults: 2 gthread workers), real runner processes (``booklab runner``) and
the GitLab stand-in (in this process) serving one Dockerfile repository that builds
offline.

Routes are published as docker labels with forward-auth to the web tier, as in
``docker-compose.yml``. Every part registers its undoing on an
:class:`~contextlib.ExitStack`; the images the run built (``booklab-bench/*``) are removed
at the end, the base image stays.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path

import docker
import redis
import requests

from booklab import config as config_module
from booklab import service
from booklab.context import Context, set_context
from booklab.demo import docker_host
from booklab.demo.processes import Child, Processes
from booklab.dispatch.app import configure
from booklab.phases import Phase
from booklab.pipeline import traefik_config
from booklab.pipeline.routes.names import route_label
from booklab.state import schema
from gitlab_standin.server import GitLabStandIn
from gitlab_standin.store import MAINTAINER, User
from tests.fixtures.gitlab import GIT_IDENTITY, create_local_repo
from tests.fixtures.pipeline import notebook_repo_files
from tests.fixtures.services import BASE_IMAGE, ROOT, free_port, start_redis, stop_process, wait_until

log = logging.getLogger(__name__)

IMAGE_PREFIX = "booklab-bench"
PROJECT = "bench/notebooks"
OWNER = "alice"
START_TIMEOUT = 60
#: what a runner logs once it consumes the shared queue again (booklab.runner.worker.Supervisor)
FREE_LINE = "is free and takes deployments again"
#: after that line, the runner's next BRPOP includes the shared queue (kombu polls every second)
FREE_SETTLE = 1.2


@dataclass(frozen=True)
class Deployed:
    """A deployment followed to ``ready``."""

    id: str
    #: seconds from the request to the ``ready`` event
    elapsed: float
    record: dict[str, str]
    #: seconds from the request to the first event of each phase, as the client saw them
    phases: dict[str, float]
    #: when the runner started the container (time.time())
    container_started: float

    def split(self) -> tuple[float, float, float]:
        """By the record's timestamps: (requested -> first step running, first step ->
        container started, container started -> ready), in seconds."""
        requested, started, ready = (float(self.record[k]) for k in ("requested_at", "started_at", "ready_at"))
        container = self.container_started or started
        return started - requested, container - started, ready - container


@dataclass
class Stack:
    state: Path
    processes: Processes
    docker: docker.DockerClient
    redis_url: str
    gitlab: GitLabStandIn
    network: str
    traefik_port: int
    traefik_api: str
    web_url: str
    web: Child
    runners: list[Child]
    env: dict[str, str]
    ctx: Context
    owner: User
    repo: Path
    base_image: str
    engine_version: str = "?"
    #: the image of main's commit, once :func:`ensure_image` built it
    main_image: str = ""
    #: runners a benchmark started besides the stack's own (:func:`add_runners`)
    extra_runners: list[Child] = field(default_factory=list)

    @property
    def redis(self) -> redis.Redis:
        return self.ctx.redis

    def config(self, **overrides: str) -> config_module.Config:
        """Booklab's configuration of this stack, with ``BOOKLAB_*`` overrides."""
        return config_module.load(os.devnull, environ={**self.env, **overrides})

    def commit(self, branch: str, files: dict[str, str]) -> None:
        """Commit ``files`` on ``branch`` of the local repository (made from ``main`` when
        new) and push every branch to the stand-in's project."""
        env = {**os.environ, **GIT_IDENTITY}

        def run(*args: str) -> None:
            subprocess.run(
                ["git", *args], cwd=self.repo, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )

        existing = subprocess.run(
            ["git", "branch", "--list", branch], cwd=self.repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        run("checkout", "--quiet", *([branch] if existing else ["-b", branch, "main"]))
        for name, content in files.items():
            (self.repo / name).write_text(content)
        run("add", "--all")
        run("commit", "--quiet", "-m", f"bench: {', '.join(files)}")
        self.gitlab.push(PROJECT, self.repo)

    def free_counts(self) -> dict[str, int]:
        return free_counts(self.runners)

    def wait_free(self, since: dict[str, int] | None = None, timeout: float = 60) -> None:
        wait_free(self.redis, self.runners, since, timeout)

    def runner_name(self, runner: Child) -> str:
        return runner_name(runner)

    def deploy(self, ref: str, token: str | None = None, timeout: float = 300) -> Deployed:
        """Request ``ref`` of the project and follow it to ``ready`` (see :func:`deploy`)."""
        return deploy(self.ctx, PROJECT, ref, token or self.owner.token, timeout, self.processes.log_dir)

    def stop(self, deployment_id: str, timeout: float = 60) -> None:
        stop(self.ctx, self.runners, deployment_id, timeout)


def runner_name(runner: Child) -> str:
    return runner.process.args[-1]


def free_count(runner: Child) -> int:
    return runner.log.read_text(errors="replace").count(FREE_LINE)


def free_counts(runners: list[Child]) -> dict[str, int]:
    return {runner.name: free_count(runner) for runner in runners}


def wait_free(
    client: redis.Redis, runners: list[Child], since: dict[str, int] | None = None, timeout: float = 60
) -> None:
    """Wait until every runner holds nothing and consumes the shared queue again (it logged it more
    often than in ``since``, runner name -> count), then a moment more."""
    for runner in runners:
        name = runner_name(runner)
        key, seen = schema.runner(name), (since or {}).get(runner.name, 0)
        wait_until(lambda k=key: not client.exists(k), timeout, f"{name} to be free")
        if since is not None:
            wait_until(lambda r=runner, n=seen: free_count(r) > n, timeout, f"{name} to take deployments again")
    time.sleep(FREE_SETTLE)


def deploy(ctx: Context, project: str, ref: str, token: str, timeout: float, logs: Path) -> Deployed:
    """Request ``ref`` of ``project`` and follow it to its end, as a client of the service does; raises
    unless it ends ``ready``."""
    started = time.monotonic()
    request = service.request_deployment(ctx, project, ref, token)
    last: dict = {}
    phases: dict[str, float] = {}
    for _, event in service.follow(ctx, request.run, timeout=timeout):
        last = event
        phases.setdefault(event["phase"], time.monotonic() - started)
    elapsed = time.monotonic() - started
    if last.get("phase") != Phase.READY.value:
        raise RuntimeError(f"{request.id} ended {last.get('phase')!r}: {last.get('message')!r}; runner logs in {logs}")
    record = ctx.deployments.record(request.id)
    held = ctx.runners.held(record["runner"])
    return Deployed(request.id, elapsed, record, phases, float(held.get("started_at") or 0))


def stop(ctx: Context, runners: list[Child], deployment_id: str, timeout: float = 60) -> None:
    """Stop a deployment and wait until its runner takes deployments again."""
    serving = ctx.deployments.record(deployment_id).get("runner")
    runners = [runner for runner in runners if runner_name(runner) == serving] or runners
    before = free_counts(runners)
    service.stop(ctx, deployment_id)
    wait_until(
        lambda: ctx.deployments.status(deployment_id) in (Phase.STOPPED, Phase.FAILED),
        timeout,
        f"{deployment_id} to stop",
    )
    wait_free(ctx.redis, runners, before, timeout)


def _engine_version(client: docker.DockerClient) -> str:
    try:
        return client.version().get("Version", "?")
    except docker.errors.DockerException:
        return "?"


def _remove_images(client: docker.DockerClient) -> None:
    for image in client.images.list(name=f"{IMAGE_PREFIX}/*"):
        try:
            client.images.remove(image.id, force=True)
        except docker.errors.APIError as e:
            log.warning("could not remove %s: %s", image.tags, e)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def start(exits: ExitStack, runners: int = 1, keep_state: bool = False) -> Stack:
    """Start the stack; closing ``exits`` stops it all and removes what the run built."""
    state = Path(tempfile.mkdtemp(prefix="booklab-bench-"))
    state.chmod(0o755)  # the stand-in's sshd serves git as the user git
    if not keep_state:
        exits.callback(subprocess.run, ["rm", "-rf", str(state)], check=False)
    logs = state / "logs"
    logs.mkdir(mode=0o700)
    processes = Processes(logs)
    log.info("state and logs in %s", state)

    dockerd = docker_host.start_engine(processes)
    if dockerd is not None:
        exits.callback(processes.stop, [dockerd])
    client = docker.from_env()
    exits.callback(client.close)
    base_image = os.environ.get("BOOKLAB_BASE_IMAGE", BASE_IMAGE)
    docker_host.ensure_base_image(client, base_image, logs / "base-image.log")
    exits.callback(_remove_images, client)
    suffix = secrets.token_hex(3)
    network = f"booklab-bench-{suffix}"
    runner_names = [f"runner-{i}@bench-{suffix}" for i in range(1, runners + 1)]
    docker_host.create_network(client, network)
    exits.callback(docker_host.remove_network, client, network, runner_names)

    (state / "redis").mkdir()
    redis_proc, redis_url = start_redis(state / "redis")
    exits.callback(stop_process, redis_proc)

    # the stand-in runs threads in this process: every child is started before it (see
    # booklab.demo.processes, whose children run code between fork and exec)
    gitlab_port = free_port()
    gitlab = GitLabStandIn(state / "gitlab", http_port=gitlab_port, ssh_port=free_port())
    gitlab_url = f"http://127.0.0.1:{gitlab_port}"
    owner = gitlab.add_user(OWNER)
    traefik_port, api_port, web_port = free_port(), free_port(), free_port()
    web_url = f"http://127.0.0.1:{web_port}"
    client_id, client_secret = gitlab.add_oauth_app([f"{web_url}/login/gitlab/authorized"])

    traefik_api = f"http://127.0.0.1:{api_port}"
    secret_key = secrets.token_urlsafe(32)
    traefik = processes.start(
        "traefik",
        [
            "traefik",
            *traefik_config.static_flags(
                f"127.0.0.1:{traefik_port}",
                f"127.0.0.1:{api_port}",
                docker_network=network,
                route_label=route_label(secret_key),
                redis_url=redis_url,
            ),
        ],
    )
    exits.callback(processes.stop, [traefik])

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))),
        "OAUTHLIB_INSECURE_TRANSPORT": "1",  # the stand-in and the web tier speak plain http
        "BOOKLAB_REDIS_URL": redis_url,
        "BOOKLAB_SECRET_KEY": secret_key,
        "BOOKLAB_GITLAB_HOST": gitlab_url,
        "BOOKLAB_GITLAB_CONSUMER_KEY": client_id,
        "BOOKLAB_GITLAB_CONSUMER_SECRET": client_secret,
        "BOOKLAB_BUILD_IMAGE_PREFIX": IMAGE_PREFIX,
        "BOOKLAB_FQDN": "booklab.localhost",
        "BOOKLAB_TMPDIR": str(state / "runner-tmp"),
        "BOOKLAB_WEB_HOST": "127.0.0.1",
        "BOOKLAB_WEB_PORT": str(web_port),
        "BOOKLAB_WEB_URL": web_url,
        "BOOKLAB_ROUTES_PUBLISHER": "docker",
        "BOOKLAB_ROUTES_PORT": str(traefik_port),
        "BOOKLAB_ROUTES_TRAEFIK_API": traefik_api,
        "BOOKLAB_ROUTES_TRAEFIK_ENTRYPOINT_URL": f"http://127.0.0.1:{traefik_port}",
        "BOOKLAB_ROUTES_AUTH_URL": web_url,
        # the load comes from one address: no per-client limit, so that forward-auth's own work is measured
        "BOOKLAB_WEB_AUTH_RATE_LIMIT": "0",
        # one user plays a whole class: no limit of notebooks per user
        "BOOKLAB_LIMITS_NOTEBOOKS_PER_USER": "0",
        "BOOKLAB_NOTEBOOK_NETWORK": network,
    }
    cli = [sys.executable, "-m", "booklab.cli"]
    web = processes.start("web", [*cli, "web"], env=env, cwd=state)
    runner_children = [
        processes.start(name.split("@")[0], [*cli, "runner", "--name", name], env=env, cwd=state)
        for name in runner_names
    ]
    exits.callback(processes.stop, [web, *runner_children])
    extra_runners: list[Child] = []  # those a benchmark adds (add_runners)
    exits.callback(processes.stop, extra_runners)

    gitlab.start()
    exits.callback(gitlab.stop)
    gitlab.add_project(PROJECT, members={OWNER: MAINTAINER})
    repo = create_local_repo(state / "repo", {"main": notebook_repo_files(base_image)})
    gitlab.push(PROJECT, repo)

    processes.wait_until(traefik, lambda: traefik_config.pings(traefik_api), START_TIMEOUT, "Traefik answered")
    processes.wait_until(web, lambda: _answers(f"{web_url}/badge.svg"), START_TIMEOUT, "the web tier answered")
    wait_runners_ready(processes, redis_url, runner_children)
    ctx = Context(config_module.load(os.devnull, environ=env))
    configure(ctx.config)
    set_context(ctx)
    exits.callback(ctx.close)
    exits.callback(set_context, None)
    return Stack(
        state,
        processes,
        client,
        redis_url,
        gitlab,
        network,
        traefik_port,
        traefik_api,
        web_url,
        web,
        runner_children,
        env,
        ctx,
        owner,
        repo,
        base_image,
        _engine_version(client),
        extra_runners=extra_runners,
    )


def wait_runners_ready(processes: Processes, redis_url: str, children: list[Child]) -> None:
    """Wait until each runner beats and logs that it is ready."""
    with closing(redis.Redis.from_url(redis_url)) as check:
        for child in children:
            name = runner_name(child)
            key, ready = schema.heartbeat(name), f"{name} ready."
            processes.wait_until(
                child,
                lambda k=key, c=child, r=ready: bool(check.exists(k)) and (r in c.log.read_text(errors="replace")),
                START_TIMEOUT,
                f"{name} was ready",
            )


def add_runners(stack: Stack, names: list[str], **overrides: str) -> list[Child]:
    """Start more runners beside the stack's, with ``BOOKLAB_*`` ``overrides`` of its settings (stopped with the
    stack, or by the caller); returns them once each is ready."""
    env = {**stack.env, **overrides}
    children = [
        stack.processes.start(
            name.split("@")[0],
            [sys.executable, "-m", "booklab.cli", "runner", "--name", name],
            env=env,
            cwd=stack.state,
        )
        for name in names
    ]
    stack.extra_runners.extend(children)
    wait_runners_ready(stack.processes, stack.redis_url, children)
    return children


def ensure_image(stack: Stack) -> str:
    """The image of ``main``'s commit, built through Booklab once (a deployment run to
    ``ready``, then stopped: it also warms the runner up). Returns its name."""
    if not stack.main_image:
        warm_up = stack.deploy("main")
        log.info("built and launched %s in %.1f s (warm-up, not counted)", warm_up.record["image"], warm_up.elapsed)
        stack.stop(warm_up.id)
        stack.main_image = warm_up.record["image"]
    return stack.main_image
