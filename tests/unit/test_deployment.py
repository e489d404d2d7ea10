"""Deployment ids and DNS slugs."""

import re

import pytest

from booklab.errors import InvalidDeployment
from booklab.state.deployment import Deployment


def test_id_round_trips_with_slashes_and_non_ascii():
    dep = Deployment("group/sub/project", "feature/été", "alice")
    assert dep.id == "group/sub/project:feature/été:alice"
    assert Deployment.from_id(dep.id) == dep


@pytest.mark.parametrize("bad", ["a:b", "only:two", "", "x:y:z:w"])
def test_malformed_ids_are_refused(bad):
    with pytest.raises(InvalidDeployment):
        Deployment.from_id(bad)


KEY = b"k" * 32


def test_slug_is_a_dns_label_unique_per_user():
    long = Deployment("g/" + "p" * 200, "b" * 200, "alice")
    for dep in (Deployment("Group/My.Project", "feature/été", "alice"), long):
        assert re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", dep.slug_with(KEY)), dep.slug_with(KEY)
    assert Deployment("g/p", "main", "alice").slug_with(KEY) != Deployment("g/p", "main", "bob").slug_with(KEY)
    assert Deployment("g/p", "main", "alice").slug_with(KEY).startswith("p-main-alice-")


def test_slug_suffix_is_64_bits_of_a_keyed_hash():
    dep = Deployment("g/p", "main", "alice")
    suffix = dep.slug_with(KEY).rsplit("-", 1)[1]
    assert re.fullmatch(r"[0-9a-f]{16,}", suffix), suffix
    # without the key, nobody can compute (or choose a name that collides with) another's slug
    assert dep.slug_with(b"another key" * 3) != dep.slug_with(KEY)
    assert dep.slug_with(b"another key" * 3).startswith("p-main-alice-")
