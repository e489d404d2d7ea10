"""The Dockerfile that gives a built image its labels in one step (the quoting is tried against a
real Docker Engine in ``tests/integration/test_builder.py``)."""

import pytest
from repo2docker.engine import BuildError

from booklab.pipeline.r2d_engine import labelled


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
