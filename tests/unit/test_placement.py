"""Where a run's first step goes (:mod:`booklab.dispatch.placement`), on a real Redis with runners played
by the test: to an idle runner of a host that holds the image its branch launched last, else to the shared
queue; and a run placed on a host whose runners all turned busy is sent to the shared queue after a short
wait, by any free runner (:class:`booklab.runner.supervisor.QueueWatch`)."""

from __future__ import annotations

from booklab.dispatch import placement
from booklab.dispatch.queues import DEPLOYMENTS_QUEUE, host_queue
from booklab.dispatch.send import queue_run
from booklab.runner.supervisor import QueueWatch
from booklab.state.deployment import Deployment
from tests.fixtures.pipeline import PROJECT, taken, tasks_sent
from tests.fixtures.pipeline import queue_run as queue_without_chain

IMAGE = "registry.example.org/booklab/demo-notebooks-0123456789ab:c0ffee"


def runners_on(ctx, **hosts: str) -> None:
    """Runners alive, each on its host (``name=host``)."""
    for name, host in hosts.items():
        ctx.runners.beat(name, host)


def test_a_launch_goes_to_an_idle_runner_of_a_host_holding_its_image(redis_ctx):
    ctx = redis_ctx
    runners_on(ctx, a1="host-a", b1="host-b")
    ctx.images.launched_on("host-a", IMAGE, PROJECT, "main")
    run = queue_without_chain(ctx, Deployment(PROJECT, "main", "bob"))
    queue_run(ctx, run)
    assert tasks_sent(ctx, host_queue("host-a")) == [("booklab.provision_key", [run.id])]
    assert tasks_sent(ctx, DEPLOYMENTS_QUEUE) == []
    assert ctx.deployments.record(run.deployment)["placed_on"] == "host-a"


def test_with_no_idle_runner_on_a_host_holding_the_image_any_runner_takes_it(redis_ctx):
    ctx = redis_ctx
    runners_on(ctx, a1="host-a", b1="host-b")
    ctx.images.launched_on("host-a", IMAGE, PROJECT, "main")
    taken(ctx, Deployment(PROJECT, "main", "alice"), "a1")  # host A's only runner serves alice

    def preferred(user: str, ref: str = "main") -> str:
        """Where a launch of ``user`` goes, alone in the queue."""
        run = queue_without_chain(ctx, Deployment(PROJECT, ref, user))
        host = placement.preferred_host(ctx, run)
        ctx.queue.leave(run.deployment)
        return host

    assert preferred("bob") == "" and preferred("bob", "other") == ""  # an image nowhere
    ctx.images.removed_from("host-a", [IMAGE])
    runners_on(ctx, a2="host-a")
    assert preferred("carol") == ""
    ctx.images.launched_on("host-a", IMAGE, PROJECT, "main")
    assert preferred("dan") == "host-a"


def test_a_run_placed_on_a_host_that_turned_busy_goes_to_any_runner_after_a_short_wait(redis_ctx):
    ctx = redis_ctx
    runners_on(ctx, a1="host-a", b1="host-b")
    ctx.images.launched_on("host-a", IMAGE, PROJECT, "main")
    run = queue_without_chain(ctx, Deployment(PROJECT, "main", "bob"))
    queue_run(ctx, run)  # placed on host A, whose runner takes alice's launch the next instant
    watch = QueueWatch()  # host B's free runner
    watch.check(ctx)
    watch.check(ctx)
    assert tasks_sent(ctx, DEPLOYMENTS_QUEUE) == []

    watch.since -= placement.PLACEMENT_GAP
    watch.check(ctx)
    assert tasks_sent(ctx, DEPLOYMENTS_QUEUE) == [("booklab.provision_key", [run.id])]
    assert ctx.deployments.record(run.deployment)["placed_on"] == ""


def test_a_launch_behind_others_waiting_never_passes_them(redis_ctx):
    ctx = redis_ctx
    runners_on(ctx, a1="host-a")
    ctx.images.launched_on("host-a", IMAGE, PROJECT, "main")
    queue_without_chain(ctx, Deployment(PROJECT, "other", "alice"))  # waits ahead
    behind = queue_without_chain(ctx, Deployment(PROJECT, "main", "bob"))
    queue_run(ctx, behind)
    assert tasks_sent(ctx, DEPLOYMENTS_QUEUE) == [("booklab.provision_key", [behind.id])]
    assert tasks_sent(ctx, host_queue("host-a")) == []  # behind alice, whose runner is yet to come
