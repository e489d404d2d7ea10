"""A setting that is a mapping (``profiles/list``, ``warm/projects``): written as YAML in ``config.yml``,
or as the same mapping in YAML or JSON text in its environment variable. The bottom layer: it imports
nothing of Booklab's but its errors."""

from __future__ import annotations

from typing import Any, Mapping

import yaml

from booklab.errors import ConfigError


def read(raw: Any, setting: str, origin: str, example: str, of_what: str) -> Mapping:
    """The mapping of ``setting`` as given ``origin`` (``in config.yml``, ``from BOOKLAB_...``), empty when it
    is; ConfigError, showing ``example``, when it is not a mapping (``of_what``: what it maps, for the
    message) or not valid YAML or JSON."""
    if isinstance(raw, str):
        try:
            raw = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise ConfigError(
                f"Setting {setting} ({origin}) is not valid YAML or JSON: write a mapping such as {example}."
            ) from None
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"Setting {setting} ({origin}) must be a mapping of {of_what}, such as {example}.")
    return raw
