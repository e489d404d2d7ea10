"""Images shared between runner hosts through a real registry (Debian's docker-registry), with real
runners, Docker and the GitLab stand-in: a commit built once is pushed alongside its launch, and a
host without the image pulls it instead of building it again; a registry that does not answer
means a build, never a failed launch; the registry's credentials never reach a log; the image
cleaner deletes from the registry the images unlaunched for longer than images/registry_max_age."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from booklab import config as config_module
from booklab import service
from booklab.context import Context
from booklab.errors import RegistryError
from booklab.phases import Phase
from booklab.pipeline import builder, image_cleaner, image_sharing, registry
from booklab.pipeline.launcher import api_status
from booklab.pipeline.notebook_firewall import bridge_of
from booklab.pipeline.registry import Registry
from booklab.state import schema
from booklab.state.build_claims import Holder
from booklab.state.deployment import Deployment
from tests.fixtures.failing_front import FailingFront
from tests.fixtures.gitlab import create_local_repo
from tests.fixtures.pipeline import (
    MAINTAINER,
    events_of,
    messages,
    notebook_repo_files,
    queue_run,
    run_to_end,
    taken,
)
from tests.fixtures.services import ImageRegistry, free_port, wait_until
from tests.integration.test_image_cleaner import DAY, KIB, ImageMaker

USER = "booklab-runner"


@pytest.fixture
def own_project(gitlab, alice, base_image, tmp_path):
    """A project of the test's own (its image was never built): its path."""
    path = f"shared/nb-{secrets.token_hex(4)}"
    files = {**notebook_repo_files(base_image), "unique.txt": secrets.token_hex(8)}
    gitlab.add_project(path, members={"alice": MAINTAINER})
    gitlab.push(path, create_local_repo(tmp_path / "own", {"main": files}))
    return path


@pytest.fixture
def auth_registry(tmp_path, docker_engine):
    """A registry of this test's own that asks for a login: (registry, password)."""
    password = secrets.token_urlsafe(18)
    directory = tmp_path / "registry"
    directory.mkdir()
    served = ImageRegistry(directory, users={USER: password})
    served.start()
    yield served, password
    served.stop()
    served.remove_local_images(docker_engine)


def test_an_image_built_on_one_host_is_pushed_and_another_host_pulls_it_instead_of_building_it(
    ctx, runners, alice, own_project, auth_registry, docker_engine, tmp_path
):
    registry, password = auth_registry
    password_file = tmp_path / "registry-password"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    path = f"booklab-{secrets.token_hex(4)}"
    (runner,) = runners(
        1,
        BOOKLAB_IMAGES_REGISTRY=f"{registry.host}/{path}",
        BOOKLAB_BUILD_IMAGE_PREFIX="",
        BOOKLAB_IMAGES_REGISTRY_USERNAME=USER,
        BOOKLAB_IMAGES_REGISTRY_PASSWORD_FILE=str(password_file),
    )
    request = service.request_deployment(ctx, own_project, "main", alice.token)
    events = run_to_end(ctx, request.run)
    assert events[-1]["phase"] == "ready", messages(events)
    assert "Building image" in messages(events) and image_sharing.PULLING not in messages(events)
    record = ctx.deployments.record(request.id)
    image = record["image"]
    assert image.startswith(f"{registry.host}/{path}/") and image.endswith(f":{record['commit']}")
    repository = image.rsplit(":", 1)[0].removeprefix(f"{registry.host}/")
    # pushed alongside the launch, under the commit's own name; only with the login
    wait_until(lambda: record["commit"] in registry.tags(repository, auth=(USER, password)), 180, "the push")
    assert "is shared through the registry" in runner.output()
    # its build's claim is let go once pushed: a launch of another host waiting for it pulls it then
    wait_until(lambda: not ctx.redis.exists(schema.build_claim(image)), 10, "the build's claim to be let go")
    with pytest.raises(Exception, match="401"):
        registry.tags(repository)

    # another host has no image: as here once the image is gone
    service.stop(ctx, request.id)
    wait_until(lambda: ctx.deployments.status(request.id) is Phase.STOPPED, 60, "the notebook to stop")
    docker_engine.images.remove(image)
    assert not builder.image_exists(docker_engine, image)
    again = service.request_deployment(ctx, own_project, "main", alice.token)
    events = run_to_end(ctx, again.run)
    told = messages(events)
    assert events[-1]["phase"] == "ready", told
    assert image_sharing.PULLING in told and "Pull complete" in told
    assert "Building image" not in told and "Found built image, launching..." in told
    assert builder.image_exists(docker_engine, image)
    assert api_status(events[-1]["url"], events[-1]["token"]) is not None
    # the pulled image is the registry's: nothing to push again
    assert image_sharing.SHARED not in told

    # the password went to the Docker Engine only
    full_logs = [ctx.events.full(run.id) or "" for run in (request.run, again.run)]
    assert all(full_logs)
    for text in (runner.output(), *full_logs):
        assert password not in text
    service.stop(ctx, request.id)  # before the registry's images go
    wait_until(lambda: ctx.deployments.status(request.id) is Phase.STOPPED, 60, "the notebook to stop")


