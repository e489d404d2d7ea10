"""What routes render: notebook URLs, Traefik's container labels and KV keys, the chosen publisher."""

import dataclasses

import pytest

from booklab.config import Config, load
from booklab.context import Context
from booklab.errors import ConfigError
from booklab.pipeline import traefik_config
from booklab.pipeline.launcher import Notebook
from booklab.pipeline.routes.names import ROUTE_LABEL, docker_labels, kv_pairs, port_suffix, public_url, route_label
from booklab.pipeline.routes.publishers import DockerLabelRoutes, RedisRoutes, Routes, make_routes
from booklab.state import schema

SLUG = "notebooks-main-alice-5c12470e"


@pytest.mark.parametrize(
    "scheme, port, url",
    [
        ("http", 0, f"http://{SLUG}.example.org/"),
        ("http", 80, f"http://{SLUG}.example.org/"),
        ("https", 0, f"https://{SLUG}.example.org/"),
        ("https", 443, f"https://{SLUG}.example.org/"),
        ("https", 80, f"https://{SLUG}.example.org:80/"),
        ("http", 8000, f"http://{SLUG}.example.org:8000/"),
    ],
)
def test_public_url_leaves_out_the_schemes_default_port(scheme, port, url):
    assert public_url(Config(fqdn="example.org", routes_scheme=scheme, routes_port=port), SLUG) == url


def test_the_port_suffix_names_only_a_port_that_is_not_the_schemes_default():
    ports = [("http", 0), ("http", 80), ("https", 443), ("https", 80), ("http", 8000)]
    assert [port_suffix(Config(routes_scheme=s, routes_port=p)) for s, p in ports] == ["", "", "", ":80", ":8000"]


def test_docker_labels_route_the_slug_host_to_jupyters_port():
    config = Config(fqdn="example.org", routes_entrypoint="websecure", secret_key="the key")
    assert docker_labels(config, SLUG) == {
        ROUTE_LABEL: route_label("the key"),
        "traefik.enable": "true",
        f"traefik.http.routers.{SLUG}.rule": f"Host(`{SLUG}.example.org`)",
        f"traefik.http.routers.{SLUG}.entrypoints": "websecure",
        f"traefik.http.services.{SLUG}.loadbalancer.server.port": "8888",
    }
    with_network = docker_labels(Config(notebook_network="traefik", secret_key="the key"), SLUG)
    assert with_network["traefik.docker.network"] == "traefik"


def test_the_route_label_is_known_only_with_the_secret_key():
    assert len(route_label("the key")) == 32 and route_label("the key") != route_label("another key")


def test_a_route_may_be_on_several_entrypoints():
    config = Config(fqdn="example.org", routes_entrypoint="websecure, check", secret_key="k")
    assert docker_labels(config, SLUG)[f"traefik.http.routers.{SLUG}.entrypoints"] == "websecure,check"
    pairs = kv_pairs(config, SLUG, "http://10.0.0.7:8888/")
    assert [pairs[f"traefik/http/routers/{SLUG}/entrypoints/{i}"] for i in (0, 1)] == ["websecure", "check"]


def test_kv_pairs_route_the_slug_host_to_the_published_port():
    assert kv_pairs(Config(fqdn="example.org"), SLUG, "http://10.0.0.7:49153/") == {
        f"traefik/http/routers/{SLUG}/rule": f"Host(`{SLUG}.example.org`)",
        f"traefik/http/routers/{SLUG}/entrypoints/0": "web",
        f"traefik/http/routers/{SLUG}/service": SLUG,
        f"traefik/http/services/{SLUG}/loadbalancer/servers/0/url": "http://10.0.0.7:49153",
    }


@pytest.mark.parametrize("publisher, kind", [("none", Routes), ("docker", DockerLabelRoutes), ("redis", RedisRoutes)])
def test_the_setting_chooses_the_publisher(publisher, kind):
    environ = {"BOOKLAB_ROUTES_PUBLISHER": publisher, "BOOKLAB_ROUTES_AUTH_URL": "http://web:8080"}
    assert type(make_routes(load(None, environ=environ), None, None)) is kind


def test_without_routes_a_notebook_keeps_its_direct_address():
    routes = make_routes(Config(), None, None)
    notebook = Notebook("c0ffee", "booklab-x", "http://127.0.0.1:49153/", "token", "image")
    assert routes.labels(SLUG) == {} and routes.publish(SLUG, notebook) == notebook.url


@pytest.mark.parametrize(
    "redis_url",
    [
        "redis://localhost:6379/0",
        "redis://booklab:secret@redis.example.org:6380/2",
        "rediss://redis.example.org?db=3&ssl_cert_reqs=required",
        "unix://:secret@localhost/run/redis/redis.sock?db=0",
        "redis://[::1]:6379/%30",
    ],
)
def test_traefiks_routes_are_written_in_the_database_of_routes_redis_db_as_booklab_reaches_redis(redis_url):
    config = load(None, environ={"BOOKLAB_REDIS_URL": redis_url, "BOOKLAB_ROUTES_REDIS_DB": "5"})
    ctx = Context(config)
    try:
        booklab, routes = ctx.redis.connection_pool, ctx.route_tree.connection_pool
        settings = ("host", "port", "path", "username", "password", "ssl_cert_reqs", "decode_responses")
        assert {name: routes.connection_kwargs.get(name) for name in settings} == {
            name: booklab.connection_kwargs.get(name) for name in settings
        }
        assert routes.connection_kwargs["db"] == 5
        assert routes.connection_class is booklab.connection_class
    finally:
        ctx.close()


