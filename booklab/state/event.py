"""One event of a run's log: its BinderHub shape (``phase``, ``message``, extras), how the log
keeps it (:func:`encode`) and how it is published (:func:`parse` reads it back)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from booklab.phases import Phase

#: characters of one event's message kept; the rest is cut
MAX_MESSAGE = 4000


@dataclass(frozen=True)
class Event:
    id: int
    data: dict[str, Any]

    @property
    def phase(self) -> Phase:
        return Phase(self.data["phase"])


def encode(phase: Phase, message: str = "", **extra: Any) -> str:
    """An event as the log keeps it: JSON, its message ending in a newline and cut at
    :data:`MAX_MESSAGE` characters."""
    if len(message) > MAX_MESSAGE:  # one line of a build, say, that would fill a page
        message = f"{message[:MAX_MESSAGE]}... [{len(message) - MAX_MESSAGE} more characters cut]"
    if message and not message.endswith("\n"):
        message += "\n"
    return json.dumps({"phase": phase.value, "message": message, **extra})


#: what a listener receives when events may have been missed: re-read the log
RESYNC = Event(0, {})


def parse(raw: str | bytes) -> Event:
    """An event as published: ``"<id> <json>"``."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    event_id, _, data = text.partition(" ")
    return Event(int(event_id), json.loads(data))
