"""images/max_disk: a size or a share of the Docker data disk, which a runner must then see."""

from __future__ import annotations

import os

import pytest

from booklab import config as config_module
from booklab.errors import ConfigError


def limit(max_disk: str, disk_size: int | None) -> int | None:
    config = config_module.load(os.devnull, environ={"BOOKLAB_IMAGES_MAX_DISK": max_disk})
    return config.images_limit(disk_size)


def test_max_disk_is_a_size_or_a_share_of_the_disk():
    assert limit("2g", None) == 2 * 1024**3
    assert limit("50%", 1000) == 500
    assert limit("12.5 %", 1000) == 125
    assert limit("0", 1000) is None


@pytest.mark.parametrize("value", ["lots", "0%", "150%", "-5%", "%"])
def test_a_max_disk_that_is_neither_is_refused_at_start_up(value):
    with pytest.raises(ConfigError, match="images/max_disk must be a size such as 100g or a share"):
        config_module.load(os.devnull, environ={"BOOKLAB_IMAGES_MAX_DISK": value})


def test_a_share_of_a_disk_the_runner_cannot_see_says_what_to_do():
    with pytest.raises(ConfigError, match="cannot see: mount the Docker Engine's data directory"):
        limit("50%", None)
