"""Booklab's images in Redis (booklab.state.images), as the cleaners and the operator's page
share them, and as /metrics shows them."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, generate_latest

from booklab.state.images import ImageInfo, Images
from booklab.state.metrics import RedisCollector


def info(name: str, size: int = 10, image_id: str | None = None, **fields) -> ImageInfo:
    values = {"created": 1000.0, "last_launched": None, "in_use": False} | fields
    return ImageInfo(name=name, id=image_id or f"sha256:{name}", size=size, **values)


def test_launches_are_remembered_per_image_and_old_ones_forgotten(redis_client):
    images = Images(redis_client)
    assert images.last_launched("booklab/a:1") is None
    images.launched("booklab/a:1", when=100.0)
    images.launched("booklab/b:1", when=200.0)
    images.launched("booklab/a:1", when=300.0)
    assert images.last_launches(["booklab/a:1", "booklab/b:1", "booklab/c:1"]) == {
        "booklab/a:1": 300.0,
        "booklab/b:1": 200.0,
        "booklab/c:1": None,
    }
    images.forget_launches_before(250.0)
    assert images.last_launched("booklab/b:1") is None and images.last_launched("booklab/a:1") == 300.0


def test_the_latest_image_of_a_branch_is_forgotten_with_its_launches(redis_client):
    """Placement's hint (the image a branch launched last) goes once its image's launches are forgotten: the
    branches of every project ever launched would otherwise stay in Redis for good."""
    images = Images(redis_client)
    images.launched_on("host-a", "booklab/old:1", "lab/old", "main")
    images.launched_on("host-a", "booklab/new:1", "lab/new", "main")
    images.launched_on("host-a", "booklab/new:1", "lab/new", "feature")  # the same commit on another branch
    images.launched("booklab/old:1", when=100.0)  # launched long ago
    images.forget_launches_before(time.time() - 3600)
    assert images.latest("lab/old", "main") is None
    assert images.latest("lab/new", "main") == images.latest("lab/new", "feature") == "booklab/new:1"


def test_each_host_publishes_its_images_and_a_silent_host_drops_out(redis_client):
    images = Images(redis_client, inventory_ttl=1)
    one = [info("booklab/b:2", in_use=True), info("booklab/a:1", last_launched=5.0)]
    images.publish("host-1", one)
    Images(redis_client, inventory_ttl=60).publish("host-2", [info("booklab/c:3")])
    assert images.inventory() == {"host-1": sorted(one, key=lambda i: i.name), "host-2": [info("booklab/c:3")]}
    time.sleep(1.1)
    assert list(images.inventory()) == ["host-2"]


def test_removals_asked_are_taken_once_by_the_host_they_were_asked_of(redis_client):
    images = Images(redis_client)
    images.request_removal("host-1", "booklab/a:1")
    images.request_removal("host-1", "booklab/b:1")
    images.request_removal("host-2", "booklab/c:1")
    assert images.pending_removals("host-1") == {"booklab/a:1", "booklab/b:1"}
    assert images.take_removals("host-1") == ["booklab/a:1", "booklab/b:1"]
    assert images.take_removals("host-1") == [] and images.pending_removals("host-1") == set()
    assert images.pending_removals("host-2") == {"booklab/c:1"}


def test_metrics_show_the_bytes_of_images_and_the_images_removed_per_host(redis_client):
    images = Images(redis_client)
    # two names of one image count once
    images.publish("host-1", [info("booklab/a:1", 100, "sha256:x"), info("booklab/a:2", 100, "sha256:x")])
    images.publish("host-2", [info("booklab/b:1", 30), info("booklab/c:1", 12)])
    images.count_removed("host-1", 2)
    images.count_removed("host-1", 1)
    registry = CollectorRegistry()
    registry.register(RedisCollector(redis_client))
    text = generate_latest(registry).decode()
    assert 'booklab_images_bytes{host="host-1"} 100.0' in text
    assert 'booklab_images_bytes{host="host-2"} 42.0' in text
    assert 'booklab_images_removed_total{host="host-1"} 3.0' in text
    assert 'booklab_images_removed_total{host="host-2"}' not in text


def test_a_branchs_latest_image_is_found_by_its_projects_path_in_any_case(redis_client):
    """``warm/projects`` may spell a path otherwise than GitLab, which finds it in any case; a branch's name is
    its own."""
    images = Images(redis_client)
    images.launched_on("host-a", "booklab/lab:1", "Course/Lab", "main")
    assert images.latest("course/lab", "main") == images.latest("COURSE/LAB", "main") == "booklab/lab:1"
    assert images.latest("course/lab", "Main") is None
