"""The deployment log on a real Redis: ids, cap, status, live following without loss."""

import threading

from booklab import schema
from booklab.events import EventLog
from booklab.phases import Phase
from tests.fixtures.services import wait_until

DEP = "g/p:main:alice"


def test_emit_appends_counts_and_sets_status(redis_client):
    log = EventLog(redis_client)
    assert log.emit(DEP, Phase.WAITING, "queued", position=2) == 1
    assert log.emit(DEP, Phase.FETCHING, "cloning") == 2
    events = log.read(DEP)
    assert [(e.id, e.data) for e in events] == [
        (1, {"phase": "waiting", "message": "queued\n", "position": 2}),
        (2, {"phase": "fetching", "message": "cloning\n"}),
    ]
    assert redis_client.hget(schema.STATUS, DEP) == "fetching"
    log.emit("other:main:bob", Phase.WAITING, "queued")
    assert redis_client.hget(schema.STATUS, "other:main:bob") == "todo"  # queued is todo
    assert [e.id for e in log.read(DEP, after=1)] == [2]


def test_log_is_capped_but_ids_keep_counting(redis_client):
    log = EventLog(redis_client, max_events=3)
    for i in range(10):
        log.emit(DEP, Phase.BUILDING, f"line {i}")
    events = log.read(DEP)
    assert [e.id for e in events] == [8, 9, 10]
    assert events[-1].data["message"] == "line 9\n"


def test_follow_resumes_after_an_id_and_sees_live_events_until_final(redis_client):
    log = EventLog(redis_client)
    for i in range(3):
        log.emit(DEP, Phase.BUILDING, f"line {i}")

    def write_more():
        for i in range(3, 200):
            log.emit(DEP, Phase.BUILDING, f"line {i}")
        log.emit(DEP, Phase.READY, "done")

    seen = []
    writer = threading.Thread(target=write_more)
    for event in log.follow(DEP, after=1, timeout=30):
        seen.append(event.id)
        if len(seen) == 1:
            writer.start()
    writer.join()
    assert seen == list(range(2, 202))


def test_followers_sharing_one_subscription_each_get_their_own_events_without_loss(redis_client):
    subscriptions = redis_client.execute_command("PUBSUB", "NUMPAT")
    writer_log, shared = EventLog(redis_client), EventLog(redis_client)
    shared.share_subscription()
    deployments = [f"g/p{i}:main:alice" for i in range(20)]
    for dep in deployments:
        writer_log.emit(dep, Phase.BUILDING, "before anyone follows")
    seen: dict[str, list[int]] = {dep: [] for dep in deployments}

    def follow(dep: str) -> None:
        seen[dep] = [event.id for event in shared.follow(dep, after=0, timeout=30)]

    followers = [threading.Thread(target=follow, args=(dep,)) for dep in deployments]
    for thread in followers:
        thread.start()
    for i in range(50):
        for dep in deployments:
            writer_log.emit(dep, Phase.BUILDING, f"{dep} line {i}")
    for dep in deployments:
        writer_log.emit(dep, Phase.READY, "done")
    for thread in followers:
        thread.join(30)
    shared.fanout.close()
    assert seen == {dep: list(range(1, 53)) for dep in deployments}
    wait_until(lambda: redis_client.execute_command("PUBSUB", "NUMPAT") == subscriptions, 5,
               "the shared subscription to close")
