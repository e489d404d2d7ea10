"""docker-compose.yml, as docker-compose reads it: the whole stack, scalable runners, no
secret in a command line, Booklab's services on the host's loopback where notebooks do not
reach them, Traefik's routes file as a real Traefik reads it, and every Booklab service's
command present in its image."""

from __future__ import annotations

import os
import subprocess

import redis
import requests
import yaml

from booklab.config import load
from booklab.pipeline import traefik_config
from booklab.pipeline.routes.names import kv_pairs
from booklab.state import schema
from tests.fixtures.services import ROOT, free_port, stop_process, wait_until

SETTINGS = {
    "FQDN": "booklab.example.org",
    "FLOWER_PASSWORD": "fl0wer",
    "REDIS_PASSWORD": "r3dis-pass",
    "BOOKLAB_GITLAB_CONSUMER_KEY": "app-id",
    "BOOKLAB_GITLAB_CONSUMER_SECRET": "app-s3cret",
}


def compose_config(**settings: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS} | settings
    return subprocess.run(
        ["docker-compose", "--file", str(ROOT / "docker-compose.yml"), "config"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


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
    assert "/var/lib/docker:/var/lib/docker:ro" in mounts, mounts  # images/max_disk's share of the disk
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
        assert (
            services[name]["environment"]["BOOKLAB_REDIS_URL"]
            == f"redis://:{SETTINGS['REDIS_PASSWORD']}@127.0.0.1:6379/0"
        )
    # notebooks on their own network (runners create it isolated); Traefik without an API or Docker socket
    assert services["runner"]["environment"]["BOOKLAB_NOTEBOOK_NETWORK"] == "booklab-notebooks"
    assert services["runner"]["environment"]["BOOKLAB_ROUTES_TRAEFIK_API"] == ""
    traefik = services["traefik"]
    assert "command" not in traefik and not any(name.startswith("TRAEFIK_API") for name in traefik["environment"])
    assert not any("docker.sock" in str(volume) for volume in traefik["volumes"])


def test_traefik_terminates_tls_and_runners_check_routes_on_loopback():
    services = yaml.safe_load(compose_config(**SETTINGS).stdout)["services"]
    traefik = services["traefik"]["environment"]
    # the flags test_https.py runs a real Traefik with: HTTPS on 443, HTTP redirected, the check entrypoint
    assert as_environment(traefik_config.tls_flags(":443", "127.0.0.1:8000")).items() <= traefik.items()
    runner = services["runner"]["environment"]
    assert (runner["BOOKLAB_ROUTES_SCHEME"], runner["BOOKLAB_ROUTES_ENTRYPOINT"]) == ("https", "websecure,check")
    assert runner["BOOKLAB_ROUTES_TRAEFIK_ENTRYPOINT_URL"] == "http://127.0.0.1:8000"
    assert services["web"]["environment"]["BOOKLAB_WEB_URL"] == "https://booklab.example.org"  # Secure cookies


def as_environment(flags: list[str]) -> dict[str, str]:
    """Traefik's command-line flags as the environment variables that say the same."""
    pairs = (flag.removeprefix("--").split("=", 1) for flag in flags)
    return {"TRAEFIK_" + name.upper().replace(".", "_"): value for name, value in pairs}


def test_compose_traefik_reads_routes_from_redis_with_its_password_and_the_routes_file(tmp_path, own_redis):
    """Traefik configured by docker-compose.yml's environment, its addresses moved to free
    loopback ports and an API added to look: it reads the notebook routes the runners write
    to Redis, logged in with the password, and the web tier's and Flower's from the file."""
    client = redis.Redis.from_url(own_redis.url)
    client.config_set("requirepass", SETTINGS["REDIS_PASSWORD"])
    client = redis.Redis.from_url(own_redis.url, password=SETTINGS["REDIS_PASSWORD"])
    config = load(
        os.devnull, environ={"BOOKLAB_FQDN": "booklab.example.org", "BOOKLAB_ROUTES_ENTRYPOINT": "websecure,check"}
    )
    client.mset({schema.TRAEFIK_ANCHOR: "1", **kv_pairs(config, "nb-1234", "http://127.0.0.1:9/")})

    environment = yaml.safe_load(compose_config(**SETTINGS).stdout)["services"]["traefik"]["environment"]
    api = f"127.0.0.1:{free_port()}"
    environment |= {
        "TRAEFIK_ENTRYPOINTS_WEB_ADDRESS": f"127.0.0.1:{free_port()}",
        "TRAEFIK_ENTRYPOINTS_WEBSECURE_ADDRESS": f"127.0.0.1:{free_port()}",
        "TRAEFIK_ENTRYPOINTS_CHECK_ADDRESS": f"127.0.0.1:{free_port()}",
        "TRAEFIK_PROVIDERS_REDIS_ENDPOINTS": f"127.0.0.1:{own_redis.port}",
        "TRAEFIK_PROVIDERS_FILE_DIRECTORY": str(ROOT / "deploy" / "traefik"),
        "TRAEFIK_API_INSECURE": "true",
        "TRAEFIK_ENTRYPOINTS_TRAEFIK_ADDRESS": api,
    }
    with (tmp_path / "traefik.log").open("w") as log:
        traefik = subprocess.Popen(
            ["traefik"], env={"PATH": os.environ["PATH"], **environment}, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        routers = wait_until(
            lambda: len(_routers(f"http://{api}")) == 4 and _routers(f"http://{api}"),
            30,
            "Traefik to read the routes file and Redis",
        )
    finally:
        stop_process(traefik)
    assert {r["name"]: (r["rule"], r["entryPoints"], "tls" in r) for r in routers} == {
        "booklab@file": ("Host(`booklab.example.org`)", ["websecure"], True),
        "flower@file": ("Host(`flower.booklab.example.org`)", ["websecure"], True),
        "nb-1234@redis": ("Host(`nb-1234.booklab.example.org`)", ["check"], False),
        "websecure-nb-1234@redis": ("Host(`nb-1234.booklab.example.org`)", ["websecure"], True),
    }


def _routers(api_url: str) -> list[dict]:
    try:
        return [
            r
            for r in requests.get(f"{api_url}/api/http/routers", timeout=2).json()
            if r["provider"] in ("file", "redis")
        ]
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
