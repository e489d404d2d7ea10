"""Machine profiles: the notebook machines the operator offers (``profiles/list``), such as
small, medium and large, each with its memory, its CPUs and the GitLab groups that may use it.

:func:`parse` reads ``profiles/list`` (a YAML mapping in ``config.yml``, or the same mapping as
YAML or JSON text in ``BOOKLAB_PROFILES_LIST``) and refuses a wrong one with a ConfigError that
names the profile and the key. :func:`choose` decides, on the runner, which profile a notebook
runs with: the one its user picked, else the one its repository's ``.booklab.yml`` asks for when
that user may use it, else ``profiles/default``.

The bottom layer beside :mod:`booklab.units`: the configuration reads profiles with it, and
:mod:`booklab.allowed` decides who may use which.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from booklab import mapping_setting, units
from booklab.errors import ConfigError

#: a profile's name: a simple label, as it appears in links (?profile=) and .booklab.yml
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}", re.ASCII)

#: the keys a profile may have
KEYS = ("memory", "cpus", "groups", "description")

_SETTING = "profiles/list"
_EXAMPLE = "{small: {memory: 2g, cpus: 1}, large: {memory: 16g, cpus: 4, groups: physics/gpu}}"


@dataclass(frozen=True)
class Profile:
    """One notebook machine the operator offers."""

    name: str
    memory: int  # bytes
    cpus: float
    #: GitLab groups (full paths) whose members, their subgroups' too, may use it; empty: everyone
    groups: tuple[str, ...] = ()
    description: str = ""

    def summary(self) -> str:
        """``medium: 4 GiB, 2 CPUs``, as the log and the picker show it."""
        return f"{self.name}: {units.human_size(self.memory)}, {self.cpus:g} CPU{'' if self.cpus == 1 else 's'}"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "memory": self.memory,
            "cpus": self.cpus,
            "description": self.description,
            "summary": self.summary(),
        }


@dataclass(frozen=True)
class Choice:
    """The profile a notebook runs with (None: none, the ``notebook/*`` settings), and why
    the repository's ask was not followed (``note``, empty when it was, or nothing was asked)."""

    profile: Profile | None
    note: str = ""


def parse(raw: Any, origin: str) -> tuple[Profile, ...]:
    """The profiles of ``profiles/list`` as given ``origin`` (``in config.yml``, ``from
    BOOKLAB_PROFILES_LIST``): a mapping name -> {memory, cpus, groups, description}, or that
    mapping as YAML or JSON text; empty: none."""
    raw = mapping_setting.read(raw, _SETTING, origin, _EXAMPLE, "profile names to machines")
    return tuple(_profile(name, spec, origin) for name, spec in raw.items())


def _profile(name: Any, spec: Any, origin: str) -> Profile:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ConfigError(
            f"Setting {_SETTING} ({origin}): the profile name {str(name)[:40]!r} must be a simple label "
            "(lower-case letters, digits, - and _, at most 32 characters), such as medium."
        )
    where = f"Setting {_SETTING} ({origin}), profile {name}"
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: must be a mapping with memory and cpus, such as {{memory: 4g, cpus: 2}}.")
    unknown = [str(key) for key in spec if key not in KEYS]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0][:40]!r}; the keys are {', '.join(KEYS)}.")
    for key in ("memory", "cpus"):
        if spec.get(key) in (None, ""):
            raise ConfigError(f"{where}: {key} is missing.")
    try:
        memory = units.parse_size(spec["memory"])
    except ValueError:
        raise ConfigError(f"{where}: memory must be a size such as 4g, not {spec['memory']!r}.") from None
    cpus = _cpus(spec["cpus"])
    if cpus is None:
        raise ConfigError(f"{where}: cpus must be a number such as 2, not {spec['cpus']!r}.")
    description = spec.get("description") or ""
    if not isinstance(description, str):
        raise ConfigError(f"{where}: description must be text.")
    return Profile(name, memory, cpus, _groups(spec.get("groups"), where), description.strip())


def _cpus(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and units.NUMBER.fullmatch(value.strip()):
        value = float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def _groups(value: Any, where: str) -> tuple[str, ...]:
    """GitLab group paths, comma-separated or a list; none: everyone."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ConfigError(f"{where}: groups must be GitLab group paths, comma-separated or a list.")
    return tuple(path.strip().strip("/") for path in items if path.strip().strip("/"))


def named(profiles: Iterable[Profile], name: str) -> Profile | None:
    return next((p for p in profiles if p.name == name), None)


def listed(names: Iterable[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def choose(
    profiles: tuple[Profile, ...], default: str, picked: str, asked: str | None, usable: Iterable[str]
) -> Choice:
    """The profile a notebook runs with: the one its user ``picked`` (checked when they asked
    for the notebook), else the one its repository ``asked`` for when it exists and is among
    those the user may use (``usable``), else ``default`` (empty: none)."""
    fallback = named(profiles, default) if default else None
    instead = f"the profile {fallback.name}" if fallback else "the default machine"
    if picked:
        found = named(profiles, picked)
        # only when the runners' profiles/list differs from the web tier's
        return (
            Choice(found) if found else Choice(fallback, f"This Booklab has no profile {picked} now: using {instead}.")
        )
    if not asked:
        return Choice(fallback)
    wanted = named(profiles, asked)
    if wanted is None:
        return Choice(
            fallback, f"The repository asks for the profile {asked}, which this Booklab does not have: using {instead}."
        )
    if wanted.name not in set(usable):
        return Choice(
            fallback,
            f"The repository asks for the profile {asked}, which is for the members of {listed(wanted.groups)}: "
            f"using {instead}.",
        )
    return Choice(wanted)
