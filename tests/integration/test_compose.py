"""The compose files, as docker-compose reads them. docker-compose.yml: the whole stack, scalable
runners, no secret in a command line, Booklab's services on the host's loopback where notebooks
do not reach them, Traefik's routes file as a real Traefik reads it. Several hosts: the front
(docker-compose.yml with docker-compose.front.yml) is that stack with Redis and Traefik's check
entrypoint on its private address too and a registry (TLS, a login, deletes) as a real
docker-registry reads its settings; a runner host (docker-compose.runner-host.yml) runs runners
only, whose settings are the front runners' but where they must differ, with the firewall
settings, the host's network and NET_ADMIN. Every Booklab service's command is in its image,
and iptables too."""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import secrets
import subprocess
from pathlib import Path
from urllib.parse import quote

import docker
import pytest
import redis
import requests
import yaml

from booklab.config import Config, load
from booklab.context import Context
from booklab.pipeline import notebook_firewall, traefik_config
from booklab.pipeline.routes.names import kv_pairs
from booklab.state import schema
from tests.fixtures.services import ROOT, free_port, stop_process, wait_until
from tests.fixtures.traefik import self_signed_certificate

SETTINGS = {
    "FQDN": "booklab.example.org",
    "FLOWER_PASSWORD": "fl0wer",
    "REDIS_PASSWORD": "r3dis-pass",
    "BOOKLAB_GITLAB_CONSUMER_KEY": "app-id",
    "BOOKLAB_GITLAB_CONSUMER_SECRET": "app-s3cret",
}
#: the settings of several hosts on a private network, beside those of one host
SEVERAL_HOSTS = {
    "FRONT_ADDRESS": "10.0.0.1",
    "HOST_ADDRESS": "10.0.0.2",
    "PRIVATE_NETWORK": "10.0.0.0/24",
    "REGISTRY": "registry.example.org:5000/booklab",
}
ONE_HOST = ("docker-compose.yml",)
FRONT = ("docker-compose.yml", "docker-compose.front.yml")
RUNNER_HOST = ("docker-compose.runner-host.yml",)


