"""The image cleaner against the real Docker Engine, with real images: small ones loaded from
hand-made archives (any content, size, labels and creation time, in a fraction of a second),
named under a prefix of each test's own, as the engine is shared."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import secrets
import tarfile
import time

import docker
import pytest

from booklab import config as config_module
from booklab.context import Context
from booklab.pipeline import builder, image_cleaner, steps
from booklab.state import schema
from booklab.state.deployment import Deployment
from gitlab_standin.store import MAINTAINER
from tests.fixtures.gitlab import create_local_repo
from tests.fixtures.pipeline import messages, notebook_repo_files, queue_run, take_run
from tests.fixtures.services import wait_until

KIB = 1024
DAY = 86400
LONG_AGO = "2020-01-01T00:00:00Z"
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64"}


class ImageMaker:
    """Loads small distinct images into the engine, and removes them (and containers of them) after the test."""

    def __init__(self, engine: docker.DockerClient, prefix: str) -> None:
        self.engine = engine
        self.prefix = prefix
        self.ids: list[str] = []
        self.containers: list[str] = []

    def name(self, project: str) -> str:
        """A name Booklab gives the image of a commit of ``project``."""
        return builder.image_name(self.prefix, project, secrets.token_hex(20))

    def load(self, name: str | None, size: int, created: str = LONG_AGO, labels: dict | None = None) -> str:
        """An image of one file of ``size`` random bytes, named ``name`` (None: dangling); its id."""
        layer = io.BytesIO()
        with tarfile.open(fileobj=layer, mode="w") as tar:
            member = tarfile.TarInfo("blob")
            member.size = size
            tar.addfile(member, io.BytesIO(secrets.token_bytes(size)))
        layer_bytes = layer.getvalue()
        config = json.dumps(
            {
                "architecture": ARCHITECTURES.get(os.uname().machine, os.uname().machine),
                "os": "linux",
                "created": created,
                "config": {"Labels": labels or {}, "Cmd": ["/blob"]},
                "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer_bytes).hexdigest()}"]},
                "history": [{"created": created, "created_by": "a test"}],
            }
        ).encode()
        config_name = f"{hashlib.sha256(config).hexdigest()}.json"
        manifest = json.dumps([{"Config": config_name, "RepoTags": [name] if name else None, "Layers": ["layer.tar"]}])
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for file_name, data in (
                ("layer.tar", layer_bytes),
                (config_name, config),
                ("manifest.json", manifest.encode()),
            ):
                member = tarfile.TarInfo(file_name)
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
        image_id = f"sha256:{config_name.removesuffix('.json')}"
        self.engine.images.load(archive.getvalue())
        self.ids.append(image_id)
        return image_id

    def used_by_stopped_container(self, name: str) -> None:
        self.containers.append(self.engine.containers.create(name, labels={"booklab.test": self.prefix}).id)

    def present(self, name_or_id: str) -> bool:
        return builder.image_exists(self.engine, name_or_id)

    def size(self, name: str) -> int:
        return self.engine.images.get(name).attrs["Size"]

    def remove_all(self) -> None:
        for container in self.containers:
            self.engine.containers.get(container).remove(force=True)
        built = [image["Id"] for image in self.engine.api.images(name=f"{self.prefix}/*")]
        for image_id in self.ids + built:
            try:
                self.engine.images.remove(image_id, force=True)
            except docker.errors.ImageNotFound:
                pass


@pytest.fixture
def images(docker_engine):
    maker = ImageMaker(docker_engine, f"booklab-imgtest-{secrets.token_hex(4)}")
    yield maker
    maker.remove_all()


@pytest.fixture
def cleaner_ctx(booklab_env, redis_client, images):
    """``cleaner_ctx(**env)``: a Booklab context whose images are named under the test's own prefix."""
    made = []

    def make(**env: str) -> Context:
        environ = {**booklab_env, "BOOKLAB_BUILD_IMAGE_PREFIX": images.prefix, "BOOKLAB_IMAGES_MAX_DISK": "0", **env}
        context = Context(config_module.load(os.devnull, environ=environ))
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


