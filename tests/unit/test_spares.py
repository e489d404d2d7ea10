"""Warm spares' moves (booklab.state.spares) on a real Redis: a spare is claimed by one launch at most, only
once it answers, only while its runner lives; the runner that takes a run learns whether its spare is that
run's, another's, or dropped, and a dropped spare is claimed by no one. A stateful exploration checks any
order of these moves against a model, and 20 launches claiming at once get one spare once."""

from __future__ import annotations

import threading

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from booklab.state import schema
from booklab.state.records import Runners
from booklab.state.spares import CLAIMED, OFFERED, STARTING, Claimed, Spares, Taken
from tests.fixtures.stateful import explore

IMAGE = "booklab/course-notebooks-0123456789ab:" + "c" * 40
OTHER_IMAGE = IMAGE.replace("c" * 40, "d" * 40)
R1, R2 = "runner-1@a", "runner-2@a"


def _offered(spares: Spares, runner: str, image: str = IMAGE, spare_id: str = "s1") -> None:
    assert spares.begin(runner, spare_id, image, "course/notebooks@main", 5)
    assert spares.started(
        runner, spare_id, f"container-{spare_id}", "http://10.0.0.2:8888/", "2g", "1.0", "sealed", "sha256:1"
    )
    assert spares.offer(runner, spare_id, image)


def test_a_spare_is_claimed_once_it_answers_and_then_by_one_launch_only(redis_client):
    spares, runners = Spares(redis_client), Runners(redis_client)
    runners.beat(R1)
    assert spares.begin(R1, "s1", IMAGE, "course/notebooks@main", 5)
    assert not spares.begin(R1, "s2", IMAGE, "course/notebooks@main", 5)  # one spare a runner
    assert spares.counts() == {IMAGE: 1}
    assert spares.claim(IMAGE, "alice#1") is None  # still starting
    assert not spares.offer(R1, "s1", IMAGE)  # no container yet
    assert spares.started(R1, "s1", "c1", "http://10.0.0.2:8888/", "2g", "1.0", "sealed", "sha256:1")
    assert spares.offer(R1, "s1", IMAGE)
    assert spares.of(R1).state == OFFERED
    assert spares.claim(OTHER_IMAGE, "alice#1") is None
    assert spares.claim(IMAGE, "alice#1") == Claimed(R1, "http://10.0.0.2:8888/")
    assert spares.claim(IMAGE, "bob#1") is None
    claimed = spares.of(R1)
    assert (claimed.state, claimed.run, claimed.container, claimed.token) == (CLAIMED, "alice#1", "c1", "sealed")
    assert spares.counts() == {}  # claimed: a fresh one is wanted behind it


def test_idle_runners_start_no_more_spares_than_wanted(redis_client):
    spares = Spares(redis_client)
    assert spares.begin(R1, "s1", IMAGE, "course/notebooks@main", 1)
    assert not spares.begin(R2, "s2", IMAGE, "course/notebooks@main", 1)
    assert spares.begin(R2, "s2", OTHER_IMAGE, "course/notebooks@dev", 1)
    assert spares.counts() == {IMAGE: 1, OTHER_IMAGE: 1}


def test_the_runner_learns_what_its_spare_became_when_it_takes_a_run(redis_client):
    spares, runners = Spares(redis_client), Runners(redis_client)
    runners.beat(R1)
    assert spares.take(R1, "alice#1") == (Taken.NONE, None)

    _offered(spares, R1)
    spares.claim(IMAGE, "alice#1")
    assert spares.take(R1, "bob#1") == (Taken.OTHER, None)  # a run from the shared queue: alice's goes first
    assert spares.of(R1).state == CLAIMED
    taken, spare = spares.take(R1, "alice#1")
    assert (taken, spare.container, spare.url) == (Taken.MINE, "container-s1", "http://10.0.0.2:8888/")
    assert spares.of(R1) is None

    _offered(spares, R1, spare_id="s2")
    taken, spare = spares.take(R1, "bob#1")  # taken before any launch claimed it
    assert (taken, spare.container) == (Taken.DROPPED, "container-s2")
    assert spares.claim(IMAGE, "carol#1") is None
    assert spares.counts() == {}


def test_a_runner_drops_its_unclaimed_spare_and_a_lost_one_goes_even_claimed(redis_client):
    spares, runners = Spares(redis_client), Runners(redis_client)
    runners.beat(R1)
    _offered(spares, R1)
    spares.claim(IMAGE, "alice#1")
    assert spares.drop(R1) is None  # claimed: it serves alice next
    assert spares.of(R1).state == CLAIMED
    assert spares.drop(R1, claimed_too=True).run == "alice#1"
    assert spares.of(R1) is None

    _offered(spares, R1, spare_id="s2")
    assert spares.drop(R1).id == "s2"
    assert spares.claim(IMAGE, "bob#1") is None
    assert spares.drop(R1) is None


def test_a_spare_of_a_runner_whose_heartbeat_expired_is_not_claimed(redis_client):
    spares, runners = Spares(redis_client), Runners(redis_client)
    runners.beat(R1)
    runners.beat(R2)
    _offered(spares, R1)
    _offered(spares, R2, spare_id="s2")
    redis_client.delete(schema.heartbeat(R1))
    assert spares.claim(IMAGE, "alice#1").runner == R2
    assert spares.claim(IMAGE, "bob#1") is None


