"""Hostile and odd project paths, branch names and usernames: hostnames stay valid DNS
labels, image names valid Docker references, and option-shaped branches never reach git."""

import re

import pytest

from booklab.errors import CloneError
from booklab.pipeline.builder import image_name
from booklab.pipeline.git import check_branch_name
from booklab.state.deployment import Deployment

DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
DOCKER_REFERENCE = re.compile(
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r":[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
)
HOSTILE = [
    "group/my project",
    "grüppe/ñotebooks",
    "../../etc/passwd",
    "-rf/--help",
    "a/$(touch x);`id`|&",
    "g/" + "p" * 255,
    "---/___",
    "Ω/Ω",
    "a/b/c/d/e/f",
    "UPPER/Case.Mixed",
]
KEY = b"slug key of a test" * 2
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize("path", HOSTILE)
@pytest.mark.parametrize("ref", ["main", "feature/été", "x" * 255, "-dash", "$(id)"])
def test_slugs_are_dns_labels_and_unique(path, ref):
    slug = Deployment(path, ref, "alice").slug_with(KEY)
    assert DNS_LABEL.fullmatch(slug), slug
    assert re.search(r"-[0-9a-f]{16}$", slug), slug  # the keyed suffix is never cut short
    assert slug != Deployment(path, ref, "bob").slug_with(KEY)


@pytest.mark.parametrize("path", HOSTILE)
def test_image_names_are_valid_docker_references(path):
    name = image_name("booklab", path, SHA)
    assert DOCKER_REFERENCE.fullmatch(name), name
    assert len(name.split(":")[0]) <= 255


@pytest.mark.parametrize(
    "branch", ["-rf", "--upload-pack=sh", "a;rm -rf /", "$(touch x)", "a b", "..", "a/../b", "x" * 10 + "\n"]
)
def test_option_shaped_or_invalid_branches_are_refused_before_git(branch):
    # names git itself allows (`id`, a|b) stay allowed: they only ever reach git as data
    with pytest.raises(CloneError, match="not a valid branch name"):
        check_branch_name(branch)
