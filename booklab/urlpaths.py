"""Paths inside a notebook server (``urlpath``: ``lab``, ``tree/notebooks/intro.ipynb``), the
page a notebook opens at, as the configuration (``notebook/urlpath``), a repository's
``.booklab.yml`` and a launch link's ``?urlpath=`` give them: all checked by :func:`check`, so
that none of them can lead the browser to another host or out of the notebook server.

The bottom layer: it imports nothing of Booklab's.
"""

from __future__ import annotations

import re
import unicodedata

MAX_LENGTH = 300


def check(value: str) -> str:
    """``value`` as a path inside the notebook server, without its leading ``/``;
    ``ValueError`` saying why when it is not one."""
    if len(value) > MAX_LENGTH:
        raise ValueError(f"it is longer than {MAX_LENGTH} characters")
    if any(unicodedata.category(c).startswith("C") for c in value):
        raise ValueError("it holds a control character")
    if "\\" in value:
        raise ValueError("it holds a backslash")
    if value.startswith("//"):
        raise ValueError("it names another host")
    value = value[1:] if value.startswith("/") else value
    if value != value.strip():
        raise ValueError("it starts or ends with a space")
    path = re.split(r"[?#]", value, maxsplit=1)[0]
    if ":" in path.split("/", 1)[0]:
        raise ValueError("it has a scheme")
    decoded = _unquote(path)
    if any(c == "\\" or unicodedata.category(c).startswith("C") for c in decoded):
        raise ValueError("it holds an escaped backslash or control character")
    if ".." in decoded.split("/"):
        raise ValueError("it has a '..' segment")
    return value


def _unquote(path: str) -> str:
    """``path`` with its %XX escapes decoded, as a browser or server may read it."""
    return re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m[1], 16)), path)
