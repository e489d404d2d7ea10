"""Which images a cleaning removes, given their sizes, last uses and whether they are in use:
the pure decision of booklab.pipeline.image_cleaner, without Docker."""

from __future__ import annotations

from booklab.pipeline.image_cleaner import to_remove
from booklab.state.images import ImageInfo

NOW = 1_000_000_000.0
DAY = 86400


def image(name: str, size: int, days_ago: float, in_use: bool = False, launched: bool = True) -> ImageInfo:
    when = NOW - days_ago * DAY
    return ImageInfo(
        name=name,
        id=f"sha256:{name}",
        size=size,
        created=when if not launched else when - 30 * DAY,
        last_launched=when if launched else None,
        in_use=in_use,
    )


def names(removals) -> list[str]:
    return [removal.image.name for removal in removals]


def test_under_the_limit_nothing_goes():
    images = [image("a", 100, 50), image("b", 100, 1)]
    assert to_remove(images, now=NOW, max_age=0, max_bytes=200) == []
    assert to_remove(images, now=NOW, max_age=0, max_bytes=None) == []


def test_over_the_limit_the_least_recently_launched_go_first_until_under_it():
    images = [image("recent", 100, 1), image("oldest", 100, 9), image("older", 100, 5), image("new", 100, 0)]
    removals = to_remove(images, now=NOW, max_age=0, max_bytes=250)
    assert names(removals) == ["oldest", "older"]
    assert "over images/max_disk" in removals[0].why


def test_an_image_never_launched_counts_from_its_build():
    images = [image("launched-3-days-ago", 100, 3), image("built-5-days-ago", 100, 5, launched=False)]
    assert names(to_remove(images, now=NOW, max_age=0, max_bytes=150)) == ["built-5-days-ago"]
    images = [image("launched-3-days-ago", 100, 3), image("built-1-day-ago", 100, 1, launched=False)]
    assert names(to_remove(images, now=NOW, max_age=0, max_bytes=150)) == ["launched-3-days-ago"]


def test_an_image_in_use_never_goes_even_when_the_limit_cannot_be_kept():
    images = [image("used", 500, 90, in_use=True), image("unused", 100, 1)]
    assert names(to_remove(images, now=NOW, max_age=DAY, max_bytes=10)) == ["unused"]


def test_images_unused_longer_than_max_age_go_whatever_the_size():
    images = [image("stale", 10, 8), image("fresh", 10, 6), image("stale-but-used", 10, 30, in_use=True)]
    removals = to_remove(images, now=NOW, max_age=7 * DAY, max_bytes=None)
    assert names(removals) == ["stale"]
    assert removals[0].why == "unused for 8.0 days, longer than images/max_age"


def test_images_removed_for_their_age_count_towards_the_limit():
    images = [image("stale", 300, 10), image("a", 100, 2), image("b", 100, 1)]
    assert names(to_remove(images, now=NOW, max_age=7 * DAY, max_bytes=250)) == ["stale"]


def test_a_nearly_full_disk_frees_what_it_lacks_even_under_the_limit():
    images = [image("a", 100, 3), image("b", 100, 2), image("c", 100, 1)]
    removals = to_remove(images, now=NOW, max_age=0, max_bytes=1000, short_of=150)
    assert names(removals) == ["a", "b"]
    assert "less than 10% free" in removals[0].why
