"""``access/allowed_projects``: a project may be launched when it is one of the paths named,
or lies under one (GitLab's paths are case-insensitive); nothing else, not a look-alike."""

from __future__ import annotations

import pytest

from booklab.allowed import check_project
from booklab.config import Config
from booklab.errors import NotAllowed

CONFIG = Config(access_allowed_projects=" dept/lab , Course/notebooks ,")


@pytest.mark.parametrize("project", ["dept/lab/x", "dept/lab/sub/y", "DEPT/Lab/x", "course/notebooks"])
def test_projects_named_or_under_a_group_named_may_be_launched(project):
    check_project(CONFIG, project)


@pytest.mark.parametrize("project", ["dept/laboratory/x", "dept/x", "course/notebooks-2", "other/course/notebooks"])
def test_other_projects_are_refused_with_the_places_named(project):
    with pytest.raises(NotAllowed, match=r"launches the projects of dept/lab or Course/notebooks only"):
        check_project(CONFIG, project)


def test_no_setting_lets_every_project_in():
    check_project(Config(), "anything/at/all")
