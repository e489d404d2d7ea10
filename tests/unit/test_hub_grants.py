"""Booklab's image grants (booklab.hub.grants): a grant admits exactly its user, server and image, until it
expires, and only under the secret it was made with."""

from __future__ import annotations

import pytest

from booklab.hub import grants

SECRET = "the hub's token of Booklab's service"


def test_a_grant_admits_its_user_server_and_image():
    made = grants.grant(SECRET, "alice", "bk-1", "booklab/lab:abc", 60)
    assert grants.valid(SECRET, "alice", "bk-1", "booklab/lab:abc", made)


@pytest.mark.parametrize(
    "secret, user, server, image",
    [
        ("another secret", "alice", "bk-1", "booklab/lab:abc"),
        (SECRET, "bob", "bk-1", "booklab/lab:abc"),
        (SECRET, "alice", "bk-2", "booklab/lab:abc"),
        (SECRET, "alice", "bk-1", "booklab/lab:def"),
    ],
)
def test_a_grant_admits_no_other_user_server_image_or_secret(secret, user, server, image):
    made = grants.grant(SECRET, "alice", "bk-1", "booklab/lab:abc", 60)
    assert not grants.valid(secret, user, server, image, made)


@pytest.mark.parametrize("presented", ["", "forged", "1.abc", "99999999999.abc", "²³.abc", "١٢٣٤٥٦٧٨٩٠١.abc", None, 12])
def test_what_is_not_a_grant_admits_nothing(presented):
    assert not grants.valid(SECRET, "alice", "bk-1", "booklab/lab:abc", presented)


def test_an_expired_grant_admits_nothing_and_its_expiry_cannot_be_moved():
    expired = grants.grant(SECRET, "alice", "bk-1", "booklab/lab:abc", -1)
    assert not grants.valid(SECRET, "alice", "bk-1", "booklab/lab:abc", expired)
    _, mac = expired.split(".")
    assert not grants.valid(SECRET, "alice", "bk-1", "booklab/lab:abc", f"99999999999.{mac}")