def test_a_notebook_stopped_before_its_image_is_pushed_keeps_its_builds_claim_until_the_push_ends(
    ctx, runners, alice, own_project, auth_registry, tmp_path
):
    """Launches of another host waiting for the image pull it once the claim goes: the claim must not go
    with the notebook while the image is still being pushed, or they would build it again."""
    registry, password = auth_registry
    password_file = tmp_path / "registry-password"
    password_file.write_text(password)
    password_file.chmod(0o600)
    runners(
        1,
        BOOKLAB_IMAGES_REGISTRY=f"{registry.host}/booklab-{secrets.token_hex(4)}",
        BOOKLAB_BUILD_IMAGE_PREFIX="",
        BOOKLAB_IMAGES_REGISTRY_USERNAME=USER,
        BOOKLAB_IMAGES_REGISTRY_PASSWORD_FILE=str(password_file),
    )
    request = service.request_deployment(ctx, own_project, "main", alice.token)
    stopped_registry = False
    try:
        for _, event in service.follow(ctx, request.run, timeout=240):
            if event["phase"] == "launching" and not stopped_registry:  # built: the push starts after the launch
                os.kill(registry.proc.pid, signal.SIGSTOP)
                stopped_registry = True
            if Phase(event["phase"]).is_final or event["phase"] == "ready":
                break
        assert event["phase"] == "ready", event
        image = ctx.deployments.record(request.id)["image"]
        assert ctx.build_claims.holder(image).run == request.run.id
        service.stop(ctx, request.id)
        wait_until(lambda: ctx.deployments.status(request.id) is Phase.STOPPED, 60, "the notebook to stop")
        assert ctx.build_claims.holder(image).run == request.run.id  # the push still holds it
    finally:
        if stopped_registry:
            os.kill(registry.proc.pid, signal.SIGCONT)
    wait_until(lambda: ctx.build_claims.holder(image) is None, 120, "the claim to go once the push ends")
    repository, tag = image.removeprefix(f"{registry.host}/").rsplit(":", 1)
    assert tag in registry.tags(repository, auth=(USER, password))


def test_a_registry_that_does_not_answer_means_a_build_and_a_launch_as_on_one_host(
    ctx, runners, alice, own_project, docker_engine
):
    nothing_there = f"127.0.0.1:{free_port()}/booklab-{secrets.token_hex(4)}"
    (runner,) = runners(1, BOOKLAB_IMAGES_REGISTRY=nothing_there, BOOKLAB_BUILD_IMAGE_PREFIX="")
    request = service.request_deployment(ctx, own_project, "main", alice.token)
    events = run_to_end(ctx, request.run)
    told = messages(events)
    assert events[-1]["phase"] == "ready", told
    assert "The image registry did not answer: building the image here." in told and "Building image" in told
    assert api_status(events[-1]["url"], events[-1]["token"]) is not None
    image = ctx.deployments.record(request.id)["image"]
    try:
        wait_until(lambda: "was not shared through the registry" in runner.output(), 60, "the push to give up")
    finally:
        service.stop(ctx, request.id)
        wait_until(lambda: ctx.deployments.status(request.id) is Phase.STOPPED, 60, "the notebook to stop")
        docker_engine.images.remove(image)


@pytest.fixture
def shared_images(image_registry, docker_engine):
    """Small images named under a path of the test's own in the tests' registry (removed after the test)."""
    maker = ImageMaker(docker_engine, f"{image_registry.host}/booklab-{secrets.token_hex(4)}")
    yield maker
    maker.remove_all()


