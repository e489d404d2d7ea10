"""Branch names are data: anything git would refuse, or shaped like an option, is refused."""

import pytest

from booklab.errors import CloneError
from booklab.pipeline.git import check_branch_name


@pytest.mark.parametrize("name", ["main", "feature/été", "release-1.2", "a_b+c"])
def test_valid_names_pass(name):
    check_branch_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "--upload-pack=touch /tmp/pwned",
        "-b",
        "a..b",
        "a b",
        "a~1",
        "x:y",
        "trailing/",
        "x.lock",
        "",
        "@",
        "a\\b",
        "a@{1}",
    ],
)
def test_invalid_names_are_refused(name):
    with pytest.raises(CloneError, match="not a valid branch name"):
        check_branch_name(name)
