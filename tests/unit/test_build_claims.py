"""The claim of an image's build (booklab.state.build_claims) on a real Redis: one launch holds it, the
others learn who; only its holder lets it go, and not while it pushes the image; it is taken over only from a
runner whose heartbeat expired.
A small stateful exploration checks any order of these against a model of one claim."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from booklab.state import schema
from booklab.state.build_claims import BuildClaims, Holder
from booklab.state.records import Runners
from tests.fixtures.stateful import explore

IMAGE = "booklab/demo-notebooks-0123456789ab:" + "c" * 40
TTL = 60
A = Holder("demo/notebooks:main:alice#1", "runner-1@a", "host-a")
B = Holder("demo/notebooks:main:bob#1", "runner-2@b", "host-b")


def test_the_first_launch_takes_the_claim_and_the_next_learns_who_holds_it(redis_client):
    claims = BuildClaims(redis_client)
    assert claims.holder(IMAGE) is None
    assert claims.take(IMAGE, A, TTL) is None
    assert claims.take(IMAGE, B, TTL) == A
    assert claims.holder(IMAGE) == A
    assert 0 < redis_client.ttl(schema.build_claim(IMAGE)) <= TTL
    # its own run takes it again (a step tried again): its TTL starts over
    redis_client.expire(schema.build_claim(IMAGE), 5)
    assert claims.take(IMAGE, A, TTL) is None
    assert redis_client.ttl(schema.build_claim(IMAGE)) > 5
    # another image is another claim
    assert claims.take(IMAGE.replace("c" * 40, "d" * 40), B, TTL) is None


def test_only_its_holder_releases_the_claim(redis_client):
    claims = BuildClaims(redis_client)
    claims.take(IMAGE, A, TTL)
    assert not claims.release(IMAGE, B.run)
    assert claims.holder(IMAGE) == A
    assert claims.release(IMAGE, A.run)
    assert claims.holder(IMAGE) is None
    assert not claims.release(IMAGE, A.run)  # released already: nothing happens
    assert claims.take(IMAGE, B, TTL) is None
    assert not claims.release(IMAGE, A.run)  # a late release of the old holder leaves the new one alone
    assert claims.holder(IMAGE) == B


def test_a_claim_whose_image_is_being_pushed_stays_until_the_push_ends(redis_client):
    claims = BuildClaims(redis_client)
    claims.take(IMAGE, A, TTL)
    assert not claims.pushing(IMAGE, B.run)  # only its holder pushes under the claim
    assert claims.pushing(IMAGE, A.run)
    assert not claims.release(IMAGE, A.run)  # its run ended: the push goes on, and so does the claim
    assert claims.holder(IMAGE) == A
    assert claims.release(IMAGE, A.run, pushed=True)
    assert claims.holder(IMAGE) is None
    assert not claims.pushing(IMAGE, A.run)  # no claim, nothing to keep


def test_the_claim_is_taken_over_only_from_a_runner_whose_heartbeat_expired(redis_client):
    claims, runners = BuildClaims(redis_client), Runners(redis_client)
    runners.beat(A.runner)
    claims.take(IMAGE, A, TTL)
    assert not claims.take_over(IMAGE, A, B, TTL)  # alive
    assert claims.holder(IMAGE) == A

    redis_client.delete(schema.heartbeat(A.runner))  # expired
    assert claims.take_over(IMAGE, A, B, TTL)
    assert claims.holder(IMAGE) == B
    third = Holder("demo/notebooks:main:carol#1", "runner-3@a", "host-a")
    assert not claims.take_over(IMAGE, A, third, TTL)  # A no longer holds it: B's claim stays
    assert claims.holder(IMAGE) == B


def test_any_order_of_takes_releases_take_overs_and_lost_runners_keeps_one_holder(redis_client):
    launches = [A, B, Holder("demo/notebooks:main:carol#1", "runner-3@a", "host-a")]
    claims, runners = BuildClaims(redis_client), Runners(redis_client)
    launch = st.sampled_from(launches)

    class OneClaim(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            redis_client.flushall()
            for each in launches:
                runners.beat(each.runner)
            self.holder: Holder | None = None
            self.alive = {each.runner for each in launches}
            self.seen: dict[Holder, Holder] = {}  # the holder each waiting launch last saw

        @rule(me=launch)
        def take(self, me: Holder) -> None:
            found = claims.take(IMAGE, me, TTL)
            if self.holder in (None, me):
                assert found is None
                self.holder = me
            else:
                assert found == self.holder
                self.seen[me] = found

        @rule(me=launch)
        def release(self, me: Holder) -> None:
            assert claims.release(IMAGE, me.run) == (self.holder == me)
            if self.holder == me:
                self.holder = None

        @rule(me=launch)
        def take_over_from_the_holder_it_saw(self, me: Holder) -> None:
            lost = self.seen.get(me)
            if lost is None:
                return
            expected = self.holder == lost and lost.runner not in self.alive
            assert claims.take_over(IMAGE, lost, me, TTL) == expected
            if expected:
                self.holder = me

        @rule(me=launch, alive=st.booleans())
        def heartbeat(self, me: Holder, alive: bool) -> None:
            if alive:
                runners.beat(me.runner)
                self.alive.add(me.runner)
            else:
                redis_client.delete(schema.heartbeat(me.runner))
                self.alive.discard(me.runner)

        @invariant()
        def one_holder_as_modelled(self) -> None:
            assert claims.holder(IMAGE) == self.holder

    explore(OneClaim, examples=60, steps=20)
