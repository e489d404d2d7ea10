"""docker-compose.yml, as docker-compose reads it: the whole stack, scalable runners, no
secret in a command line, Booklab's services on the host's loopback where notebooks do not
reach them, Traefik's routes file as a real Traefik reads it, and every Booklab service's
command present in its image."""

from __future__ import annotations

import os
import subprocess

import requests
import yaml

from booklab import traefik_config
from tests.fixtures.services import ROOT, free_port, stop_process, wait_until

SETTINGS = {"FQDN": "booklab.example.org", "FLOWER_PASSWORD": "fl0wer",
            "REDIS_PASSWORD": "r3dis-pass",
            "BOOKLAB_GITLAB_CONSUMER_KEY": "app-id", "BOOKLAB_GITLAB_CONSUMER_SECRET": "app-s3cret"}


def compose_config(**settings: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS} | settings
    return subprocess.run(["docker-compose", "--file", str(ROOT / "docker-compose.yml"), "config"],
                          env=env, capture_output=True, text=True, cwd=ROOT)


def test_the_stack_is_valid_with_scalable_runners_behind_traefik():
    result = compose_config(**SETTINGS)
    assert result.returncode == 0, result.stderr
    stack = yaml.safe_load(result.stdout)
    services = stack["services"]
    assert set(services) == {"redis", "traefik", "web", "runner", "flower"}
    runner = services["runner"]
    assert "container_name" not in runner and "ports" not in runner  # `--scale runner=N` works
    mounts = [f"{v['source']}:{v['target']}" if isinstance(v, dict) else v for v in runner["volumes"]]
    assert any(m.startswith("/var/run/docker.sock:/var/run/docker.sock") for m in mounts), mounts
    assert services["flower"]["environment"]["FLOWER_BASIC_AUTH"] == "flower:fl0wer"
    for name, service in services.items():  # secrets go through the environment only
        assert not any(secret in " ".join(service.get("command") or []) for secret in SETTINGS.values()), name
    assert not services["flower"].get("secrets")  # Flower needs no key
    for name in ("web", "runner"):  # the secret key not even there: in a file only its owner reads
        environment = services[name]["environment"]
        assert "BOOKLAB_SECRET_KEY" not in environment, name
        assert environment["BOOKLAB_SECRET_KEY_FILE"] == "/run/secrets/secret_key", name
        assert [s["source"] if isinstance(s, dict) else s for s in services[name]["secrets"]] == ["secret_key"], name


def test_notebooks_reach_nothing_of_booklabs_but_traefiks_entrypoint():
    services = yaml.safe_load(compose_config(**SETTINGS).stdout)["services"]
    # Booklab's services share the host's network and listen on its loopback only...
    assert {name: s.get("network_mode") for name, s in services.items()} == dict.fromkeys(services, "host")
    assert services["web"]["environment"]["BOOKLAB_WEB_HOST"] == "127.0.0.1"
    assert "--address=127.0.0.1" in services["flower"]["command"]
    redis_command = " ".join(services["redis"]["command"])
    assert "--bind 127.0.0.1" in redis_command and "--appendonly yes" in redis_command
    # ...with a password for Redis, given on its standard input, not its command line
    assert "requirepass" in redis_command and SETTINGS["REDIS_PASSWORD"] not in redis_command
    for name in ("web", "runner"):
        assert services[name]["environment"]["BOOKLAB_REDIS_URL"] == f"redis://:{SETTINGS['REDIS_PASSWORD']}@127.0.0.1:6379/0"
    # notebooks on their own network (runners create it isolated); Traefik without an API
    assert services["runner"]["environment"]["BOOKLAB_NOTEBOOK_NETWORK"] == "booklab-notebooks"
    assert services["runner"]["environment"]["BOOKLAB_ROUTES_TRAEFIK_API"] == ""
    traefik = services["traefik"]["command"]
    assert "--providers.docker.network=booklab-notebooks" in traefik
    assert not any(flag.startswith("--api") for flag in traefik)


def test_traefik_terminates_tls_and_runners_check_routes_on_loopback():
    services = yaml.safe_load(compose_config(**SETTINGS).stdout)["services"]
    traefik = {flag.lower() for flag in services["traefik"]["command"]}
    # the flags test_https.py runs a real Traefik with: HTTPS on 443, HTTP redirected, the check entrypoint
    assert {flag.lower() for flag in traefik_config.tls_flags(":443", "127.0.0.1:8000")} <= traefik
    runner = services["runner"]["environment"]
    assert (runner["BOOKLAB_ROUTES_SCHEME"], runner["BOOKLAB_ROUTES_ENTRYPOINT"]) == ("https", "websecure,check")
    assert runner["BOOKLAB_ROUTES_TRAEFIK_ENTRYPOINT_URL"] == "http://127.0.0.1:8000"
    assert services["web"]["environment"]["BOOKLAB_WEB_URL"] == "https://booklab.example.org"  # Secure cookies


def test_compose_routes_file_routes_the_web_tier_and_flower_on_loopback(tmp_path):
    """The file provider's routes, read by a real Traefik as docker-compose.yml mounts them: over HTTPS only."""
    api = f"127.0.0.1:{free_port()}"
    flags = [*traefik_config.static_flags(f"127.0.0.1:{free_port()}", api, routes_file=ROOT / "deploy" / "traefik" / "routes.yml"),
             *traefik_config.tls_flags(f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")]
    with (tmp_path / "traefik.log").open("w") as log:
        traefik = subprocess.Popen(["traefik", *flags], env={**os.environ, "FQDN": "booklab.example.org"},
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        routers = wait_until(lambda: _routers(f"http://{api}"), 30, "Traefik to read the routes file")
    finally:
        stop_process(traefik)
    assert {r["name"]: (r["rule"], r["service"], r["entryPoints"], "tls" in r) for r in routers} == {
        "booklab@file": ("Host(`booklab.example.org`)", "booklab", ["websecure"], True),
        "flower@file": ("Host(`flower.booklab.example.org`)", "flower", ["websecure"], True)}


def _routers(api_url: str) -> list[dict]:
    try:
        return [r for r in requests.get(f"{api_url}/api/http/routers", timeout=2).json() if r["provider"] == "file"]
    except requests.RequestException:
        return []


def test_a_missing_secret_stops_compose_with_a_sentence():
    result = compose_config(**{k: v for k, v in SETTINGS.items() if k != "REDIS_PASSWORD"})
    assert result.returncode != 0
    assert "set REDIS_PASSWORD to a long random password" in result.stderr


def test_every_booklab_service_command_exists_in_the_runner_image(runner_image, docker_engine):
    services = yaml.safe_load(compose_config(**SETTINGS).stdout)["services"]
    ours = {name: s["command"][0] for name, s in services.items() if s["image"] == "booklab/runner:latest"}
    assert set(ours) == {"web", "runner", "flower"}
    for name, program in ours.items():
        output = docker_engine.containers.run(runner_image, ["sh", "-c", f"command -v {program}"], remove=True)
        assert output.strip(), f"{program} ({name}) is not in the runner image"
