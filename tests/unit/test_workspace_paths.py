"""Which paths of a notebook container count as the user's work, and that copying them into
a checkout never writes or removes anything outside it (real files in a temporary directory)."""

from __future__ import annotations

import pytest

from booklab import workspace

ROOT = "/home/jovyan"


@pytest.mark.parametrize("path, expected", [
    ("/home/jovyan/analysis.ipynb", "analysis.ipynb"),
    ("/home/jovyan/data/out.csv", "data/out.csv"),
    ("/home/jovyan", None),
    ("/home/jovyanother/x", None),
    ("/etc/passwd", None),
    ("/home/jovyan/../root/.ssh/id_rsa", None),
])
def test_only_paths_under_the_notebook_directory_count(path, expected):
    assert workspace._relative(path, ROOT) == expected


@pytest.mark.parametrize("relative, kind, counts", [
    ("analysis.ipynb", 0, True),
    ("results/new.csv", 1, True),
    (".ipynb_checkpoints/analysis-checkpoint.ipynb", 1, False),
    ("sub/.ipynb_checkpoints/a-checkpoint.ipynb", 0, False),
    ("pkg/__pycache__/mod.cpython-311.pyc", 1, False),
    (".local/share/jupyter/runtime/kernel.json", 1, False),
    (".ipython/profile_default/history.sqlite", 1, False),
    (".gitignore", 0, True),  # tracked by the repository: it existed in the image
    (".booklab.yml", 2, True),
])
def test_jupyter_and_python_leftovers_are_not_work(relative, kind, counts):
    assert workspace._may_be_work(relative, kind) is counts


def test_a_symlink_in_the_checkout_never_leads_a_write_outside(tmp_path):
    checkout, outside = tmp_path / "checkout", tmp_path / "outside"
    checkout.mkdir()
    outside.mkdir()
    (checkout / "data").symlink_to(outside)

    target = workspace._writable(checkout, "data/payload.txt")
    target.write_text("x")

    assert (checkout / "data").is_dir() and not (checkout / "data").is_symlink()
    assert list(outside.iterdir()) == []


def test_a_deletion_through_a_symlink_is_ignored(tmp_path):
    checkout, outside = tmp_path / "checkout", tmp_path / "outside"
    checkout.mkdir()
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    (checkout / "link").symlink_to(outside)
    (checkout / "gone.txt").write_text("delete me")

    workspace.copy_into(None, workspace.Changes(ROOT, (), ("gone.txt", "link/precious.txt")), checkout)

    assert (outside / "precious.txt").read_text() == "keep me"
    assert not (checkout / "gone.txt").exists()
