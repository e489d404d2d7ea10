"""The checkout guard's decision on real trees: which symbolic links lead out of a checkout."""

from __future__ import annotations

import os

import pytest

from booklab.errors import UnsafeCheckout
from booklab.pipeline.checkout_guard import check, links_leaving

UP = "../" * 12


def make_tree(root, files: list[str], links: dict[str, str]) -> None:
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("content\n")
    for name, target in links.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, root / name)


@pytest.fixture
def checkout(tmp_path):
    (tmp_path / "checkout").mkdir()
    (tmp_path / "neighbour").mkdir()  # another user's checkout beside this one
    (tmp_path / "neighbour" / "secret.txt").write_text("not yours\n")
    return tmp_path / "checkout"


@pytest.mark.parametrize(
    "files, links, leaving",
    [
        ([], {"apt.txt": UP + "etc/passwd"}, ["apt.txt"]),
        ([], {"apt.txt": "/etc/passwd"}, ["apt.txt"]),
        ([], {"apt.txt": "/proc/self/environ"}, ["apt.txt"]),
        (
            [],
            {"env": "/proc/1/environ", "random": "/dev/urandom", "kernel": "/sys/kernel"},
            ["env", "kernel", "random"],
        ),
        ([], {"binder": "/etc"}, ["binder"]),
        ([], {"apt.txt": "../neighbour/secret.txt"}, ["apt.txt"]),
        ([], {"gone": "/nonexistent/file"}, ["gone"]),  # dangling, but outside
        ([], {"a": "b", "b": UP}, ["a", "b"]),  # a chain of links
        (["docs/x"], {"apt.txt": "data/passwd", "data": "b", "b": UP + "etc"}, ["apt.txt", "b", "data"]),
        (["docs/x"], {"docs/up": ".."}, []),  # the checkout itself
        (["docs/x"], {"docs/up": "../.."}, ["docs/up"]),
        (["docs/x"], {"docs/sneaky": "../docs/../../checkout/docs/x"}, []),  # out and back in by name
        (["real/apt.txt"], {"binder": "real", "deep/apt.txt": "../binder/apt.txt"}, []),
        (["a.txt"], {"sub/a.txt": "../a.txt", "abs.txt": "{checkout}/a.txt"}, []),
        ([], {"later.txt": "not-yet.txt", "sub/later": "../nowhere/x"}, []),  # dangling inside
        ([], {"loop-a": "loop-b", "loop-b": "loop-a"}, ["loop-a", "loop-b"]),  # cannot be resolved: refused
        (["hello"], {".git/hooks/x": "/etc/passwd"}, [".git/hooks/x"]),  # .git is walked too
        (["hello"], {"deep/er/est": "/"}, ["deep/er/est"]),
    ],
)
def test_links_leaving_the_checkout(checkout, files, links, leaving):
    make_tree(checkout, files, {name: target.format(checkout=checkout) for name, target in links.items()})
    assert links_leaving(checkout) == leaving


def test_a_linked_directory_is_not_entered(checkout, tmp_path):
    outside = tmp_path / "outside"
    make_tree(outside, [], {"passwd": "/etc/passwd"})
    make_tree(checkout, [], {"data": str(outside)})
    assert links_leaving(checkout) == ["data"]  # named once, its inside not walked


def test_the_refusal_names_a_few_links_counts_the_others_and_says_what_to_do(checkout):
    make_tree(checkout, ["ok.txt"], {f"link{i}": "/etc/passwd" for i in range(5)} | {"fine": "ok.txt"})
    with pytest.raises(UnsafeCheckout) as refused:
        check(checkout)
    message = str(refused.value)
    assert "link0, link1, link2 and 2 more" in message
    assert "fine" not in message and str(checkout) not in message
    assert "Commit the files themselves instead of a link" in message


def test_a_checkout_with_links_inside_only_passes(checkout):
    make_tree(checkout, ["hello.ipynb"], {"docs/copy.ipynb": "../hello.ipynb", "latest.ipynb": "docs/copy.ipynb"})
    check(checkout)
    assert (checkout / "latest.ipynb").read_text() == "content\n"


def test_a_checkout_reached_through_a_link_is_judged_by_its_real_place(checkout, tmp_path):
    make_tree(checkout, ["a.txt"], {"b.txt": "a.txt"})
    os.symlink(checkout, tmp_path / "alias")
    assert links_leaving(tmp_path / "alias") == []


def test_a_link_hidden_deeper_than_a_path_may_be_is_refused(checkout):
    """Folders nested past the system's path length: the kernel still follows a link there
    (step by step from inside the checkout) where Python could no longer resolve it."""
    deep = "/".join(["d" * 250] * 16)
    (checkout / deep).parent.mkdir(parents=True)
    os.symlink("/etc", checkout / deep)
    os.symlink(f"{deep}/passwd", checkout / "apt.txt")
    assert "root:" in (checkout / "apt.txt").read_text()  # what the build would have read
    with pytest.raises(UnsafeCheckout, match="path too long to check"):
        check(checkout)