def test_twenty_launches_claiming_at_once_get_one_spare_once(redis_client, redis_url):
    spares = Spares(redis_client)
    Runners(redis_client).beat(R1)
    _offered(spares, R1)
    start, got = threading.Barrier(20), {}

    def launch(n: int) -> None:
        import redis

        own = Spares(redis.Redis.from_url(redis_url, decode_responses=True))
        start.wait()
        claimed = own.claim(IMAGE, f"user{n}#1")
        got[n] = claimed.runner if claimed else None

    threads = [threading.Thread(target=launch, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [n for n, runner in got.items() if runner]
    assert len(got) == 20 and len(winners) == 1 and got[winners[0]] == R1
    assert spares.of(R1).run == f"user{winners[0]}#1"


def test_any_order_of_moves_keeps_each_spare_with_one_launch_at_most(redis_client):
    runner_names, images = [R1, R2, "runner-3@b"], [IMAGE, OTHER_IMAGE]
    spares, runners = Spares(redis_client), Runners(redis_client)
    runner, image, run = st.sampled_from(runner_names), st.sampled_from(images), st.sampled_from(["a#1", "b#1", "c#1"])

    class Model(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            redis_client.flushall()
            for name in runner_names:
                runners.beat(name)
            self.alive = set(runner_names)
            self.held: dict[str, dict] = {}  # runner -> {id, image, state, container, run}
            self.ids = 0
            self.claimed_by: dict[str, str] = {}  # spare id -> the one run that ever claimed it
            self.served: dict[str, str] = {}  # spare id -> the run its runner served with it

        @rule(me=runner, img=image, wanted=st.integers(1, 2))
        def begin(self, me: str, img: str, wanted: int) -> None:
            self.ids += 1
            spare_id = f"s{self.ids}"
            unclaimed = sum(1 for h in self.held.values() if h["image"] == img and h["state"] != CLAIMED)
            expected = me not in self.held and unclaimed < wanted
            assert spares.begin(me, spare_id, img, "t", wanted) == expected
            if expected:
                self.held[me] = {"id": spare_id, "image": img, "state": STARTING, "container": "", "run": ""}

        @rule(me=runner)
        def started(self, me: str) -> None:
            spare = self.held.get(me)
            expected = spare is not None and spare["state"] == STARTING
            spare_id = spare["id"] if spare else "none"
            assert spares.started(me, spare_id, f"c-{spare_id}", "http://x/", "1g", "1.0", "t", "sha256:1") == expected
            if expected:
                spare["container"] = f"c-{spare_id}"

        @rule(me=runner)
        def offer(self, me: str) -> None:
            spare = self.held.get(me)
            expected = spare is not None and spare["state"] == STARTING and bool(spare["container"])
            assert spares.offer(me, spare["id"] if spare else "none", spare["image"] if spare else IMAGE) == expected
            if expected:
                spare["state"] = OFFERED

        @rule(img=image, launch=run)
        def claim(self, img: str, launch: str) -> None:
            claimed = spares.claim(img, launch)
            got = claimed.runner if claimed else None
            offered = [
                name
                for name, spare in self.held.items()
                if spare["state"] == OFFERED and spare["image"] == img and name in self.alive
            ]
            if not offered:
                assert got is None
                return
            assert got in offered
            spare = self.held[got]
            assert spare["id"] not in self.claimed_by  # never claimed twice
            self.claimed_by[spare["id"]] = launch
            spare.update(state=CLAIMED, run=launch)

        @rule(me=runner, launch=run)
        def take(self, me: str, launch: str) -> None:
            taken, spare = spares.take(me, launch)
            held = self.held.get(me)
            if held is None:
                assert taken is Taken.NONE
            elif held["state"] == CLAIMED and held["run"] != launch:
                assert taken is Taken.OTHER
            elif held["state"] == CLAIMED:
                assert (taken, spare.id) == (Taken.MINE, held["id"])
                assert self.claimed_by[held["id"]] == launch
                assert held["id"] not in self.served
                self.served[held["id"]] = launch
                del self.held[me]
            else:
                assert (taken, spare.id) == (Taken.DROPPED, held["id"])
                del self.held[me]

        @rule(me=runner, claimed_too=st.booleans())
        def drop(self, me: str, claimed_too: bool) -> None:
            gone = spares.drop(me, claimed_too)
            held = self.held.get(me)
            if held is None or (held["state"] == CLAIMED and not claimed_too):
                assert gone is None
            else:
                assert gone.id == held["id"]
                del self.held[me]

        @rule(me=runner, alive=st.booleans())
        def heartbeat(self, me: str, alive: bool) -> None:
            if alive:
                runners.beat(me)
                self.alive.add(me)
            else:
                redis_client.delete(schema.heartbeat(me))
                self.alive.discard(me)

        @invariant()
        def as_modelled(self) -> None:
            for name in runner_names:
                spare, held = spares.of(name), self.held.get(name)
                assert (
                    (spare.id, spare.state, spare.run) == (held["id"], held["state"], held["run"])
                    if held
                    else (spare is None)
                )
            counts: dict[str, int] = {}
            for held in self.held.values():
                if held["state"] != CLAIMED:
                    counts[held["image"]] = counts.get(held["image"], 0) + 1
            assert spares.counts() == counts

    explore(Model, examples=80, steps=25)
