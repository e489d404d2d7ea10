"""Deployment state in Redis: a notebook's host name (its slug) belongs to one deployment
(a second deployment whose slug collides is refused, the first keeps its host), and
``status`` forgets deployments a while after they ended."""

import time

import pytest

from booklab import schema
from booklab.deployment import Deployment
from booklab.phases import Phase
from booklab.state import Deployments, SlugTaken

KEY = b"slug key of a test" * 2


def test_a_slug_held_by_another_live_deployment_is_never_taken_over(redis_client):
    deployments = Deployments(redis_client)
    victim, attacker = Deployment("g/p", "main", "alice"), Deployment("g/p", "main", "mallory")
    slug = victim.slug_with(KEY)
    assert deployments.start_or_join(victim, slug)
    # as an attacker who found a user or branch name whose slug collides with the victim's
    with pytest.raises(SlugTaken, match="another notebook"):
        deployments.start_or_join(attacker, slug)
    assert deployments.by_slug(slug) == victim
    assert deployments.status(attacker.id) is None and deployments.queued() == [victim.id]
    # the victim joins its own deployment as before
    assert not deployments.start_or_join(victim, slug)


def test_an_ended_deployment_gives_its_slug_up(redis_client):
    deployments = Deployments(redis_client)
    dep = Deployment("g/p", "main", "alice")
    slug = dep.slug_with(KEY)
    deployments.start_or_join(dep, slug)
    redis_client.hset(schema.STATUS, dep.id, Phase.STOPPED.value)
    assert deployments.by_slug(slug) is None  # a leftover key finds nothing once it ended
    deployments.ending(dep.id, slug)
    assert not redis_client.exists(schema.slug(slug))


def test_statuses_are_forgotten_a_while_after_their_deployment_ended(redis_client):
    deployments = Deployments(redis_client)
    old, again, recent = (Deployment("g/p", ref, "alice") for ref in ("old", "again", "recent"))
    for dep in (old, again, recent):
        deployments.start_or_join(dep, dep.slug_with(KEY))
    long_ago = time.time() - schema.RECORD_TTL - 60
    for dep in (old, again):
        deployments.ending(dep.id, dep.slug_with(KEY), now=long_ago)
        redis_client.hset(schema.STATUS, dep.id, Phase.FAILED.value)  # as its final event does
    deployments.start_or_join(again, again.slug_with(KEY))  # launched again since
    deployments.ending(recent.id, recent.slug_with(KEY))
    redis_client.hset(schema.STATUS, recent.id, Phase.STOPPED.value)
    assert deployments.all_statuses() == {again.id: Phase.TODO, recent.id: Phase.STOPPED}
    assert [(d.ref, status) for d, status in deployments.of_user("alice")] == [
        ("again", Phase.TODO), ("recent", Phase.STOPPED)]
