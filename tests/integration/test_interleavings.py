"""Interleavings of deployments' lives, explored by Hypothesis against the real stack: the
web tier's API, two real runners, Redis (restartable, append-only as in production), Docker,
Traefik and the GitLab stand-in. The rules launch, stop, relaunch at once, save now, cull
now, kill -9 a runner (restarted under its name) and restart Redis, in any order; after
every step the invariants of ``docs/RELIABILITY.md`` must hold.

CI runs a bounded, derandomized exploration; set ``BOOKLAB_STATEFUL_EXAMPLES`` and
``BOOKLAB_STATEFUL_STEPS`` for a longer one, and ``BOOKLAB_STATEFUL_RANDOM=1`` for new
sequences at each run. A sequence it finds failing becomes a plain regression test.
"""

from __future__ import annotations

import os
import signal
import time
from urllib.parse import quote

import docker
import pytest
import redis
import requests
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from booklab import service
from booklab.phases import Phase
from booklab.state import schema
from booklab.state.deployment import Deployment
from booklab.state.lifecycle import Run, allowed
from tests.fixtures.pipeline import BRANCH_WITH_SLASH, phases, run_to_end
from tests.fixtures.services import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.beside]

EXAMPLES = int(os.environ.get("BOOKLAB_STATEFUL_EXAMPLES", "30"))
STEPS = int(os.environ.get("BOOKLAB_STATEFUL_STEPS", "8"))
RANDOM = os.environ.get("BOOKLAB_STATEFUL_RANDOM") == "1"
REFS = ("main", BRANCH_WITH_SLASH)
#: seconds within which a stopped run's container is gone
STOPPED_WITHIN = 10
#: seconds a deployment may be in a non-final phase with no runner holding it
UNHELD_AT_MOST = 60
#: runners killed and Redis restarts in one example (each costs seconds, and says little more a second time)
MAX_OUTAGES = 1
LIVE = (Phase.FETCHING, Phase.BUILDING, Phase.BUILT, Phase.LAUNCHING, Phase.READY, Phase.STOPPING)


@pytest.fixture
def booklab_env(booklab_env, own_redis):
    return {**booklab_env, "BOOKLAB_REDIS_URL": own_redis.url}


@pytest.fixture
def web_env(web_env, web_port, traefik) -> dict[str, str]:
    """The web tier where Traefik asks it, and no per-client limit on the test's own many requests."""
    return {
        **web_env,
        "BOOKLAB_WEB_URL": f"http://127.0.0.1:{web_port}",
        "BOOKLAB_ROUTES_PORT": str(traefik.port),
        "BOOKLAB_WEB_TOKEN_RATE_LIMIT": "1000000",
        "BOOKLAB_WEB_AUTH_RATE_LIMIT": "1000000",
    }


