"""A run's log on a real Redis: ids, cap, status, live following without loss."""

import threading

from booklab.phases import Phase
from booklab.state import schema
from booklab.state.deployment import Deployment
from booklab.state.events import EventLog
from booklab.state.lifecycle import Lifecycle, Run
from tests.fixtures.services import wait_until

DEP = Deployment("g/p", "main", "alice")


def building(redis_client, dep: Deployment = DEP, max_events: int = 5000) -> tuple[EventLog, Lifecycle, Run]:
    """A run of ``dep`` a runner took (its first event, id 1, says so)."""
    log = EventLog(redis_client, max_events)
    lifecycle = Lifecycle(redis_client, log)
    _, run = lifecycle.request(dep, f"slug-{dep.user}-{dep.project}", {}, b"sealed", 60)
    assert lifecycle.claim(run, "runner-1")
    return log, lifecycle, run


def test_events_are_counted_and_set_the_status(redis_client):
    log, lifecycle, run = building(redis_client)
    assert lifecycle.say(run, Phase.FETCHING, "cloning") == 2
    events = log.read(run.id)
    assert [(e.id, e.data) for e in events] == [
        (1, {"phase": "fetching", "message": "A runner took the deployment.\n"}),
        (2, {"phase": "fetching", "message": "cloning\n"}),
    ]
    assert redis_client.hget(schema.STATUS, DEP.id) == "fetching"
    assert [e.id for e in log.read(run.id, after=1)] == [2]


def test_log_is_capped_but_ids_keep_counting(redis_client):
    log, lifecycle, run = building(redis_client, max_events=3)
    for i in range(9):
        lifecycle.say(run, Phase.BUILDING, f"line {i}")
    events = log.read(run.id)
    assert [e.id for e in events] == [8, 9, 10]
    assert events[-1].data["message"] == "line 8\n"


def test_follow_resumes_after_an_id_and_sees_live_events_until_final(redis_client):
    log, lifecycle, run = building(redis_client)
    for i in range(2):
        lifecycle.say(run, Phase.BUILDING, f"line {i}")

    def write_more():
        for i in range(2, 198):
            lifecycle.say(run, Phase.BUILDING, f"line {i}")
        lifecycle.say(run, Phase.LAUNCHING, "launching")
        lifecycle.say(run, Phase.READY, "done")

    seen = []
    writer = threading.Thread(target=write_more)
    for event in log.follow(run.id, after=1, timeout=30):
        seen.append(event.id)
        if len(seen) == 1:
            writer.start()
    writer.join()
    assert seen == list(range(2, 202))


def test_followers_sharing_one_subscription_each_get_their_own_events_without_loss(redis_client):
    subscriptions = redis_client.execute_command("PUBSUB", "NUMPAT")
    shared = EventLog(redis_client)
    shared.share_subscription()
    runs = [building(redis_client, Deployment(f"g/p{i}", "main", "alice"))[1:] for i in range(20)]
    seen: dict[str, list[int]] = {run.id: [] for _, run in runs}

    def follow(run: Run) -> None:
        seen[run.id] = [event.id for event in shared.follow(run.id, after=0, timeout=30)]

    followers = [threading.Thread(target=follow, args=(run,)) for _, run in runs]
    for thread in followers:
        thread.start()
    for i in range(50):
        for lifecycle, run in runs:
            lifecycle.say(run, Phase.BUILDING, f"{run} line {i}")
    for lifecycle, run in runs:
        lifecycle.say(run, Phase.LAUNCHING, "launching")
        lifecycle.say(run, Phase.READY, "done")
    for thread in followers:
        thread.join(30)
    shared.fanout.close()
    assert seen == {run.id: list(range(1, 54)) for _, run in runs}
    wait_until(
        lambda: redis_client.execute_command("PUBSUB", "NUMPAT") == subscriptions, 5, "the shared subscription to close"
    )
