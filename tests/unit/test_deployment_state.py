"""Deployment state in Redis: a notebook's host name (its slug) belongs to one deployment
(a second deployment whose slug collides is refused, the first keeps its host), and
``status`` forgets deployments a while after they ended."""

import time

import pytest

from booklab.errors import SlugTaken
from booklab.phases import Phase
from booklab.state import schema
from booklab.state.deployment import Deployment
from booklab.state.events import EventLog
from booklab.state.lifecycle import Lifecycle, Outcome
from booklab.state.records import Deployments

KEY = b"slug key of a test" * 2


def request(redis_client, dep: Deployment) -> Outcome:
    return Lifecycle(redis_client, EventLog(redis_client)).request(dep, dep.slug_with(KEY), {}, b"sealed", 60)[0]


def test_a_slug_held_by_another_live_deployment_is_never_taken_over(redis_client):
    deployments = Deployments(redis_client)
    victim, attacker = Deployment("g/p", "main", "alice"), Deployment("g/p", "main", "mallory")
    slug = victim.slug_with(KEY)
    lifecycle = Lifecycle(redis_client, EventLog(redis_client))
    assert lifecycle.request(victim, slug, {}, b"sealed", 60)[0] is Outcome.STARTED
    # as an attacker who found a user or branch name whose slug collides with the victim's
    with pytest.raises(SlugTaken, match="another notebook"):
        lifecycle.request(attacker, slug, {}, b"sealed", 60)
    assert deployments.by_slug(slug) == victim
    assert deployments.status(attacker.id) is None and redis_client.zrange(schema.QUEUE, 0, -1) == [victim.id]
    # the victim joins its own deployment as before
    assert lifecycle.request(victim, slug, {}, b"sealed", 60)[0] is Outcome.JOINED


def test_an_ended_deployment_gives_its_slug_up(redis_client):
    deployments = Deployments(redis_client)
    lifecycle = Lifecycle(redis_client, EventLog(redis_client))
    dep = Deployment("g/p", "main", "alice")
    slug = dep.slug_with(KEY)
    lifecycle.request(dep, slug, {}, b"sealed", 60)
    assert deployments.by_slug(slug) == dep
    assert lifecycle.stop(dep.id)[0] is Phase.TODO  # stopped while queued: over at once
    assert deployments.by_slug(slug) is None and not redis_client.exists(schema.slug(slug))


def test_statuses_are_forgotten_a_while_after_their_deployment_ended(redis_client):
    deployments = Deployments(redis_client)
    lifecycle = Lifecycle(redis_client, EventLog(redis_client))
    old, again, recent = (Deployment("g/p", ref, "alice") for ref in ("old", "again", "recent"))
    for dep in (old, again, recent):
        request(redis_client, dep)
        lifecycle.stop(dep.id)
    long_ago = time.time() - schema.RECORD_TTL - 60
    redis_client.zadd(schema.ENDED, {old.id: long_ago, again.id: long_ago})  # as if they ended long ago
    request(redis_client, again)  # launched again since
    deployments.forget_long_ended()
    assert deployments.all_statuses() == {again.id: Phase.TODO, recent.id: Phase.STOPPED}
    assert [(d.ref, status) for d, status in deployments.of_user("alice")] == [
        ("again", Phase.TODO),
        ("recent", Phase.STOPPED),
    ]