def compose_config(*files: str, **settings: str) -> subprocess.CompletedProcess:
    """``docker-compose config`` of ``files`` (default: docker-compose.yml) with ``settings`` for
    environment, none of this process's own settings among them."""
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS | SEVERAL_HOSTS} | settings
    return subprocess.run(
        ["docker-compose", *(f"--file={ROOT / name}" for name in files or ONE_HOST), "config"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def services_of(*files: str) -> dict[str, dict]:
    """The services of ``files`` with every setting given (a copy of its own for each caller)."""
    return yaml.safe_load(_configured(files))["services"]


@functools.cache
def _configured(files: tuple[str, ...]) -> str:
    result = compose_config(*files, **SETTINGS, **SEVERAL_HOSTS)
    assert result.returncode == 0, result.stderr
    return result.stdout


def mounts_of(service: dict) -> list[str]:
    return [f"{v['source']}:{v['target']}" if isinstance(v, dict) else v for v in service.get("volumes", [])]


def assert_no_secret_in_a_command_line(services: dict[str, dict]) -> None:
    """Secrets go through the environment or files only."""
    for name, service in services.items():
        command = " ".join(service.get("command") or [])
        assert not any(secret in command for secret in SETTINGS.values()), name


def test_the_stack_is_valid_with_scalable_runners_behind_traefik():
    services = services_of(*ONE_HOST)
    assert set(services) == {"redis", "traefik", "web", "runner", "flower"}
    runner = services["runner"]
    assert "container_name" not in runner and "ports" not in runner  # `--scale runner=N` works
    mounts = mounts_of(runner)
    assert any(m.startswith("/var/run/docker.sock:/var/run/docker.sock") for m in mounts), mounts
    assert "/var/lib/docker:/var/lib/docker:ro" in mounts, mounts  # images/max_disk's share of the disk
    assert services["flower"]["environment"]["FLOWER_BASIC_AUTH"] == "flower:fl0wer"
    assert services["flower"]["command"][:4] == ["celery", "-A", "booklab.dispatch.app", "flower"]  # as the demo
    assert_no_secret_in_a_command_line(services)
    assert not services["flower"].get("secrets")  # Flower needs no key
    for name in ("web", "runner"):  # the secret key not even there: in a file only its owner reads
        environment = services[name]["environment"]
        assert "BOOKLAB_SECRET_KEY" not in environment, name
        assert environment["BOOKLAB_SECRET_KEY_FILE"] == "/run/secrets/secret_key", name
        assert [s["source"] if isinstance(s, dict) else s for s in services[name]["secrets"]] == ["secret_key"], name


def test_notebooks_reach_nothing_of_booklabs_but_traefiks_entrypoint():
    services = services_of(*ONE_HOST)
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
    services = services_of(*ONE_HOST)
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
    config = load(
        os.devnull,
        environ={
            "BOOKLAB_FQDN": "booklab.example.org",
            "BOOKLAB_ROUTES_ENTRYPOINT": "websecure,check",
            "BOOKLAB_REDIS_URL": f"redis://:{quote(SETTINGS['REDIS_PASSWORD'], safe='')}@127.0.0.1:{own_redis.port}/0",
        },
    )
    client = Context(config).route_tree  # where the runners write routes
    client.mset({schema.TRAEFIK_ANCHOR: "1", **kv_pairs(config, "nb-1234", "http://127.0.0.1:9/")})

    environment = services_of(*ONE_HOST)["traefik"]["environment"]
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


def test_the_front_is_the_one_host_stack_with_redis_and_traefiks_check_on_its_private_address():
    one_host, front = services_of(*ONE_HOST), services_of(*FRONT)
    assert set(front) == set(one_host) | {"registry"}
    assert_no_secret_in_a_command_line(front)
    assert front["web"] == one_host["web"] and front["flower"] == one_host["flower"]
    # Redis: on loopback and the private address, its password still on its standard input
    assert {k: v for k, v in front["redis"].items() if k != "command"} == {
        k: v for k, v in one_host["redis"].items() if k != "command"
    }
    redis_command = " ".join(front["redis"]["command"])
    assert "--bind 127.0.0.1 10.0.0.1 --port 6379" in redis_command
    assert redis_command.replace(" 10.0.0.1", "") == " ".join(one_host["redis"]["command"])
    # Traefik: its check entrypoint on the private address, where the runners of every host reach it
    traefik = front["traefik"]["environment"]
    assert traefik.pop("TRAEFIK_ENTRYPOINTS_CHECK_ADDRESS") == "10.0.0.1:8000"
    assert one_host["traefik"]["environment"].pop("TRAEFIK_ENTRYPOINTS_CHECK_ADDRESS") == "127.0.0.1:8000"
    assert traefik == one_host["traefik"]["environment"]
    # the front's own runners: notebooks unpublished as on one host, the firewall, the registry
    runner, alone = front["runner"], one_host["runner"]
    assert runner["network_mode"] == "host" and runner["cap_add"] == ["NET_ADMIN"]
    assert {k: v for k, v in runner["environment"].items() if alone["environment"].get(k) != v} == {
        "BOOKLAB_ROUTES_TRAEFIK_ENTRYPOINT_URL": "http://10.0.0.1:8000",
        "BOOKLAB_NOTEBOOK_REACHABLE_FROM": "10.0.0.1",
        "BOOKLAB_NOTEBOOK_UNREACHABLE": "10.0.0.0/24",
        "BOOKLAB_IMAGES_REGISTRY": "registry.example.org:5000/booklab",
        "BOOKLAB_IMAGES_REGISTRY_USERNAME": "booklab-runner",
        "BOOKLAB_IMAGES_REGISTRY_PASSWORD_FILE": "/run/secrets/registry_password",
        "BOOKLAB_IMAGES_REGISTRY_MAX_AGE": "0",
    }
    assert runner["environment"]["BOOKLAB_NOTEBOOK_PUBLISH"] == "false"
    assert set(mounts_of(runner)) - set(mounts_of(alone)) == {"/etc/docker/certs.d:/etc/docker/certs.d:ro"}


def test_the_fronts_registry_asks_for_tls_and_a_login_and_allows_deletes_as_a_real_registry_reads_it(tmp_path):
    """The registry's settings of docker-compose.front.yml, its files moved to the test's, read by Debian's
    docker-registry (distribution 2.8, as the registry:2 image): HTTPS only, basic auth from the htpasswd file,
    manifests that may be deleted (images/registry_max_age)."""
    registry = services_of(*FRONT)["registry"]
    assert (registry["image"], registry["network_mode"]) == ("registry:2", "host")
    environment = registry["environment"]
    assert environment["REGISTRY_HTTP_ADDR"] == "10.0.0.1:5000"  # the private address, the port in REGISTRY
    assert (environment["REGISTRY_AUTH"], environment["REGISTRY_STORAGE_DELETE_ENABLED"]) == ("htpasswd", "true")
    files = {environment[name] for name in ("REGISTRY_HTTP_TLS_CERTIFICATE", "REGISTRY_HTTP_TLS_KEY")}
    files.add(environment["REGISTRY_AUTH_HTPASSWD_PATH"])
    assert {str(Path(f).parent) + ":ro" for f in files} <= {m.split(":", 1)[1] for m in mounts_of(registry)}

    certificate, key = self_signed_certificate(tmp_path, "localhost")
    password = secrets.token_urlsafe(18)
    htpasswd = tmp_path / "htpasswd"
    subprocess.run(["htpasswd", "-iBc", str(htpasswd), "booklab-runner"], input=password, text=True, check=True)
    (tmp_path / "config.yml").write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path}\n")
    port = free_port()
    environment |= {
        "REGISTRY_HTTP_ADDR": f"127.0.0.1:{port}",
        "REGISTRY_HTTP_TLS_CERTIFICATE": str(certificate),
        "REGISTRY_HTTP_TLS_KEY": str(key),
        "REGISTRY_AUTH_HTPASSWD_PATH": str(htpasswd),
    }
    url = f"https://localhost:{port}/v2/"
    with (tmp_path / "registry.log").open("w") as log:
        served = subprocess.Popen(
            ["docker-registry", "serve", str(tmp_path / "config.yml")],
            env={"PATH": os.environ["PATH"], **environment},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: _answer(url, certificate) is not None, 20, "docker-registry to answer")
        refused = _answer(url, certificate)
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == 'Basic realm="booklab"'
        assert _answer(url, certificate, ("booklab-runner", password)).status_code == 200
        assert _answer(url.replace("https", "http"), certificate).status_code == 400  # TLS only
        unknown = f"{url}booklab/lab/manifests/sha256:{'0' * 64}"
        deleted = requests.delete(unknown, auth=("booklab-runner", password), verify=certificate, timeout=5)
        assert deleted.status_code == 404, deleted.text  # not 405: deletes are allowed
    finally:
        stop_process(served)


def _answer(url: str, certificate: Path, auth: tuple[str, str] | None = None) -> requests.Response | None:
    try:
        return requests.get(url, auth=auth, verify=str(certificate), timeout=2)
    except requests.ConnectionError:
        return None


def test_a_runner_host_runs_runners_only_on_its_network_with_the_firewall_settings():
    runner_host = services_of(*RUNNER_HOST)
    assert set(runner_host) == {"runner"}
    assert_no_secret_in_a_command_line(runner_host)
    runner = runner_host["runner"]
    assert "container_name" not in runner and "ports" not in runner  # `--scale runner=N` works
    assert "depends_on" not in runner  # Redis is on the front
    assert runner["network_mode"] == "host" and runner["cap_add"] == ["NET_ADMIN"]
    assert runner["command"] == ["booklab", "runner"]
    environment = runner["environment"]
    assert {k: environment[k] for k in environment if "_NOTEBOOK_" in k} == {
        "BOOKLAB_NOTEBOOK_DOMAIN": "",
        "BOOKLAB_NOTEBOOK_NETWORK": "booklab-notebooks",
        "BOOKLAB_NOTEBOOK_PUBLISH": "true",  # on this host's private address, for Traefik on the front
        "BOOKLAB_NOTEBOOK_HOST": "10.0.0.2",
        "BOOKLAB_NOTEBOOK_REACHABLE_FROM": "10.0.0.1",
        "BOOKLAB_NOTEBOOK_UNREACHABLE": "10.0.0.0/24",
    }
    assert environment["BOOKLAB_REDIS_URL"] == f"redis://:{SETTINGS['REDIS_PASSWORD']}@10.0.0.1:6379/0"
    assert environment["BOOKLAB_ROUTES_AUTH_URL"] == "http://127.0.0.1:8080"  # Traefik, on the front, calls it
    mounts = mounts_of(runner)
    assert "/etc/docker/certs.d:/etc/docker/certs.d:ro" in mounts
    assert any(m.startswith("/var/run/docker.sock:/var/run/docker.sock") for m in mounts), mounts


def test_a_runner_host_reaches_the_fronts_services_where_the_front_serves_them():
    front, runner = services_of(*FRONT), services_of(*RUNNER_HOST)["runner"]
    environment = runner["environment"]
    traefik_check = front["traefik"]["environment"]["TRAEFIK_ENTRYPOINTS_CHECK_ADDRESS"]
    assert environment["BOOKLAB_ROUTES_TRAEFIK_ENTRYPOINT_URL"] == f"http://{traefik_check}"
    assert "--bind 127.0.0.1 10.0.0.1 --port 6379" in " ".join(front["redis"]["command"])
    registry_host = environment["BOOKLAB_IMAGES_REGISTRY"].split("/")[0]
    assert registry_host.split(":")[1] == front["registry"]["environment"]["REGISTRY_HTTP_ADDR"].split(":")[1]
    # every other setting as the front's runners have it, so that a deployment runs the same on any host
    on_front = front["runner"]["environment"]
    assert {k for k in environment.keys() & on_front.keys() if environment[k] != on_front[k]} == {
        "BOOKLAB_REDIS_URL",  # the front's runners reach Redis on loopback
        "BOOKLAB_NOTEBOOK_PUBLISH",  # and their notebooks on booklab-notebooks, unpublished
    }
    assert environment.keys() - on_front.keys() == {"BOOKLAB_NOTEBOOK_HOST"} and not on_front.keys() - environment
    assert sorted(mounts_of(runner)) == sorted(mounts_of(front["runner"]))
    assert runner["cap_add"] == front["runner"]["cap_add"]
    assert sorted(s["source"] for s in runner["secrets"]) == sorted(s["source"] for s in front["runner"]["secrets"])


def test_booklab_takes_the_settings_of_the_runners_of_every_host_with_the_firewall_rules(tmp_path):
    for files, host in ((FRONT, "front"), (RUNNER_HOST, "runner host")):
        config = booklab_config(services_of(*files)["runner"]["environment"], tmp_path)
        assert notebook_firewall.wanted(config), host
        assert [str(n) for n in config.networks_of("notebook_reachable_from")] == ["10.0.0.1/32"], host
        assert [str(n) for n in config.networks_of("notebook_unreachable")] == ["10.0.0.0/24"], host
        assert config.image_prefix == "registry.example.org:5000/booklab", host  # one name on every host
        assert (config.images_registry_username, config.images_registry_password) == ("booklab-runner", "a secret")


def booklab_config(environment: dict[str, str], directory: Path) -> Config:
    """Booklab's settings from a service's ``environment``, its secrets' files (/run/secrets/...) in ``directory``."""
    environ = dict(environment)
    for name, value in environment.items():
        if value.startswith("/run/secrets/"):
            secret = directory / Path(value).name
            secret.write_text(secrets.token_urlsafe(32) if name == "BOOKLAB_SECRET_KEY_FILE" else "a secret")
            secret.chmod(0o600)
            environ[name] = str(secret)
    return load(os.devnull, environ=environ)


def test_a_missing_setting_of_several_hosts_stops_compose_with_a_sentence():
    for files, name in ((FRONT, "PRIVATE_NETWORK"), (RUNNER_HOST, "HOST_ADDRESS")):
        result = compose_config(*files, **SETTINGS, **{k: v for k, v in SEVERAL_HOSTS.items() if k != name})
        assert result.returncode != 0 and f"set {name} to " in result.stderr, (files, result.stderr)
        # and so would any other: no address, network or registry ever falls back to an empty value
        text = (ROOT / files[-1]).read_text()
        for setting in SEVERAL_HOSTS:
            uses = re.findall(r"\$\{%s(\W[^}]*)?\}" % setting, text)
            assert all(use.startswith(f":?set {setting} to ") for use in uses), (files, setting, uses)
            assert uses or (files, setting) == (FRONT, "HOST_ADDRESS")


def test_every_booklab_service_command_exists_in_the_runner_image_with_iptables(runner_image, docker_engine):
    ours = {
        (files[-1], name): s["command"][0]
        for files in (ONE_HOST, FRONT, RUNNER_HOST)
        for name, s in services_of(*files).items()
        if s["image"] == "booklab/runner:latest"
    }
    assert {name for _, name in ours} == {"web", "runner", "flower"}
    programs = set(ours.values())
    for program in programs:
        output = docker_engine.containers.run(runner_image, ["sh", "-c", f"command -v {program}"], remove=True)
        assert output.strip(), f"{program} ({[k for k, v in ours.items() if v == program]}) is not in the runner image"
    # Flower's Celery app loads there, with Booklab's settings and the broker of its environment
    command = services_of(*ONE_HOST)["flower"]["command"]
    report = [*command[: command.index("flower")], "report"]
    broker = {"BROKER_URL": "redis://127.0.0.1:1/0"}
    output = docker_engine.containers.run(runner_image, report, environment=broker, remove=True).decode()
    assert "transport:redis" in output and "task_default_queue: 'deployments'" in output, output
    # the firewall rules of several hosts: Debian's iptables, with nf_tables as Debian's Docker hosts
    versions = docker_engine.containers.run(
        runner_image, ["sh", "-c", "iptables --version && iptables-restore --version"], remove=True
    ).decode()
    assert versions.count("v1.8.9 (nf_tables)") == 2, versions
    # which loads the runner's chains with NET_ADMIN (here in the container's own network namespace)
    rules = notebook_firewall.chains(
        (ipaddress.ip_network("10.0.0.1/32"),), (ipaddress.ip_network("10.0.0.0/24"),), notebook_firewall.TRAEFIK_PORTS
    )
    load_them = 'printf %s "$RULES" | iptables-restore --wait --noflush && iptables -S'
    loaded = docker_engine.containers.run(
        runner_image, ["sh", "-c", load_them], environment={"RULES": rules}, cap_add=["NET_ADMIN"], remove=True
    ).decode()
    assert f"-A {notebook_firewall.EGRESS} -d 10.0.0.0/24 -p tcp -j REJECT --reject-with tcp-reset" in loaded, loaded
    with pytest.raises(docker.errors.ContainerError, match="Permission denied"):
        docker_engine.containers.run(runner_image, ["sh", "-c", load_them], environment={"RULES": rules}, remove=True)
