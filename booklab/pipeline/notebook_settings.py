"""Per-project notebook settings: what a repository asks for in an optional ``.booklab.yml``
at its root, checked here, and bounded by the operator's limits.

A repository may set, all optional::

    memory: 2g                       # memory limit of the notebook: 512m, 1.5G, or bytes
    cpus: 1.5                        # CPU limit
    idle_timeout: 30m                # culled after this long without activity: 90s, 2h, or seconds
    urlpath: tree/notebooks/intro.ipynb   # page to open inside the notebook server
    profile: medium                  # the operator's machine profile, when its user picks none

:func:`read` (or :func:`parse`) turns the file into :class:`NotebookSettings` and refuses an
invalid file with a :class:`SettingsError` that names the file, the key and what is allowed.
A value above the operator's maximum (or the machine profile's) is *not* an error:
:func:`effective` caps it and says so in a note for the deployment's log. A key left out (or
left empty) takes the operator's default. :meth:`NotebookSettings.as_label` and
:meth:`NotebookSettings.from_label` keep the settings on the built image, as a Docker label.

Error messages show the offending value only, shortened; never the rest of the file.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from booklab import urlpaths
from booklab.config import (
    MIN_NOTEBOOK_CPUS,
    MIN_NOTEBOOK_IDLE_TIMEOUT,
    MIN_NOTEBOOK_MEMORY,
    Config,
    check_notebook_maxima,
)
from booklab.errors import SettingsError
from booklab.profiles import NAME as PROFILE_NAME
from booklab.profiles import Choice, Profile, choose
from booklab.units import NUMBER, format_duration, format_size, parse_duration, parse_size

FILE_NAME = ".booklab.yml"

#: a larger file is refused unread
MAX_FILE_SIZE = 64 * 1024

#: the smallest values a repository may ask for (the configuration's floor of its maxima); the largest
#: are the operator's (:class:`Limits`)
MIN_MEMORY = MIN_NOTEBOOK_MEMORY  # bytes
MIN_CPUS = MIN_NOTEBOOK_CPUS
MIN_IDLE_TIMEOUT = MIN_NOTEBOOK_IDLE_TIMEOUT  # seconds

#: a longer label is not ours (the longest urlpath, JSON-escaped, and the numbers fit)
_MAX_LABEL_LENGTH = 8192

#: an offending value is shown shortened to this many characters
_SHOWN_CHARS = 40


@dataclass(frozen=True)
class Limits:
    """The operator's bounds on what a repository may ask for (from ``config.yml``)."""

    max_memory: int  # bytes
    max_cpus: float
    max_idle_timeout: int  # seconds

    def __post_init__(self) -> None:
        check_notebook_maxima(self.max_memory, self.max_cpus, self.max_idle_timeout)


@dataclass(frozen=True)
class NotebookSettings:
    """What a repository asks for; ``None``: not set, the operator's default applies."""

    memory: int | None = None  # bytes
    cpus: float | None = None
    idle_timeout: int | None = None  # seconds
    urlpath: str | None = None  # relative, without a leading /
    profile: str | None = None  # a profile's name, which this Booklab may not have

    def as_label(self) -> str:
        """The keys that are set, as compact JSON for a Docker image label (``{}``: none)."""
        values = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        return json.dumps(values, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_label(cls, text: str) -> NotebookSettings:
        """The inverse of :meth:`as_label`; a label that is not valid gives ``NotebookSettings()``."""
        try:
            values = json.loads(text) if isinstance(text, str) and len(text) <= _MAX_LABEL_LENGTH else None
            if not isinstance(values, dict):
                return cls()
            return _settings(values, origin="label", limits=None)
        except (ValueError, SettingsError, RecursionError):
            return cls()


@dataclass(frozen=True)
class Effective:
    """The settings a notebook runs with, and why they differ from what was asked (``notes``)."""

    memory: int  # bytes
    cpus: float
    idle_timeout: int  # seconds
    urlpath: str
    notes: tuple[str, ...] = ()


#: the image label that keeps a repository's settings, so that a cached image has them too
LABEL = "booklab.settings"


def limits_of(config: Config) -> Limits:
    """The operator's maxima (``notebook/max_*``); ConfigError when one is not valid."""
    return Limits(config.bytes_of("notebook_max_memory"), config.notebook_max_cpus, config.notebook_max_idle_timeout)


def for_notebook(requested: NotebookSettings, config: Config, profile: Profile | None = None) -> Effective:
    """What a notebook runs with under ``config``: its repository's settings, else the
    ``notebook/*`` defaults (``notebook/urlpath`` too), capped at the ``notebook/max_*`` maxima; on a
    machine ``profile``, its memory and CPUs, which the repository may lower, never raise."""
    urlpath = urlpaths.check(config.notebook_urlpath)
    if profile is None:
        return effective(
            requested,
            limits_of(config),
            memory=config.bytes_of("notebook_memory"),
            cpus=config.notebook_cpus,
            idle_timeout=config.notebook_idle_timeout,
            urlpath=urlpath,
        )
    return effective(
        requested,
        Limits(profile.memory, profile.cpus, config.notebook_max_idle_timeout),
        memory=profile.memory,
        cpus=profile.cpus,
        idle_timeout=config.notebook_idle_timeout,
        machine=f"the profile {profile.name}'s",
        urlpath=urlpath,
    )


def for_image(
    labels: dict[str, str], config: Config, picked: str = "", usable: list[str] | None = None
) -> tuple[Choice, Effective]:
    """What a notebook of an image labelled ``labels`` runs with, and on which machine profile: the one its
    user picked, else the one its repository asked for when the user may use it (``usable``), else the
    default (:func:`booklab.profiles.choose`)."""
    requested = NotebookSettings.from_label(labels.get(LABEL) or "{}")
    choice = choose(
        config.profiles_list, config.profiles_default, picked=picked, asked=requested.profile, usable=usable or []
    )
    return choice, for_notebook(requested, config, choice.profile)


def read(checkout_dir: str | os.PathLike, limits: Limits) -> NotebookSettings:
    """The settings in ``.booklab.yml`` at the root of a checkout; none when there is no such file.

    The file must be a regular file (a symbolic link is refused: it could point outside the
    repository) of at most 64 KiB of UTF-8.
    """
    path = Path(checkout_dir) / FILE_NAME
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return NotebookSettings()
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise SettingsError(
                f"{FILE_NAME} must be a regular file, not a symbolic link: "
                f"put the settings themselves at the root of the repository."
            ) from None
        raise SettingsError(f"Cannot read {FILE_NAME}: {e.strerror}.") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise SettingsError(f"{FILE_NAME} must be a regular file at the root of the repository.")
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_FILE_SIZE + 1)
    if len(data) > MAX_FILE_SIZE:
        raise _too_large()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SettingsError(f"{FILE_NAME} must be UTF-8 text.") from None
    return parse(text, limits)


