"""The log of each run of a deployment: BinderHub-shaped events (``phase``, ``message``,
extras) kept in ``log:<run>`` (capped in events and in message length), counted so each has
a stable id, and published for live readers. Events are written only by
:mod:`booklab.state.lifecycle`, in the same atomic script that moves the deployment's status, so
ids never repeat and readers that reconnect with the last id they saw miss nothing.

A run is named ``<deployment>#<n>`` here (its *stream*): a relaunch writes to a log of its own.

Each run also has its *full log*, ``fulllog:<run>``: the text of every message, not capped
in events (a long build's every line), up to :data:`FULL_LOG_MAX` bytes, kept for
``log/retention`` after its last event; its owner downloads it (scrubbed of secrets by
:mod:`booklab.state.scrub`).
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterator

import redis

from booklab.state import schema
from booklab.state.event import RESYNC, Event, parse
from booklab.state.event_fanout import EventFanout

#: most bytes of a run's full log; what follows is cut, and the cut said (:data:`LOG_CUT`)
FULL_LOG_MAX = 10 * 1024**2
LOG_CUT = "\n[Booklab cut the log here: it passed 10 MB.]\n"


class EventLog:
    """Reads one Redis's run logs (and says how many events each keeps, and how long and how
    much of each full log)."""

    def __init__(
        self,
        client: redis.Redis,
        max_events: int = 5000,
        retention: int = schema.RECORD_TTL,
        full_max: int = FULL_LOG_MAX,
    ) -> None:
        self.redis = client
        self.fanout: Any = None
        self.max_events = max_events
        self.retention = retention
        self.full_max = full_max

    def full(self, stream: str) -> str | None:
        """The run's full log as text (secrets not scrubbed yet); None when it is not kept."""
        return self.redis.get(schema.full_log(stream))

    def read(self, stream: str, after: int = 0) -> list[Event]:
        """The run's events still kept whose id is greater than ``after``."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(schema.logseq(stream))
            pipe.lrange(schema.log(stream), 0, -1)
            last, items = pipe.execute()
        last = int(last or 0)
        first = last - len(items) + 1
        return [Event(first + i, json.loads(item)) for i, item in enumerate(items) if first + i > after]

    def follow(self, stream: str, after: int = 0, timeout: float | None = None) -> Iterator[Event]:
        """Every event of the run after ``after``, then each new one as it is written, in order and
        without repeats; ends after a final phase (ready, failed, stopped) or ``timeout``.
        New events come through the process's shared subscription when it has one
        (:meth:`share_subscription`), else through one of their own."""
        source = self.fanout.listen(stream) if self.fanout else _Subscription(self.redis, stream)
        deadline = None if timeout is None else time.monotonic() + timeout
        with source:  # listening before the backlog is read: nothing falls in between
            last = after
            backlog = self.read(stream, after)
            while True:
                for event in backlog:
                    if event.id <= last:
                        continue
                    last = event.id
                    yield event
                    if event.phase.is_final:
                        return
                backlog = []
                wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
                if wait <= 0:
                    return
                news = source.receive(wait)
                if news is None:
                    continue
                if news is RESYNC or news.id > last + 1:  # missed some: re-read the list
                    backlog = self.read(stream, last)
                else:
                    backlog = [news]

    def share_subscription(self) -> None:
        """From now on, every :meth:`follow` of this process shares one subscription to all
        deployments' events (for the web tier, which follows hundreds at once)."""
        if self.fanout is None:
            self.fanout = EventFanout(self.redis)


class _Subscription:
    """New events of one run through a subscription of its own."""

    def __init__(self, client: redis.Redis, stream: str) -> None:
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.channel = schema.events(stream)

    def __enter__(self) -> _Subscription:
        self.pubsub.subscribe(self.channel)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.pubsub.close()

    def receive(self, wait: float) -> Event | None:
        message = self.pubsub.get_message(timeout=wait)
        return None if message is None else parse(message["data"])
