"""docker-compose.yml, as docker-compose reads it: the whole stack, scalable runners, no
secret in a command line, and every Booklab service's command present in its image."""

from __future__ import annotations

import os
import subprocess

import yaml

from tests.fixtures.services import ROOT

SETTINGS = {"FQDN": "booklab.example.org", "BOOKLAB_SECRET_KEY": "s3cret-key", "FLOWER_PASSWORD": "fl0wer",
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
    assert stack["networks"]["traefik"]["external"] is True
    assert services["web"]["labels"]["traefik.http.routers.booklab.rule"] == "Host(`booklab.example.org`)"
    assert services["flower"]["labels"]["traefik.http.routers.flower.rule"] == "Host(`flower.booklab.example.org`)"
    assert services["flower"]["environment"]["FLOWER_BASIC_AUTH"] == "flower:fl0wer"
    assert "--appendonly" in services["redis"]["command"]
    for name, service in services.items():  # secrets go through the environment only
        assert not any(secret in " ".join(service.get("command") or []) for secret in SETTINGS.values()), name


def test_a_missing_secret_stops_compose_with_a_sentence():
    result = compose_config(**{k: v for k, v in SETTINGS.items() if k != "BOOKLAB_SECRET_KEY"})
    assert result.returncode != 0
    assert "set BOOKLAB_SECRET_KEY to a long random secret" in result.stderr


def test_every_booklab_service_command_exists_in_the_runner_image(runner_image, docker_engine):
    services = yaml.safe_load(compose_config(**SETTINGS).stdout)["services"]
    ours = {name: s["command"][0] for name, s in services.items() if s["image"] == "booklab/runner:latest"}
    assert set(ours) == {"web", "runner", "flower"}
    for name, program in ours.items():
        output = docker_engine.containers.run(runner_image, ["sh", "-c", f"command -v {program}"], remove=True)
        assert output.strip(), f"{program} ({name}) is not in the runner image"
