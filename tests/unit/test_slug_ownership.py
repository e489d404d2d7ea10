"""A notebook's host name (its slug) belongs to one deployment: a second deployment whose
slug collides is refused, and the first keeps its host."""

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
    deployments.forget_slug(slug, dep.id)
    assert not redis_client.exists(schema.slug(slug))
