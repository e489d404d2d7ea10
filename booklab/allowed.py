"""Who may use this Booklab, and what they may launch: the operator's ``access/*`` settings,
checked when a user logs in and again at each launch (a membership may have changed since).

A user may when they are a member (Guest or more, directly or through a parent group) of
one of ``access/allowed_groups`` or of one of its subgroups; a project may be launched when
it is one of ``access/allowed_projects`` or lies under one of them. Empty settings let
everyone in, as before they existed.
"""

from __future__ import annotations

from booklab.config import Config
from booklab.errors import NotAllowed
from booklab.pipeline.gitlab_client import GitLabClient


def check_user(config: Config, gl: GitLabClient) -> None:
    """NotAllowed, naming the groups to join, unless the user of ``gl`` may use Booklab."""
    allowed = config.paths_of("access_allowed_groups")
    if not allowed:
        return
    mine = gl.group_paths()
    if not any(_within(path, group) for path in mine for group in allowed):
        raise NotAllowed(
            f"This Booklab is for the members of {_listed(allowed)} on GitLab: ask to join one of them, then "
            "log in again."
        )


def check_project(config: Config, project: str) -> None:
    """NotAllowed unless ``project`` (a full path) may be launched here."""
    allowed = config.paths_of("access_allowed_projects")
    if allowed and not any(_within(project.strip("/"), place) for place in allowed):
        raise NotAllowed(f"This Booklab launches the projects of {_listed(allowed)} only, and {project} is not one.")


def _within(path: str, place: str) -> bool:
    """Whether ``path`` is ``place`` or lies under it (GitLab paths are case-insensitive)."""
    path, place = path.lower(), place.lower()
    return path == place or path.startswith(place + "/")


def _listed(paths: tuple[str, ...]) -> str:
    return paths[0] if len(paths) == 1 else ", ".join(paths[:-1]) + " or " + paths[-1]
