"""Scale: 4 runners, 8 deployments. Four notebooks run, four wait with their queue
positions (told again as the queue moves), and a stopped notebook frees a runner for the
next deployment."""

from __future__ import annotations

from booklab import service
from booklab.phases import Phase
from tests.fixtures.pipeline import MAINTAINER, events_of, run_to_end
from tests.fixtures.services import wait_until


def test_four_runners_serve_four_of_eight_deployments_and_the_rest_wait_in_order(ctx, runners, gitlab, project):
    users = [gitlab.add_user(f"user{i}") for i in range(8)]
    for user in users:
        gitlab.set_member(project, user.username, MAINTAINER)
    started = runners(4)
    first = service.request_deployment(ctx, project, "main", users[0].token)
    assert run_to_end(ctx, first.id)[-1]["phase"] == "ready"  # builds the image once
    requests = [first] + [service.request_deployment(ctx, project, "main", u.token) for u in users[1:]]

    served, waiting = requests[:4], requests[4:]
    for request in served:
        assert run_to_end(ctx, request.id)[-1]["phase"] == "ready"
    wait_until(
        lambda: [ctx.deployments.queue_position(r.id) for r in waiting] == [1, 2, 3, 4],
        10,
        "the four others to wait in order",
    )
    assert all(ctx.deployments.status(r.id) is Phase.TODO for r in waiting)
    assert len({ctx.deployments.record(r.id)["runner"] for r in served}) == 4
    # a runner that received a run's first step took no other message of the shared queue meanwhile (it
    # would have had to give it back): one first step received by each
    for runner in started:
        received = [
            line for line in runner.output().splitlines() if "booklab.provision_key[" in line and "received" in line
        ]
        assert len(received) == 1, runner.output()
        assert "goes back to the queue" not in runner.output()
        assert "could not be opened ahead of the first run" not in runner.output()  # each opened at its start

    freed = ctx.deployments.record(served[1].id)["runner"]
    service.stop(ctx, served[1].id)
    events = run_to_end(ctx, waiting[0].id)
    assert events[-1]["phase"] == "ready"
    assert ctx.deployments.record(waiting[0].id)["runner"] == freed
    positions = [e["position"] for e in events if e["phase"] == "waiting"]
    assert positions[-1] == 1 and positions == sorted(positions, reverse=True)
    assert [ctx.deployments.queue_position(r.id) for r in waiting[1:]] == [1, 2, 3]
    last_told = [e.data for e in events_of(ctx, waiting[3].id) if e.data["phase"] == "waiting"][-1]
    assert last_told["position"] == 3