def retrying(read):
    """``read()``, tried again while the Redis that was just restarted does not answer yet."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return read()
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# a step takes a few seconds at most, a settle up to a minute
@pytest.mark.timeout(300 + EXAMPLES * STEPS * 15)
def test_interleaved_lives_keep_every_invariant(
    ctx, runners, traefik, web_server, alice, project, own_redis, docker_engine
):
    env = traefik.runner_env("docker", auth_url=web_server)
    fleet = {runner.name: runner for runner in runners(2, **env)}
    deployments = {ref: Deployment(project, ref, alice.username).id for ref in REFS}
    for ref in REFS:  # each branch's image is built once, before the exploration
        request = service.request_deployment(ctx, project, ref, alice.token)
        assert phases(run_to_end(ctx, request.run))[-1] == "ready"
        service.stop(ctx, request.id)
    api = requests.Session()
    api.headers["PRIVATE-TOKEN"] = alice.token

    def post(ref: str, action: str) -> requests.Response:
        answer = api.post(f"{web_server}/api/deployments/{quote(deployments[ref], safe='')}/{action}", timeout=60)
        assert answer.status_code < 500, answer.text
        return answer

    def launch(ref: str) -> None:
        answer = api.post(f"{web_server}/api/deployments", json={"project": project, "ref": ref}, timeout=60)
        assert answer.status_code in (200, 201), answer.text

    def containers(deployment_id: str) -> list[str]:
        """The names of the deployment's notebook containers made by this test's runners, in one
        call to Docker (``containers.list`` inspects each one after listing: one removed in
        between raises)."""
        found = docker_engine.api.containers(all=True, filters={"label": f"booklab.deployment={deployment_id}"})
        return [c["Names"][0] for c in found if c["Labels"].get("booklab.runner") in fleet]

    def runs_of(deployment_id: str) -> int:
        return int(retrying(lambda: ctx.redis.get(schema.runseq(deployment_id))) or 0)

    def over(run: Run) -> bool:
        status, current, _ = retrying(lambda: ctx.lifecycle.current(run.deployment))
        return current != run or status is None or not status.is_active

    class Lives(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.stopping: list[tuple[Run, str, float]] = []  # run, its container, when its stop was asked
            self.unheld_since: dict[Run, float] = {}
            self.first_run = {ref: runs_of(deployments[ref]) + 1 for ref in REFS}
            self.outages = 0  # runners killed and Redis restarts in this example

        # -- rules ------------------------------------------------------------------

        @initialize(ready=st.booleans())
        def notebooks(self, ready: bool) -> None:
            """Each example starts with both launched, and ready or on their way."""
            for ref in REFS:
                launch(ref)
            if ready:
                self.settle()

        @rule(ref=st.sampled_from(REFS))
        def launch(self, ref: str) -> None:
            launch(ref)

        @rule(ref=st.sampled_from(REFS))
        def stop(self, ref: str) -> None:
            self._stop(ref)

        @rule(ref=st.sampled_from(REFS))
        def relaunch(self, ref: str) -> None:
            self._stop(ref)
            launch(ref)

        @rule(ref=st.sampled_from(REFS))
        def save_now(self, ref: str) -> None:
            assert post(ref, "save").status_code in (202, 404, 409)

        @rule(ref=st.sampled_from(REFS))
        def cull_now(self, ref: str) -> None:
            """The runner that serves it finds it idle for longer than it may be."""
            for name in fleet:
                if retrying(lambda n=name: ctx.runners.held(n)).get("deployment") == deployments[ref]:
                    retrying(lambda n=name: ctx.redis.hset(schema.runner(n), "idle_timeout", "0"))

        @precondition(lambda self: self.outages < MAX_OUTAGES)
        @rule(index=st.integers(0, 1))
        def kill_a_runner(self, index: int) -> None:
            """kill -9, then started again under its name (it adopts or ends what it held)."""
            self.outages += 1
            name = sorted(fleet)[index]
            os.killpg(fleet[name].proc.pid, signal.SIGKILL)
            fleet[name].proc.wait(30)
            (fleet[name],) = runners(names=[name], **env)

        @rule(seconds=st.sampled_from([0.3, 1.0, 3.0]))
        def let_time_pass(self, seconds: float) -> None:
            time.sleep(seconds)

        @rule()
        def settle(self) -> None:
            """Every run ready or over, and none waiting behind an end, within a minute."""

            def settled() -> bool:
                for deployment_id in deployments.values():
                    status, _, ending = retrying(lambda d=deployment_id: ctx.lifecycle.current(d))
                    if (
                        status not in (Phase.READY, Phase.STOPPED, Phase.FAILED)
                        or (status is Phase.READY and ending)
                        or retrying(lambda d=deployment_id: ctx.lifecycle.pending(d))
                    ):
                        return False
                return True

            wait_until(settled, UNHELD_AT_MOST, "every run to be ready or over")

        @precondition(lambda self: self.outages < MAX_OUTAGES)
        @rule()
        def restart_redis(self) -> None:
            self.outages += 1
            own_redis.stop()
            own_redis.start()
            retrying(ctx.redis.ping)

        def _stop(self, ref: str) -> None:
            status, run, _ = retrying(lambda: ctx.lifecycle.current(deployments[ref]))
            container = retrying(lambda: ctx.deployments.record(deployments[ref])).get("container", "")
            answer = post(ref, "stop")
            assert answer.status_code in (202, 404), answer.text
            if answer.status_code == 202 and run is not None and status is not None and status.is_active:
                event(f"a run stopped while {status.value}")
                self.stopping.append((run, container, time.monotonic()))

        # -- invariants -------------------------------------------------------------

        @invariant()
        def at_most_one_notebook_container_per_deployment(self) -> None:
            for deployment_id in deployments.values():
                found = containers(deployment_id)
                assert len(found) <= 1, found

        @invariant()
        def a_ready_notebook_answers_its_owner_through_traefik(self) -> None:
            for deployment_id in deployments.values():
                status, run, ending = retrying(lambda d=deployment_id: ctx.lifecycle.current(d))
                if status is not Phase.READY or ending:
                    continue
                event("a ready notebook was checked through Traefik")
                token = retrying(lambda d=deployment_id: ctx.vault.notebook_token(d))
                host = f"{ctx.slug(deployment_id)}.{ctx.config.fqdn}"
                answer = requests.get(
                    f"{traefik.entrypoint_url}/api/status",
                    timeout=10,
                    headers={"Host": host, "PRIVATE-TOKEN": alice.token, "Authorization": f"token {token}"},
                )
                if answer.status_code != 200:  # culled or ended in between: then it is no longer ready
                    assert retrying(lambda d=deployment_id: ctx.lifecycle.current(d)) != (status, run, ending), (
                        f"{run} is ready but answers {answer.status_code} through Traefik"
                    )

        @invariant()
        def a_stopped_run_and_its_container_are_gone_within_10_s(self) -> None:
            for run, container, asked_at in self.stopping:
                left = max(0.1, asked_at + STOPPED_WITHIN - time.monotonic())
                wait_until(lambda r=run: over(r), left, f"{run} to end after its stop")
                if container:
                    wait_until(lambda c=container: not _exists(docker_engine, c), left, f"the container of {run} to go")
            self.stopping = [s for s in self.stopping if time.monotonic() - s[2] < STOPPED_WITHIN]

        @invariant()
        def each_run_log_holds_that_run_only(self) -> None:
            for ref, deployment_id in deployments.items():
                for number in range(self.first_run[ref], runs_of(deployment_id) + 1):
                    _check_log(
                        Run(deployment_id, number),
                        [
                            e.data["phase"]
                            for e in retrying(lambda n=number, d=deployment_id: ctx.events.read(Run(d, n).id))
                        ],
                    )

        @invariant()
        def no_live_run_stays_without_a_runner(self) -> None:
            held = {
                (h.get("deployment"), h.get("run"))
                for h in (retrying(lambda n=name: ctx.runners.held(n)) for name in fleet)
            }
            now = time.monotonic()
            for deployment_id in deployments.values():
                status, run, _ = retrying(lambda d=deployment_id: ctx.lifecycle.current(d))
                if status in LIVE and (deployment_id, str(run.number)) not in held:
                    since = self.unheld_since.setdefault(run, now)
                    assert now - since <= UNHELD_AT_MOST, f"{run} is {status.value} and no runner holds it"
                elif run is not None:
                    self.unheld_since.pop(run, None)

        def teardown(self) -> None:
            """Every deployment stopped, and over with nothing left, within a minute."""
            for ref in REFS:
                post(ref, "stop")
            for deployment_id in deployments.values():
                wait_until(
                    lambda d=deployment_id: (
                        not retrying(lambda: ctx.lifecycle.current(d))[0].is_active
                        and retrying(lambda: ctx.lifecycle.pending(d)) is None
                    ),
                    UNHELD_AT_MOST,
                    f"{deployment_id} to end",
                )
                wait_until(lambda d=deployment_id: not containers(d), STOPPED_WITHIN, f"{deployment_id}'s container")

    run_state_machine_as_test(
        Lives,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=not RANDOM,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


def _exists(client: docker.DockerClient, container: str) -> bool:
    try:
        client.containers.get(container)
        return True
    except docker.errors.NotFound:
        return False


def _check_log(run: Run, logged: list[str]) -> None:
    """A run's log follows the table from no run at all, ends at most once, and with its end:
    another run's events in it would break one of these. (An end's claim writes no event:
    ``stopping`` may be silent before ``stopped`` or ``failed``.)"""
    before = None
    for n, phase in enumerate(logged):
        status = Phase(phase).status
        assert allowed(before, status) or (allowed(before, Phase.STOPPING) and allowed(Phase.STOPPING, status)), (
            f"{run}: {phase} after {before}: {logged}"
        )
        if status in (Phase.STOPPED, Phase.FAILED):
            assert n == len(logged) - 1, f"{run}: events after its end: {logged}"
        before = status
