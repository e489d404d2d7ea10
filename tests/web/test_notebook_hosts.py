"""Notebook hosts: forward-auth finds a host's deployment in O(1), whatever the number of
deployments, and only while the deployment lives; a launch whose host another notebook
holds is refused with a clear answer."""

from __future__ import annotations

from urllib.parse import quote

from booklab.phases import Phase
from booklab.state import schema

#: commands that read every deployment's status
SCANS = {"cmdstat_hkeys", "cmdstat_hgetall", "cmdstat_hscan", "cmdstat_hvals", "cmdstat_keys", "cmdstat_scan"}


def forwarded(ctx, slug: str) -> dict[str, str]:
    """What Traefik sends with a script's request to the notebook host ``slug``."""
    return {
        "X-Forwarded-Method": "GET",
        "X-Forwarded-Proto": "http",
        "X-Forwarded-Uri": "/api/status",
        "X-Forwarded-Host": f"{slug}.{ctx.config.fqdn}",
    }


def test_an_unknown_host_is_answered_without_reading_every_deployment(web_client, ctx, redis_client):
    with redis_client.pipeline(transaction=False) as pipe:
        for i in range(0, 20_000, 1000):
            pipe.hset(
                schema.STATUS,
                mapping={f"group/project-{n}:main:user{n}": Phase.READY.value for n in range(i, i + 1000)},
            )
        pipe.execute()
    redis_client.config_resetstat()
    slug = "project-1-main-user1-0123456789abcdef"
    answer = web_client.get(f"/auth/notebook/{slug}", headers=forwarded(ctx, slug))
    assert answer.status_code == 404 and "stopped or never launched" in answer.json["error"]
    used = redis_client.info("commandstats")
    assert not SCANS & used.keys(), sorted(used)


def test_a_stopped_notebook_host_answers_404(web_client, ctx, alice, plain_project):
    created = web_client.post(
        "/api/deployments",
        headers={"Authorization": f"Bearer {alice.token}"},
        json={"project": plain_project, "ref": "main"},
    ).json
    slug = ctx.slug(created["id"])
    answer = web_client.get(f"/auth/notebook/{slug}", headers=forwarded(ctx, slug))
    assert answer.status_code == 401  # found: a script without its owner's token
    stopped = web_client.post(
        f"/api/deployments/{quote(created['id'], safe='')}/stop", headers={"Authorization": f"Bearer {alice.token}"}
    )
    assert stopped.json["status"] == "stopped"
    assert web_client.get(f"/auth/notebook/{slug}", headers=forwarded(ctx, slug)).status_code == 404
    assert not ctx.redis.exists(schema.slug(slug))


def test_a_launch_whose_host_another_notebook_holds_is_refused(web_client, ctx, alice, plain_project):
    slug = ctx.slug(f"{plain_project}:main:{alice.username}")
    # another live deployment holds the slug, as one whose name an attacker made collide would
    ctx.redis.set(schema.slug(slug), "group/other:main:mallory")
    ctx.redis.hset(schema.STATUS, "group/other:main:mallory", Phase.READY.value)
    refused = web_client.post(
        "/api/deployments",
        headers={"Authorization": f"Bearer {alice.token}"},
        json={"project": plain_project, "ref": "main"},
    )
    assert refused.status_code == 409 and "held by another notebook" in refused.json["error"]
    assert ctx.redis.get(schema.slug(slug)) == "group/other:main:mallory"
