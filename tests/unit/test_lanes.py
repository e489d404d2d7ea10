"""``make test``'s sessions (tests/lanes.py): a session's output passes through as it comes, and the log ends with
each session's status and the tests it broke."""

from __future__ import annotations

from tests import lanes

TESTS = """
import pytest

@pytest.fixture
def broken():
    raise TimeoutError("no answer")

def test_passes():
    pass

def test_fails():
    assert 1 == 2

def test_errs(broken):
    pass
"""


def test_a_session_is_echoed_and_the_tests_it_broke_are_named(tmp_path, capfd, monkeypatch):
    (tmp_path / "test_some.py").write_text(TESTS)
    monkeypatch.chdir(tmp_path)
    session = lanes.Session("not slow", ["-p", "no:cacheprovider"])
    try:
        status = session.echo()
        broke = session.broke()
    finally:
        session.end()
    assert status == 1
    assert "1 failed, 1 passed, 1 error" in capfd.readouterr().out
    assert sorted(broke) == [
        "ERROR test_some.py::test_errs - TimeoutError: no answer",
        "FAILED test_some.py::test_fails - assert 1 == 2",
    ]


def test_the_summary_names_each_session_and_what_it_broke():
    text = lanes.summary([(lanes.MAIN, 1, ["FAILED tests/a.py::test_x - boom"]), (lanes.BESIDE, 0, [])])
    assert text.splitlines()[2:] == [
        "-m 'not beside and not alone': exit status 1",
        "  FAILED tests/a.py::test_x - boom",
        "-m 'beside and not alone': passed",
    ]
