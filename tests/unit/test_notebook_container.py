"""The decisions about a notebook container: which image labels and users are refused,
and the hardening every notebook gets."""

import pytest

from booklab.errors import LaunchError
from booklab.pipeline.notebook_container import Limits, create_kwargs, is_root_uid, refuse_labels, refuse_root, uids_of

LIMITS = Limits(memory="1g", cpus=0.5, pids=256)


def image(labels=None, user="jovyan") -> dict:
    return {"Config": {"Labels": labels, "User": user}}


def kwargs(attrs: dict, limits: Limits = LIMITS) -> dict:
    return create_kwargs(
        attrs,
        name="booklab-x",
        deployment_id="a/b:main:alice",
        labels={"booklab.runner": "r1"},
        limits=limits,
        environment={"JUPYTER_TOKEN": "t"},
        network="",
        host_ip="127.0.0.1",
        publish=True,
        port=8888,
    )


def test_every_notebook_is_hardened_and_labelled_by_booklab():
    created = kwargs(image({"org.opencontainers.image.title": "fine", "booklab.commit": "abc"}))
    assert created["cap_drop"] == ["ALL"] and created["security_opt"] == ["no-new-privileges"]
    assert created["pids_limit"] == 256 and created["privileged"] is False
    assert created["mem_limit"] == "1g" and created["nano_cpus"] == 500_000_000
    assert created["labels"] == {"booklab.runner": "r1", "booklab.deployment": "a/b:main:alice"}


@pytest.mark.parametrize(
    "key",
    [
        "traefik.enable",
        "traefik.http.routers.x.rule",
        "Traefik.HTTP.Routers.x.rule",
        "TRAEFIK.tcp.routers.y.rule",
        "traefik.http.middlewares.m.headers.customrequestheaders.x",
        "traefikx",
    ],
)
def test_an_image_with_a_traefik_label_is_refused_by_the_key(key):
    with pytest.raises(LaunchError, match="Traefik labels") as refused:
        kwargs(image({key: "Host(`booklab.example.org`)", "maintainer": "me"}))
    assert key in str(refused.value) and "remove those LABEL lines" in str(refused.value)
    assert "booklab.example.org" not in str(refused.value) and "maintainer" not in str(refused.value)


@pytest.mark.parametrize("key", ["booklab.deployment", "booklab.runner", "Booklab.Runner"])
def test_an_image_with_booklab_own_container_labels_is_refused(key):
    with pytest.raises(LaunchError, match="only Booklab sets"):
        refuse_labels({key: "someone-else"})


@pytest.mark.parametrize("labels", [None, {}, {"booklab.project": "a/b", "x.traefik": "not a traefik label"}])
def test_other_labels_pass(labels):
    refuse_labels(labels or {})


@pytest.mark.parametrize("user", ["", "root", "0", "00", "+0", "-1", "0:0", "root:users", "0:1000", "4294967296"])
def test_an_image_user_that_is_root_is_refused(user):
    with pytest.raises(LaunchError, match="runs as root.*USER 1000.*notebook/allow_root"):
        kwargs(image(user=user))


@pytest.mark.parametrize("user", ["1000", "1000:100", "jovyan", "jovyan:root", "65534"])
def test_other_image_users_pass_and_root_passes_when_allowed(user):
    kwargs(image(user=user))
    kwargs(image(user="root"), Limits(memory="1g", cpus=1, pids=10, allow_root=True))


PASSWD = """root:x:0:0:root:/root:/bin/bash
jovyan:x:1000:100::/home/jovyan:/bin/bash
 admin:x:0:0::/:/bin/sh
twice:x:1000:100::/:/bin/sh
twice:x:0:0:a second entry:/:/bin/sh
\x1ccontrol:x:1000:100:Python trims the control character, Go does not:/:/bin/sh
control:x:0:0:so Docker takes this one:/:/bin/sh
odd:x:1000\fodd:x:2000
"""


@pytest.mark.parametrize(
    "name, uids",
    [
        ("jovyan", ["1000"]),
        ("admin", ["0"]),
        ("twice", ["1000", "0"]),
        ("control", ["1000", "0"]),
        ("odd", ["1000\fodd"]),
        ("nobody", []),
    ],
)
def test_a_named_user_is_looked_up_every_way_docker_may_read_it(name, uids):
    assert uids_of(name, PASSWD) == uids


@pytest.mark.parametrize(
    "uid, root",
    [
        ("1000", False),
        ("1", False),
        ("2147483647", False),
        ("0", True),
        ("", True),
        ("abc", True),
        ("1000 ", True),
        ("2147483648", True),
        ("1000\fodd", True),
        ("٣", True),
    ],
)
def test_a_uid_docker_may_run_as_root_is_root(uid, root):
    assert is_root_uid(uid) is root


def test_refuse_root_is_quiet_for_a_name():
    refuse_root("jovyan")