def parse(text: str, limits: Limits) -> NotebookSettings:
    """The settings in the text of a ``.booklab.yml``; an empty file sets nothing.

    ``limits`` only words the messages: a value above a maximum is accepted here and capped
    by :func:`effective`.
    """
    if len(text) > MAX_FILE_SIZE or len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_SIZE:
        raise _too_large()
    try:
        tree = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        where = f"line {e.problem_mark.line + 1}, column {e.problem_mark.column + 1}: " if e.problem_mark else ""
        raise SettingsError(f"{FILE_NAME} is not valid YAML ({where}{_clean(e.problem or e.context)}).") from None
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        raise SettingsError(
            f"{FILE_NAME} is not valid YAML (line {line}: a control character "
            f"#x{e.character if isinstance(e.character, int) else 0:04x} is not allowed)."
        ) from None
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError) as e:
        reason = "nested too deeply" if isinstance(e, RecursionError) else _clean(str(e))
        raise SettingsError(f"{FILE_NAME} is not valid YAML ({reason}).") from None
    if tree is None:
        return NotebookSettings()
    if not isinstance(tree, dict):
        raise SettingsError(
            f"{FILE_NAME} must be a mapping of settings such as 'memory: 2g' (one per line), not {_kind(tree)}."
        )
    return _settings(tree, origin=FILE_NAME, limits=limits)


def effective(
    requested: NotebookSettings,
    limits: Limits,
    *,
    memory: int,
    cpus: float,
    idle_timeout: int,
    urlpath: str = "",
    machine: str = "",
) -> Effective:
    """The settings to run with: the requested ones, else the operator's defaults (``memory``,
    ``cpus``, ``idle_timeout``, ``urlpath``), each capped at the operator's maximum, with a
    note for each value that was capped; ``machine`` names whose maximum memory and CPUs
    ``limits`` hold in the notes (``the profile medium's``)."""
    notes: list[str] = []

    def capped(key: str, value: Any, maximum: Any, asked: bool, show: Any) -> Any:
        if value <= maximum:
            return value
        origin = f"{key} {show(value)} from {FILE_NAME}" if asked else f"the default {key} {show(value)}"
        whose = f"{machine} {key}" if machine and key in ("memory", "cpus") else "the maximum"
        notes.append(f"{origin} is above {whose} {show(maximum)}: using {show(maximum)}.")
        return maximum

    def pick(key: str, default: Any, maximum: Any, show: Any) -> Any:
        asked = getattr(requested, key)
        return capped(key, default if asked is None else asked, maximum, asked is not None, show)

    return Effective(
        memory=int(pick("memory", memory, limits.max_memory, format_size)),
        cpus=float(pick("cpus", cpus, limits.max_cpus, _format_cpus)),
        idle_timeout=int(pick("idle_timeout", idle_timeout, limits.max_idle_timeout, format_duration)),
        urlpath=urlpath if requested.urlpath is None else requested.urlpath,
        notes=tuple(notes),
    )


