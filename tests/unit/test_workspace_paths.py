"""Which paths of a notebook container count as the user's work, and that copying them into
a checkout never writes or removes anything outside it (real files in a temporary directory)."""

from __future__ import annotations

import pytest

from booklab.saveback import workspace

ROOT = "/home/jovyan"


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/home/jovyan/analysis.ipynb", "analysis.ipynb"),
        ("/home/jovyan/data/out.csv", "data/out.csv"),
        ("/home/jovyan", None),
        ("/home/jovyanother/x", None),
        ("/etc/passwd", None),
        ("/home/jovyan/../root/.ssh/id_rsa", None),
    ],
)
def test_only_paths_under_the_notebook_directory_count(path, expected):
    assert workspace._relative(path, ROOT) == expected


@pytest.mark.parametrize(
    "relative, kind, counts",
    [
        ("analysis.ipynb", 0, True),
        ("results/new.csv", 1, True),
        (".ipynb_checkpoints/analysis-checkpoint.ipynb", 1, False),
        ("sub/.ipynb_checkpoints/a-checkpoint.ipynb", 0, False),
        ("pkg/__pycache__/mod.cpython-311.pyc", 1, False),
        (".local/share/jupyter/runtime/kernel.json", 1, False),
        (".ipython/profile_default/history.sqlite", 1, False),
        (".gitignore", 0, True),  # tracked by the repository: it existed in the image
        (".booklab.yml", 2, True),
        # git's own files would let the notebook's code configure commands for the runner's git
        (".git/config", 0, False),
        (".git/hooks/pre-commit", 1, False),
        (".GIT/config", 1, False),
        ("sub/.git", 1, False),
    ],
)
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

    workspace.copy_into(
        None, workspace.Changes(ROOT, (), ("gone.txt", "link/precious.txt")), checkout, tracked={"gone.txt", "link"}
    )

    assert (outside / "precious.txt").read_text() == "keep me"
    assert not (checkout / "gone.txt").exists()


def test_a_hidden_file_the_repository_does_not_track_is_neither_written_nor_removed(tmp_path):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / ".env").write_text("the build's own")
    (checkout / ".gitignore").write_text("*.tmp\n")

    left_out = workspace.copy_into(
        None, workspace.Changes(ROOT, (), (".env", ".gitignore")), checkout, tracked={".gitignore"}
    )

    assert left_out == []
    assert (checkout / ".env").exists() and not (checkout / ".gitignore").exists()
