"""The branches the operator keeps warm (``warm/projects``): for each, how many started notebooks of its
latest image idle runners hold ready for the next launches (warm spares, :mod:`booklab.runner.spares`).

:func:`parse` reads the setting (a YAML mapping ``<project path>@<branch>: <count>`` in ``config.yml``, or
the same mapping as YAML or JSON text in ``BOOKLAB_WARM_PROJECTS``) and refuses a wrong one with a
ConfigError that names the entry. The bottom layer beside :mod:`booklab.profiles`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from booklab import mapping_setting
from booklab.errors import ConfigError

_SETTING = "warm/projects"
_EXAMPLE = '{"physics/lab-notebooks@main": 10}'
#: the most spares one branch may ask for
MAX_COUNT = 1000


@dataclass(frozen=True)
class Target:
    """A branch kept warm, and how many spares of its latest image to keep."""

    project: str
    ref: str
    count: int

    @property
    def name(self) -> str:
        """``<project path>@<branch>``, as the setting writes it."""
        return f"{self.project}@{self.ref}"


def parse(raw: Any, origin: str) -> tuple[Target, ...]:
    """The targets of ``warm/projects`` as given ``origin`` (``in config.yml``, ``from
    BOOKLAB_WARM_PROJECTS``); empty: none."""
    raw = mapping_setting.read(raw, _SETTING, origin, _EXAMPLE, "branches to counts")
    return tuple(_target(name, count, origin) for name, count in raw.items())


def _target(name: Any, count: Any, origin: str) -> Target:
    project, _, ref = str(name).partition("@")  # a GitLab project path holds no @
    if not project or not ref or any(c in str(name) for c in ":\n\0"):
        raise ConfigError(
            f"Setting {_SETTING} ({origin}): {str(name)[:80]!r} must be a project's path and a branch, "
            f"joined by @, such as physics/lab-notebooks@main."
        )
    if isinstance(count, bool) or not isinstance(count, int) or not 0 < count <= MAX_COUNT:
        raise ConfigError(
            f"Setting {_SETTING} ({origin}), {project}@{ref}: the count must be a whole number of spares from 1 to "
            f"{MAX_COUNT}, not {str(count)[:40]!r}."
        )
    return Target(project, ref, count)