def _settings(values: dict, origin: str, limits: Limits | None) -> NotebookSettings:
    """Check every key and value of a mapping; ``limits`` words the ranges in messages."""
    known = [f.name for f in dataclasses.fields(NotebookSettings)]
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise SettingsError(
                f"{origin}: unknown key {_show(key)}; the known keys are {', '.join(known[:-1])} and {known[-1]}."
            )
        if value is not None:
            checked[key] = _CHECKS[key](value, origin, limits)
    return NotebookSettings(**checked)


def _check_memory(value: Any, origin: str, limits: Limits | None) -> int:
    return _at_least(
        _parsed(parse_size, value),
        MIN_MEMORY,
        limits and limits.max_memory,
        format_size,
        2 * 1024**3,
        "memory must be a size",
        "",
        origin,
        value,
    )


def _check_cpus(value: Any, origin: str, limits: Limits | None) -> float:
    n: float | None = None
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            n = float(value)
        elif isinstance(value, str) and NUMBER.fullmatch(value.strip()):
            n = float(value)
    except OverflowError:  # an integer too large for a float
        pass
    if n is not None and not math.isfinite(n):
        n = None
    return _at_least(
        n, MIN_CPUS, limits and limits.max_cpus, _format_cpus, 1.0, "cpus must be a number", "", origin, value
    )


def _check_idle_timeout(value: Any, origin: str, limits: Limits | None) -> int:
    return _at_least(
        _parsed(parse_duration, value),
        MIN_IDLE_TIMEOUT,
        limits and limits.max_idle_timeout,
        format_duration,
        1800,
        "idle_timeout must be a duration",
        " in seconds or with a unit s, m or h",
        origin,
        value,
    )


def _parsed(parse: Callable[[Any], int], value: Any) -> int | None:
    try:
        return parse(value)
    except ValueError:
        return None


def _at_least(
    n: Any,
    minimum: Any,
    maximum: Any,
    show: Callable[[Any], str],
    typical: Any,
    what: str,
    unit: str,
    origin: str,
    value: Any,
) -> Any:
    """``n``, unless it is None or below ``minimum``: then the error that says ``what`` between
    ``minimum`` and the operator's ``maximum`` (when known) it must be, like a ``typical`` one."""
    if n is None or n < minimum:
        top = f" and {show(maximum)}" if maximum is not None else ""
        example = show(typical if maximum is None else min(typical, maximum))
        raise SettingsError(
            f"{origin}: {what} between {show(minimum)}{top}{unit} (like {example}), not {_show(value)}."
        )
    return n


def _check_urlpath(value: Any, origin: str, limits: Limits | None) -> str:
    try:
        if not isinstance(value, str):
            raise ValueError(f"it is {_kind(value)}")
        return urlpaths.check(value)
    except ValueError as e:
        raise SettingsError(
            f"{origin}: urlpath must be a path inside the notebook server of at most "
            f"{urlpaths.MAX_LENGTH} characters (like lab or tree/notebooks/intro.ipynb), "
            f"not {_show(value)}: {e}."
        ) from None


def _check_profile(value: Any, origin: str, limits: Limits | None) -> str:
    if not isinstance(value, str) or not PROFILE_NAME.fullmatch(value):
        raise SettingsError(
            f"{origin}: profile must be the name of one of this Booklab's machine profiles, a simple label "
            f"(like medium), not {_show(value)}."
        )
    return value


_CHECKS = {
    "memory": _check_memory,
    "cpus": _check_cpus,
    "idle_timeout": _check_idle_timeout,
    "urlpath": _check_urlpath,
    "profile": _check_profile,
}


def _format_cpus(n: float) -> str:
    return f"{n:g}"


def _kind(value: Any) -> str:
    kinds = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        list: "a list",
        dict: "a mapping",
        str: "a string",
    }
    return next((kind for t, kind in kinds.items() if isinstance(value, t)), f"a {type(value).__name__} value")


def _show(value: Any) -> str:
    """A value for a message: shortened, escaped; containers by their kind only."""
    if isinstance(value, bool):
        return f"{_kind(value)} ({str(value).lower()})"
    if isinstance(value, (list, dict, set, tuple)):
        return _kind(value)
    if isinstance(value, (int, float)):
        return "a very large number" if isinstance(value, int) and value.bit_length() > 128 else repr(value)
    text = value if isinstance(value, str) else str(value)
    shown = repr(text[:_SHOWN_CHARS])
    return shown[:-1] + "..." + shown[-1] if len(text) > _SHOWN_CHARS else shown


def _clean(problem: Any) -> str:
    """A YAML error's reason for a message: one short line of printable characters."""
    text = "".join(c if c.isprintable() else " " for c in str(problem or "unknown error"))
    return text[:100]


def _too_large() -> SettingsError:
    return SettingsError(
        f"{FILE_NAME} is larger than {MAX_FILE_SIZE // 1024} KiB: keep only the "
        f"settings (memory, cpus, idle_timeout, urlpath, profile) in it."
    )