@pytest.fixture
def registry_ctx(booklab_env, redis_client, shared_images):
    """A Booklab context whose images are shared through the tests' registry, and deleted from it after a day."""
    environ = {
        **booklab_env,
        "BOOKLAB_BUILD_IMAGE_PREFIX": "",
        "BOOKLAB_IMAGES_REGISTRY": shared_images.prefix,
        "BOOKLAB_IMAGES_REGISTRY_MAX_AGE": str(DAY),
        "BOOKLAB_IMAGES_MAX_DISK": "0",
    }
    context = Context(config_module.load(os.devnull, environ=environ))
    yield context
    context.close()


def test_a_rebuilt_image_is_pushed_in_place_of_the_one_its_name_had(shared_images, registry_ctx, docker_engine):
    shared, name = Registry.of(registry_ctx.config), shared_images.name("lab/rebuilt")
    shared_images.load(name, 4 * KIB)
    assert registry.digest(docker_engine, shared, name) is None and not registry.holds(docker_engine, shared, name)
    first = registry.push(docker_engine, shared, name)
    assert registry.digest(docker_engine, shared, name) == first and registry.holds(docker_engine, shared, name)
    shared_images.load(name, 4 * KIB)  # a rebuild: another image under the name
    assert not registry.holds(docker_engine, shared, name)
    second = registry.push(docker_engine, shared, name)
    assert second != first and registry.digest(docker_engine, shared, name) == second


def test_a_push_the_registry_fails_is_tried_again_and_the_build_claim_stays_until_the_image_is_there(
    image_registry, booklab_env, redis_client, docker_engine, caplog
):
    """A registry may fail a push (the bench's 32 launches met one); a launch of another host waiting for the
    image pulls it once the claim goes, so a push given up on too soon means a second build there."""
    with FailingFront(image_registry.host, "PUT", r"/manifests/") as front:
        images = ImageMaker(docker_engine, f"{front.host}/booklab-{secrets.token_hex(4)}")
        environ = {**booklab_env, "BOOKLAB_BUILD_IMAGE_PREFIX": "", "BOOKLAB_IMAGES_REGISTRY": images.prefix}
        context = Context(config_module.load(os.devnull, environ=environ))
        try:
            name = images.name("lab/pushed-twice")
            images.load(name, 4 * KIB)
            run = taken(context, Deployment("lab/pushed-twice", "main", "maria"), "runner-a")
            context.lifecycle.say(run, Phase.BUILT, "Built.")
            context.lifecycle.say(run, Phase.LAUNCHING, "Launching the notebook server...")
            builder_of_it = Holder(run.id, "runner-a", "host-a")
            assert context.build_claims.take(name, builder_of_it, 600) is None
            pushing = image_sharing.share_alongside(context, run, name)
            wait_until(lambda: front.failed == 1, 60, "the registry to fail the first push")
            assert context.build_claims.holder(name) == builder_of_it  # a launch elsewhere goes on waiting
            pushing.join(120)
            assert not pushing.is_alive()
            assert registry.holds(docker_engine, Registry.of(context.config), name)
            assert context.build_claims.holder(name) is None  # now it pulls
            told = "".join(event.data["message"] for event in events_of(context, run.deployment))
            assert image_sharing.SHARED in told and "could not be shared" not in told
            assert "trying again" in caplog.text
        finally:
            context.close()
            images.remove_all()


def test_images_unlaunched_longer_than_registry_max_age_are_deleted_from_the_registry(
    shared_images, registry_ctx, image_registry, docker_engine, caplog
):
    ctx, shared = registry_ctx, Registry.of(registry_ctx.config)
    old, recent, being_prepared, unknown = (
        shared_images.name(project) for project in ("lab/old", "lab/recent", "lab/active", "lab/unknown")
    )
    for name in (old, recent, being_prepared, unknown):
        shared_images.load(name, 4 * KIB)
        registry.push(docker_engine, shared, name)
    not_booklabs = f"{shared_images.prefix}/someone-elses:latest"
    shared_images.load(not_booklabs, 4 * KIB)
    registry.push(docker_engine, shared, not_booklabs)
    now = time.time()
    ctx.images.launched(old, now - 2 * DAY)
    ctx.images.launched(being_prepared, now - 3 * DAY)
    ctx.images.launched(recent, now - DAY / 2)
    dep = Deployment("lab/active", "main", "alice")
    queue_run(ctx, dep)
    ctx.deployments.update(dep.id, image=being_prepared)

    caplog.set_level("INFO", logger=image_cleaner.__name__)
    assert image_cleaner.prune_registry(ctx) == [old]
    assert f"deleted image {old} from the registry: unlaunched for 2.0 days" in caplog.text
    in_registry = {f"{repository}:{tag}" for repository, tags in registry.tags(shared).items() for tag in tags}
    assert in_registry == {recent, being_prepared, unknown, not_booklabs}
    assert registry.digest(docker_engine, shared, old) is None
    # an image whose launch Booklab forgot counts from now
    assert ctx.images.last_launched(unknown) >= now
    # one runner of all, once per images/clean_interval
    ctx.images.launched(recent, now - 2 * DAY)
    assert image_cleaner.prune_registry(ctx) == []
    ctx.redis.delete(schema.REGISTRY_PRUNING)
    assert image_cleaner.prune_registry(ctx) == [recent]