def removed_lines(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name == image_cleaner.__name__)


def test_over_max_disk_the_least_recently_launched_go_first_never_one_in_use(images, cleaner_ctx, caplog):
    never_launched, launched_5_days_ago, launched_3_days_ago, in_a_container, being_prepared = (
        images.name(project) for project in ("lab/never", "lab/five", "lab/three", "lab/container", "lab/active")
    )
    for name in (never_launched, launched_5_days_ago, launched_3_days_ago, in_a_container, being_prepared):
        images.load(name, 64 * KIB)
    kept = (launched_3_days_ago, in_a_container, being_prepared)
    limit = sum(images.size(name) for name in kept) + 8 * KIB
    ctx = cleaner_ctx(BOOKLAB_IMAGES_MAX_DISK=str(limit))
    now = time.time()
    ctx.images.launched(launched_5_days_ago, now - 5 * DAY)
    ctx.images.launched(launched_3_days_ago, now - 3 * DAY)
    ctx.images.launched(in_a_container, now - 30 * DAY)
    ctx.images.launched(being_prepared, now - 30 * DAY)
    images.used_by_stopped_container(in_a_container)
    dep = Deployment("lab/active", "main", "alice")
    queue_run(ctx, dep)  # queued: its image must be there when a runner takes it
    ctx.deployments.update(dep.id, image=being_prepared)

    with caplog.at_level(logging.INFO, logger=image_cleaner.__name__):
        removals = image_cleaner.clean(ctx)

    assert [removal.image.name for removal in removals] == [never_launched, launched_5_days_ago]
    assert not images.present(never_launched) and not images.present(launched_5_days_ago)
    assert all(images.present(name) for name in kept)
    log = removed_lines(caplog)
    assert f"removed image {never_launched} (64 KiB): least recently used while Booklab's images took" in log
    assert f"removed image {launched_5_days_ago} (64 KiB)" in log
    published = {image.name: image for image in ctx.images.inventory()[ctx.docker_host]}
    assert set(published) == set(kept)
    assert published[in_a_container].in_use and published[being_prepared].in_use
    assert not published[launched_3_days_ago].in_use
    assert published[launched_3_days_ago].last_launched == pytest.approx(now - 3 * DAY)
    assert ctx.images.removed() == {ctx.docker_host: 2}
    assert ctx.images.bytes_by_host()[ctx.docker_host] == sum(images.size(name) for name in kept)


def test_before_a_build_it_cleans_only_when_space_is_short(images, cleaner_ctx):
    old, recent = images.name("lab/old"), images.name("lab/recent")
    images.load(old, 64 * KIB)
    images.load(recent, 64 * KIB)
    ctx = cleaner_ctx(BOOKLAB_IMAGES_MAX_DISK=str(images.size(old) + images.size(recent)), BOOKLAB_IMAGES_MAX_AGE="60")
    ctx.images.launched(recent)
    assert image_cleaner.make_room(ctx) == []  # under the limit: not even images/max_age is applied
    assert images.present(old) and ctx.images.inventory() == {}
    ctx = cleaner_ctx(BOOKLAB_IMAGES_MAX_DISK=str(images.size(recent) + KIB))
    assert [removal.image.name for removal in image_cleaner.make_room(ctx)] == [old]
    assert not images.present(old) and images.present(recent)


