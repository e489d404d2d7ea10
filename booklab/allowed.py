"""Who may use this Booklab, and what they may launch: the operator's ``access/*`` settings,
checked when a user logs in and again at each launch (a membership may have changed since).

A user may when they are a member (Guest or more, directly or through a parent group) of
one of ``access/allowed_groups`` or of one of its subgroups; a project may be launched when
it is one of ``access/allowed_projects`` or lies under one of them. Empty settings let
everyone in, as before they existed. A machine profile (``profiles/list``) with groups is for
their members alike, checked when a launch is requested.
"""

from __future__ import annotations

from booklab.config import Config
from booklab.errors import NotAllowed, UnknownProfile
from booklab.pipeline.gitlab_client import GitLabClient
from booklab.profiles import Profile, listed


def check_user(config: Config, gl: GitLabClient) -> None:
    """NotAllowed, naming the groups to join, unless the user of ``gl`` may use Booklab."""
    allowed = config.paths_of("access_allowed_groups")
    if not allowed:
        return
    mine = gl.group_paths()
    if not _member(mine, allowed):
        raise NotAllowed(
            f"This Booklab is for the members of {listed(allowed)} on GitLab: ask to join one of them, then "
            "log in again."
        )


def check_project(config: Config, project: str) -> None:
    """NotAllowed unless ``project`` (a full path) may be launched here."""
    if not project_allowed(config, project):
        allowed = config.paths_of("access_allowed_projects")
        raise NotAllowed(f"This Booklab launches the projects of {listed(allowed)} only, and {project} is not one.")


def project_allowed(config: Config, project: str) -> bool:
    """Whether ``project`` (a full path) may be launched here (``access/allowed_projects``)."""
    allowed = config.paths_of("access_allowed_projects")
    return not allowed or any(_within(project.strip("/"), place) for place in allowed)


def usable_profiles(config: Config, gl: GitLabClient) -> tuple[Profile, ...]:
    """The profiles of ``profiles/list`` the user of ``gl`` may use (GitLab is asked only when
    one of them is for some groups)."""
    profiles = config.profiles_list
    mine = gl.group_paths() if any(p.groups for p in profiles) else []
    return tuple(p for p in profiles if not p.groups or _member(mine, p.groups))


def check_profile(config: Config, name: str, usable: tuple[Profile, ...]) -> Profile:
    """The profile ``name`` when it is one of ``usable``; UnknownProfile, listing those, when
    there is no such profile, NotAllowed, naming its groups, when it is for others."""
    profile = config.profile(name)
    if profile is None:  # the ones the user may use only: the others are their groups' business
        raise UnknownProfile(
            f"There is no profile {name[:40]!r} here: pick one of {listed([p.name for p in usable])}."
            if usable
            else f"There is no profile {name[:40]!r}: this Booklab has none for you, launch without one."
        )
    if profile not in usable:
        raise NotAllowed(
            f"The profile {profile.name} is for the members of {listed(profile.groups)} on GitLab: pick another "
            "one, or ask to join one of them."
        )
    return profile


def _member(mine: list[str], groups: tuple[str, ...]) -> bool:
    """Whether one of the user's groups (``mine``) is one of ``groups`` or lies under one."""
    return any(_within(path, group) for path in mine for group in groups)


def _within(path: str, place: str) -> bool:
    """Whether ``path`` is ``place`` or lies under it (GitLab paths are case-insensitive)."""
    path, place = path.lower(), place.lower()
    return path == place or path.startswith(place + "/")
