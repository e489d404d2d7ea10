"""The demo's sample repository: a Dockerfile ``FROM`` the local Jupyter base image and a
notebook, on the branch ``main`` and on a branch with a slash in its name.

Its commits have a fixed author and fixed dates, so the same base image gives the same
commits on every run, and Booklab finds the images it built before.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

NAME = "notebooks"
BRANCH_WITH_SLASH = "feature/fibonacci"
_IDENTITY = {
    "GIT_AUTHOR_NAME": "Booklab demo",
    "GIT_AUTHOR_EMAIL": "demo@example.com",
    "GIT_COMMITTER_NAME": "Booklab demo",
    "GIT_COMMITTER_EMAIL": "demo@example.com",
    "GIT_AUTHOR_DATE": "2026-01-01T12:00:00+00:00",
    "GIT_COMMITTER_DATE": "2026-01-01T12:00:00+00:00",
}


#: the notebooks' kernel, named so that JupyterLab starts it without asking which one
_KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}}


def _notebook(*cells: tuple[str, str]) -> str:
    """An nbformat 4 notebook of ``(cell type, source)`` cells for the Python kernel, never run."""

    def cell(kind: str, source: str) -> dict:
        made = {"cell_type": kind, "metadata": {}, "source": source.splitlines(keepends=True)}
        return made | ({"execution_count": None, "outputs": []} if kind == "code" else {})

    return (
        json.dumps(
            {"cells": [cell(*c) for c in cells], "metadata": _KERNEL, "nbformat": 4, "nbformat_minor": 5}, indent=1
        )
        + "\n"
    )


def _files(base_image: str) -> dict[str, str]:
    return {
        "Dockerfile": f"FROM {base_image}\nCOPY --chown=1000:1000 . /home/jovyan/\n",
        "README.md": (
            "# Booklab sample\n\nA notebook that Booklab builds from its Dockerfile "
            f"(`FROM {base_image}`) and opens in JupyterLab.\n"
        ),
        "hello.ipynb": _notebook(
            (
                "markdown",
                (
                    "# Hello from Booklab\n\nThis notebook runs in a container that Booklab "
                    "built from this branch of the project."
                ),
            ),
            ("code", "import platform\nprint(f'Python {platform.python_version()} on {platform.node()}')"),
        ),
    }


_BRANCH_FILES = {
    "fibonacci.ipynb": _notebook(
        ("markdown", f"# Fibonacci\n\nOnly on the branch `{BRANCH_WITH_SLASH}`."),
        ("code", "a, b = 0, 1\nfor _ in range(10):\n    print(a)\n    a, b = b, a + b"),
    ),
}


def _commit(repo: Path, files: dict[str, str], message: str) -> None:
    for name, content in files.items():
        (repo / name).write_text(content)
    env = {**os.environ, **_IDENTITY}
    subprocess.run(["git", "-C", str(repo), "add", "--", *files], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "--quiet", "-m", message], env=env, check=True)


def create_sample(parent: Path, base_image: str) -> Path:
    """The sample repository ``<parent>/notebooks``, built ``FROM base_image``."""
    repo = parent / NAME
    repo.mkdir(parents=True)
    subprocess.run(["git", "init", "--quiet", "--initial-branch=main", str(repo)], check=True)
    _commit(repo, _files(base_image), "A notebook and its Dockerfile")
    subprocess.run(["git", "-C", str(repo), "checkout", "--quiet", "-b", BRANCH_WITH_SLASH], check=True)
    _commit(repo, _BRANCH_FILES, "A second notebook")
    subprocess.run(["git", "-C", str(repo), "checkout", "--quiet", "main"], check=True)
    return repo