def test_routes_in_booklabs_own_database_share_its_client():
    ctx = Context(load(None, environ={"BOOKLAB_REDIS_URL": "redis://localhost/1", "BOOKLAB_ROUTES_REDIS_DB": "1"}))
    assert ctx.route_tree is ctx.redis


@pytest.mark.parametrize("value", ["-1", "traefik"])
def test_a_routes_database_that_is_not_a_database_number_is_refused(value):
    with pytest.raises(ConfigError, match="routes/redis_db"):
        load(None, environ={"BOOKLAB_ROUTES_REDIS_DB": value})


@pytest.mark.parametrize(
    "environ, sentence",
    [
        ({"BOOKLAB_ROUTES_PUBLISHER": "consul"}, "routes/publisher must be none, docker or redis"),
        ({"BOOKLAB_ROUTES_SCHEME": "ftp"}, "routes/scheme must be http or https"),
        ({"BOOKLAB_ROUTES_PORT": "70000"}, "routes/port must be a TCP port or 0"),
        ({"BOOKLAB_ROUTES_TRAEFIK_API": "traefik:8080"}, "routes/traefik_api must be a URL"),
    ],
)
def test_invalid_route_settings_stop_with_one_sentence(environ, sentence):
    with pytest.raises(ConfigError, match=sentence):
        load(None, environ=environ)


@pytest.mark.parametrize(
    "redis_url, endpoint, username",
    [
        ("redis://127.0.0.1:6379/0", "127.0.0.1:6379", None),
        ("redis://traefik:pass@[::1]/0", "[::1]:6379", "traefik"),
    ],
)
def test_traefik_reads_the_routes_database_of_booklabs_redis_with_its_login_off_its_command_line(
    redis_url, endpoint, username
):
    flags = traefik_config.static_flags("127.0.0.1:80", "127.0.0.1:8080", redis_url=redis_url, routes_redis_db=3)
    assert f"--providers.redis.endpoints={endpoint}" in flags and "--providers.redis.db=3" in flags
    assert (f"--providers.redis.username={username}" in flags) is bool(username)
    assert not any("pass" in flag for flag in flags)
    assert traefik_config.static_environment(flags, redis_url).get("TRAEFIK_PROVIDERS_REDIS_PASSWORD") == (
        "pass" if username else None
    )


def test_traefik_is_not_started_for_redis_over_tls_it_would_not_speak():
    with pytest.raises(ValueError, match="plain TCP"):
        traefik_config.static_flags("127.0.0.1:80", "127.0.0.1:8080", redis_url="rediss://redis.example.org/0")


def _keyspace_events(client, pattern: str, write) -> list[str]:
    """The keys of ``pattern`` whose change Redis announces while ``write`` runs, as it does to Traefik's Redis
    provider (which turns keyspace notifications on, and reads its whole tree again for each)."""
    before = client.config_get("notify-keyspace-events")["notify-keyspace-events"]
    client.config_set("notify-keyspace-events", "KEA")
    listener = client.pubsub()
    try:
        listener.psubscribe(f"__keyspace@*__:{pattern}")
        listener.get_message(timeout=1)  # the subscription's confirmation
        write()
        events = []
        while (message := listener.get_message(timeout=0.2)) is not None:
            events.append(message["channel"].split(":", 1)[1])
        return events
    finally:
        listener.close()
        client.config_set("notify-keyspace-events", before)


def test_a_redis_route_costs_traefik_one_reading_per_key_of_its_own_and_goes_whole(redis_ctx):
    config = dataclasses.replace(redis_ctx.config, routes_auth_url="http://web:8080")
    routes, tree = RedisRoutes(config, redis_ctx.redis, redis_ctx.route_tree), redis_ctx.route_tree
    routes.prepare("first-0123456789abcdef", "http://127.0.0.1:9/")
    # a route published before its forward-auth was shared: its own middleware goes with it too, headers listed
    # (before they were one regex) or not
    own = "traefik/http/middlewares/second-0123456789abcdef-auth/forwardAuth"
    headers = ("Authorization", "Private-Token", "Cookie")
    tree.mset(
        {
            f"{own}/address": "http://web:8080/auth/notebook/second-0123456789abcdef",
            **{f"{own}/authResponseHeaders/{i}": header for i, header in enumerate(headers)},
        }
    )

    changed = _keyspace_events(tree, "traefik/*", lambda: routes.prepare("second-0123456789abcdef", "http://h:9/"))
    # its router (rule, entrypoint, service, middleware) and its backend; the anchor and the shared middleware
    # were written with the first route
    route = [key for key in tree.keys("traefik/http/*/second-0123456789abcdef*/*") if not key.startswith(own)]
    assert sorted(changed) == sorted(route)
    assert len(changed) == 5
    shared = tree.get("traefik/http/routers/second-0123456789abcdef/middlewares/0")
    assert tree.get(f"traefik/http/middlewares/{shared}/forwardAuth/address") == "http://web:8080/auth/notebook"

    routes.remove("second-0123456789abcdef")
    assert tree.keys("traefik/http/*/second-0123456789abcdef*") == []
    assert tree.keys("traefik/http/*/first-0123456789abcdef*/*") != [] and tree.exists(schema.TRAEFIK_ANCHOR)
    assert tree.exists(f"traefik/http/middlewares/{shared}/forwardAuth/address")  # the first route's still
