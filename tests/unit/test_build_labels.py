"""The Dockerfile that gives a built image its labels in one step (the quoting is tried against a
real Docker Engine in ``tests/integration/test_builder.py``)."""

import json
import subprocess
import sys

import pytest
from repo2docker.__main__ import make_r2d
from repo2docker.engine import BuildError, ContainerEngine

from booklab.pipeline.builder import _repo2docker_args
from booklab.pipeline.r2d_engine import EngineAPIEngine, labelled


def test_all_labels_in_one_label_instruction_on_the_built_image():
    dockerfile = labelled("sha256:" + "a" * 64, {"b.two": "2", "a.one": "1", "c.none": None})
    lines = dockerfile.splitlines()
    assert lines[0] == "FROM sha256:" + "a" * 64
    assert [line for line in lines if line.startswith("LABEL")] == ['LABEL "a.one"="1" \\']
    assert '"c.none"=""' in dockerfile


@pytest.mark.parametrize(
    "key, value",
    [("booklab.x", "one\nFROM evil"), ("booklab.x", "one\rtwo"), ('booklab" x', "1"), ("", "1"), ("a b", "1")],
)
def test_a_label_that_would_break_out_of_its_line_is_refused(key, value):
    with pytest.raises(BuildError, match="cannot be set"):
        labelled("sha256:" + "a" * 64, {key: value})


#: what a repository's .booklab.yml could put in the settings label, to set another label if left unquoted
HOSTILE_SETTINGS = json.dumps({"urlpath": 'lab" booklab.project="someone/else', "memory": "2g"})


def test_booklabs_labels_reach_the_engine_and_not_repo2docker_s_label_option(tmp_path):
    given = {"booklab.project": "group/project", "booklab.settings": HOSTILE_SETTINGS, "booklab.empty": ""}
    r2d = make_r2d(_repo2docker_args(tmp_path, "booklab/x:1", "", given))
    assert r2d.repo == str(tmp_path)  # an argument with a space would have been taken for the repository
    assert r2d.labels == {}
    engine = _EngineWithoutClient(parent=r2d)  # as repo2docker makes its engine, settings read by its traits
    assert json.loads(engine.final_labels) == given


class _EngineWithoutClient(EngineAPIEngine):
    """Booklab's engine, its settings and all, without the Docker Engine client it makes."""

    def __init__(self, *, parent):
        ContainerEngine.__init__(self, parent=parent)


def test_a_repository_without_a_dockerfile_gets_no_booklab_label_in_repo2dockers_dockerfile(tmp_path):
    (tmp_path / "requirements.txt").write_text("numpy\n")
    given = {"booklab.project": "group/project", "booklab.settings": HOSTILE_SETTINGS}
    argv = [arg for arg in _repo2docker_args(tmp_path, "booklab/x:1", "", given) if arg != "--engine=booklab"]
    # --no-build --debug: repo2docker prints the Dockerfile it generated, and builds nothing
    shown = subprocess.run(
        [sys.executable, "-m", "repo2docker", "--no-build", "--debug", *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "LABEL repo2docker.version" in shown.stdout + shown.stderr
    assert "booklab" not in (shown.stdout + shown.stderr).replace("booklab/x:1", "")