def certificates(directory: Path, address: str) -> tuple[Path, Path, Path]:
    """A CA of the test's own, and a certificate it signed for ``address``: (certificate, key, CA) files."""
    now = datetime.datetime.now(datetime.timezone.utc)

    def certificate(subject: str, key, issuer: str, signer, extensions) -> bytes:
        made = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )
        for extension, critical in extensions:
            made = made.add_extension(extension, critical=critical)
        return made.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    files = {
        "ca.crt": certificate(
            "Booklab test CA",
            ca_key,
            "Booklab test CA",
            ca_key,
            [(x509.BasicConstraints(ca=True, path_length=0), True)],
        ),
        "registry.crt": certificate(
            address,
            key,
            "Booklab test CA",
            ca_key,
            [(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]), False)],
        ),
        "registry.key": key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return directory / "registry.crt", directory / "registry.key", directory / "ca.crt"


def bridge_address(client) -> str:
    """This host's address on Docker's default bridge: its IPAM names it only when Docker chose it, not when the
    bridge had an address when dockerd started; the bridge itself always holds it."""
    bridge = bridge_of(client.networks.get("bridge"))
    shown = subprocess.run(["ip", "-j", "-4", "addr", "show", "dev", bridge], capture_output=True, check=True)
    return json.loads(shown.stdout)[0]["addr_info"][0]["local"]


@pytest.fixture
def tls_registry(tmp_path, docker_engine):
    """A registry of this test's own with TLS (its certificate signed by a CA of the test's) and a login, on
    the address of Docker's bridge: not a loopback one, which Docker would reach without checking the
    certificate. (registry, password, the file through which Docker trusts the CA once it is there)."""
    address = bridge_address(docker_engine)
    password = secrets.token_urlsafe(18)
    directory = tmp_path / "tls-registry"
    directory.mkdir()
    tls = certificates(directory, address)
    served = ImageRegistry(directory, users={USER: password}, address=address, tls=tls)
    served.start()
    trust = Path(registry.DOCKER_CERTS) / served.host / "ca.crt"
    certs_there = trust.parent.parent.exists()
    yield served, password, trust
    served.stop()
    served.remove_local_images(docker_engine)
    shutil.rmtree(trust.parent, ignore_errors=True)
    if not certs_there:
        with contextlib.suppress(OSError):  # unless another test trusts a CA there meanwhile
            trust.parent.parent.rmdir()


def test_a_registry_with_tls_and_a_login_is_used_once_docker_trusts_its_ca(tls_registry, docker_engine):
    tls, password, trust = tls_registry
    shared = Registry(f"{tls.host}/booklab-{secrets.token_hex(4)}", USER, password)
    maker = ImageMaker(docker_engine, shared.path)
    name = maker.name("lab/over-tls")
    maker.load(name, 4 * KIB)
    try:
        with pytest.raises(RegistryError, match="certificate signed by unknown authority"):
            registry.digest(docker_engine, shared, name)
        trust.parent.mkdir(parents=True)
        shutil.copy(tls.verify, trust)  # what an operator does on each runner host (docs/SCALING.md)

        with pytest.raises(RegistryError, match="unauthorized") as refused:
            registry.push(docker_engine, Registry(shared.path, USER, "not-the-password"), name)
        assert "not-the-password" not in str(refused.value)
        pushed = registry.push(docker_engine, shared, name)
        assert registry.tags(shared) == {name.rsplit(":", 1)[0]: [name.rsplit(":", 1)[1]]}  # HTTP API, same CA
        docker_engine.images.remove(name)
        assert list(registry.pull(docker_engine, shared, name)) and registry.holds(docker_engine, shared, name)
        assert registry.digest(docker_engine, shared, name) == pushed
        assert registry.delete(shared, name) and registry.digest(docker_engine, shared, name) is None
    finally:
        maker.remove_all()