def test_max_age_removes_images_unused_that_long(images, cleaner_ctx, caplog):
    stale, never_launched, fresh, fresh_build = (
        images.name(project) for project in ("lab/stale", "lab/never", "lab/fresh", "lab/fresh-build")
    )
    for name in (stale, never_launched, fresh):
        images.load(name, 16 * KIB)
    images.load(fresh_build, 16 * KIB, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    ctx = cleaner_ctx(BOOKLAB_IMAGES_MAX_AGE=str(7 * DAY))
    ctx.images.launched(stale, time.time() - 8 * DAY)
    ctx.images.launched(fresh, time.time() - 6 * DAY)
    with caplog.at_level(logging.INFO, logger=image_cleaner.__name__):
        image_cleaner.clean(ctx)
    assert not images.present(stale) and not images.present(never_launched)
    assert images.present(fresh) and images.present(fresh_build)
    assert f"removed image {stale} (16 KiB): unused for 8.0 days, longer than images/max_age" in removed_lines(caplog)


def test_removals_an_operator_asked_are_done_but_never_of_an_image_in_use_or_not_booklabs(images, cleaner_ctx, caplog):
    unused, used = images.name("lab/unused"), images.name("lab/used")
    not_booklabs = f"{images.prefix}/runner:latest"
    for name in (unused, used, not_booklabs):
        images.load(name, 8 * KIB)
    images.used_by_stopped_container(used)
    ctx = cleaner_ctx()
    for name in (unused, used, not_booklabs):
        ctx.images.request_removal(ctx.docker_host, name)
    ctx.images.launched(unused)  # just launched: only the operator's request removes it

    with caplog.at_level(logging.INFO, logger=image_cleaner.__name__):
        removals = image_cleaner.clean(ctx)

    assert [(removal.image.name, removal.why) for removal in removals] == [(unused, "an operator asked")]
    assert not images.present(unused) and images.present(used) and images.present(not_booklabs)
    log = removed_lines(caplog)
    assert f"not removing image {used}, as an operator asked: it is in use" in log
    assert f"not removing image {not_booklabs!r}, as an operator asked: it is none of Booklab's images" in log
    assert ctx.images.pending_removals(ctx.docker_host) == set()  # a refused request is dropped


def test_dangling_images_booklab_built_go_and_no_one_elses(images, cleaner_ctx):
    built_here = images.load(None, 8 * KIB, labels={image_cleaner.BUILT_AS: images.name("lab/replaced")})
    built_elsewhere = images.load(None, 8 * KIB, labels={image_cleaner.BUILT_AS: "other-prefix/x:1"})
    unlabelled = images.load(None, 8 * KIB)
    just_built = images.load(
        None,
        8 * KIB,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        labels={image_cleaner.BUILT_AS: images.name("lab/building")},
    )
    ctx = cleaner_ctx()  # images/prune_dangling false, as on a shared engine
    image_cleaner.clean(ctx)
    assert not images.present(built_here)
    assert images.present(built_elsewhere) and images.present(unlabelled) and images.present(just_built)


def test_only_one_runner_of_a_host_cleans_at_a_time(images, cleaner_ctx):
    old = images.name("lab/old")
    images.load(old, 8 * KIB)
    ctx = cleaner_ctx(BOOKLAB_IMAGES_MAX_AGE="60")
    ctx.redis.set(schema.image_cleaning(ctx.docker_host), "another runner", ex=60)
    assert image_cleaner.clean(ctx) == [] and images.present(old)
    ctx.redis.delete(schema.image_cleaning(ctx.docker_host))
    assert len(image_cleaner.clean(ctx)) == 1 and not images.present(old)


def test_a_runner_cleans_on_its_schedule_and_says_so_in_its_log(images, runners, ctx):
    stale = images.name("lab/stale")
    images.load(stale, 8 * KIB)
    (runner,) = runners(
        1,
        BOOKLAB_BUILD_IMAGE_PREFIX=images.prefix,
        BOOKLAB_IMAGES_MAX_AGE=str(DAY),
        BOOKLAB_IMAGES_MAX_DISK="0",
        BOOKLAB_IMAGES_CLEAN_INTERVAL="2",
    )
    wait_until(lambda: not images.present(stale), 30, "the runner to remove the stale image")
    wait_until(lambda: f"removed image {stale}" in runner.output(), 10, "the runner's log line")
    assert "unused for" in runner.output()
    # and on schedule, not only at its start: a stale image loaded now goes too
    later = images.name("lab/later")
    images.load(later, 8 * KIB)
    wait_until(lambda: not images.present(later), 30, "the runner's next cleaning")
    # counted and published once that cleaning is over
    wait_until(lambda: ctx.images.removed() == {ctx.docker_host: 2}, 10, "two removals counted")
    wait_until(lambda: ctx.images.inventory() == {ctx.docker_host: []}, 10, "no image left published")


def test_a_build_short_of_space_makes_room_first_and_says_only_that_it_did(
    images, cleaner_ctx, gitlab, base_image, tmp_path
):
    other_project = images.name("secret-group/other-project")
    images.load(other_project, 8 * KIB)
    gitlab.add_user("maria")
    gitlab.add_project("lab/build", members={"maria": MAINTAINER})
    files = {**notebook_repo_files(base_image), "unique.txt": secrets.token_hex(8)}
    gitlab.push("lab/build", create_local_repo(tmp_path / "build", {"main": files}))
    ctx = cleaner_ctx(BOOKLAB_IMAGES_MAX_DISK="1k")
    dep = Deployment("lab/build", "main", "maria")
    queue_run(ctx, dep, gitlab.store.user("maria").token)
    run = take_run(ctx, dep.id, "runner-played-by-a-test")
    for step in (steps.provision_key, steps.clone, steps.build):
        step(ctx, run, "runner-played-by-a-test")

    log = messages([event.data for event in ctx.events.read(run.id, 0)])
    assert "Made room for the build: removed unused images." in log
    assert "secret-group" not in log  # another project's name is none of this user's business
    assert not images.present(other_project)
    image = ctx.deployments.record(dep.id)["image"]
    assert images.engine.images.get(image).labels[image_cleaner.BUILT_AS] == image
    assert ctx.images.last_launched(image) == pytest.approx(time.time(), abs=120)


def test_an_operator_sees_each_hosts_images_and_has_one_removed(images, cleaner_ctx, web_client, gitlab):
    unused, used = images.name("lab/unused"), images.name("lab/used")
    for name in (unused, used):
        images.load(name, 8 * KIB)
    images.used_by_stopped_container(used)
    ctx = cleaner_ctx()
    image_cleaner.clean(ctx)  # publishes what the host keeps
    carol = gitlab.add_user("carol")
    gitlab.set_admin("carol")  # GitLab's administrators are operators
    headers = {"Authorization": f"Bearer {carol.token}"}
    host = ctx.docker_host

    listed = {i["name"]: i for i in web_client.get("/api/admin/images", headers=headers).json["images"]}
    assert (listed[used]["host"], listed[used]["in_use"], listed[unused]["in_use"]) == (host, True, False)
    assert listed[unused]["size"] == images.size(unused)
    asked = web_client.post("/api/admin/images/remove", json={"host": host, "image": unused}, headers=headers)
    assert asked.status_code == 202
    unknown = web_client.post("/api/admin/images/remove", json={"host": host, "image": "x:1"}, headers=headers)
    assert unknown.status_code == 404 and "has no image 'x:1'" in unknown.json["error"]
    assert [
        i["removal_asked"]
        for i in web_client.get("/api/admin/images", headers=headers).json["images"]
        if i["name"] == unused
    ] == [True]

    image_cleaner.clean(ctx)
    assert not images.present(unused) and images.present(used)
    names = [i["name"] for i in web_client.get("/api/admin/images", headers=headers).json["images"]]
    assert unused not in names and used in names
    actions = web_client.get("/api/admin/actions", headers=headers).json["actions"]
    assert [(a["operator"], a["action"], a["target"]) for a in actions] == [
        ("carol", "remove image", f"{unused} on {host}")
    ]
