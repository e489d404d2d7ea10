"""The changes kept of saves that were given up (:mod:`booklab.saveback.kept`), on a real
Redis: each run keeps its own, newest first, each for ``save/keep_failed``, and the file
name a browser is offered never holds what a branch name may (quotes, slashes)."""

from __future__ import annotations

from booklab.saveback import kept
from booklab.state import schema
from booklab.state.deployment import Deployment
from booklab.state.lifecycle import Run
from tests.fixtures.pipeline import PROJECT

DEP = Deployment(PROJECT, "main", "alice")


def test_each_run_keeps_its_own_changes_newest_first(redis_ctx):
    first = kept.store(redis_ctx, Run(DEP.id, 1), b"first archive", 3, "GitLab refused the push.")
    kept.store(redis_ctx, Run(DEP.id, 2), b"second archive", 1, "GitLab did not answer for an hour.")

    assert [k.run for k in kept.listing(redis_ctx, DEP.id)] == [2, 1]
    assert kept.download(redis_ctx, DEP.id) == (kept.listing(redis_ctx, DEP.id)[0], b"second archive")
    assert kept.download(redis_ctx, DEP.id, 1) == (first, b"first archive")
    assert kept.download(redis_ctx, DEP.id, 3) is None
    assert kept.listing(redis_ctx, Deployment(PROJECT, "main", "bob").id) == []
    ttl = redis_ctx.redis.ttl(schema.kept_files(Run(DEP.id, 1).id))
    assert redis_ctx.config.save_keep_failed - 5 < ttl <= redis_ctx.config.save_keep_failed

    redis_ctx.redis.delete(schema.kept_files(Run(DEP.id, 2).id))  # expired
    assert [k.run for k in kept.listing(redis_ctx, DEP.id)] == [1]


def test_the_file_name_offered_holds_only_plain_characters():
    hostile = Deployment(PROJECT, 'x"; filename=evil.sh/é', "alice")
    name = kept.Kept(4, 0, 0, 0, "").filename(hostile.id)
    assert name.endswith("-run4-changes.tar.gz")
    assert all(c.isascii() and (c.isalnum() or c in "-_.") for c in name), name
    assert ".." not in name and "/" not in name


def test_a_user_keeps_the_changes_of_their_last_five_given_up_saves(redis_ctx):
    for number in range(1, kept.PER_USER + 2):
        kept.store(redis_ctx, Run(DEP.id, number), f"archive {number}".encode(), 1, "GitLab refused the push.")
    kept.store(redis_ctx, Run(Deployment(PROJECT, "main", "bob").id, 1), b"bob's", 1, "GitLab refused the push.")

    assert [k.run for k in kept.listing(redis_ctx, DEP.id)] == [6, 5, 4, 3, 2]  # the oldest went
    assert redis_ctx.redis.get(schema.kept_files(Run(DEP.id, 1).id)) is None
    assert [k.run for k in kept.listing(redis_ctx, Deployment(PROJECT, "main", "bob").id)] == [1]
