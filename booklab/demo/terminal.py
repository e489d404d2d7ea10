"""Text the demo prints to its terminal that others wrote (branch and project names, the end of a log):
shown with its control characters escaped, so that it cannot move the cursor, retitle the window or
hide what follows."""

from __future__ import annotations


def printable(text: str) -> str:
    """``text`` as it is, or quoted with its escapes when it holds control characters."""
    return text if text.isprintable() else repr(text)


def printable_lines(text: str) -> str:
    """Each line of ``text`` through :func:`printable` (tabs kept)."""
    return "\n".join(printable(line.replace("\t", "    ")) for line in text.splitlines())
