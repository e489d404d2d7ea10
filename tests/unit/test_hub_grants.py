"""Booklab's image grants (booklab.hub.grants): a grant admits exactly its user, server, image and limits,
until it expires, and only under the secret it was made with."""

from __future__ import annotations

import pytest

from booklab.hub import grants

SECRET = "the hub's token of Booklab's service"
MIB = 1024**2


def granted(lifetime: int = 60) -> dict[str, str]:
    return grants.options(SECRET, "alice", "bk-1", "booklab/lab:abc", 512 * MIB, 0.5, lifetime)


def test_a_grant_admits_its_user_server_image_and_limits():
    made = granted()
    assert made["image"] == "booklab/lab:abc" and made[grants.MEMORY] == str(512 * MIB) and made[grants.CPUS] == "0.5"
    assert grants.valid(SECRET, "alice", "bk-1", made)


@pytest.mark.parametrize(
    "secret, user, server, changed",
    [
        ("another secret", "alice", "bk-1", {}),
        (SECRET, "bob", "bk-1", {}),
        (SECRET, "alice", "bk-2", {}),
        (SECRET, "alice", "bk-1", {"image": "booklab/lab:def"}),
        (SECRET, "alice", "bk-1", {grants.MEMORY: str(64 * 1024 * MIB)}),
        (SECRET, "alice", "bk-1", {grants.CPUS: "16"}),
        (SECRET, "alice", "bk-1", {grants.CPUS: ""}),
        # fields run together differently
        (SECRET, "alice", "bk-1", {"image": f"booklab/lab:abc\n{512 * MIB}", grants.MEMORY: "0.5", grants.CPUS: ""}),
    ],
)
def test_a_grant_admits_no_other_user_server_image_limit_or_secret(secret, user, server, changed):
    assert not grants.valid(secret, user, server, {**granted(), **changed})


@pytest.mark.parametrize(
    "presented",
    ["", "forged", "1.abc", "99999999999.abc", "²³.abc", "١٢٣٤٥٦٧٨٩٠١.abc", None, 12, "99999999999.été", "9" * 5000],
)
def test_what_is_not_a_grant_admits_nothing(presented):
    assert not grants.valid(SECRET, "alice", "bk-1", {**granted(), grants.OPTION: presented})
    assert not grants.valid(SECRET, "alice", "bk-1", {"image": "booklab/lab:abc"})


def test_an_expired_grant_admits_nothing_and_its_expiry_cannot_be_moved():
    expired = granted(lifetime=-1)
    assert not grants.valid(SECRET, "alice", "bk-1", expired)
    _, mac = expired[grants.OPTION].split(".")
    assert not grants.valid(SECRET, "alice", "bk-1", {**expired, grants.OPTION: f"99999999999.{mac}"})
