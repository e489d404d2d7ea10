"""One Redis subscription per process for every deployment's events, handed out to the
event streams that follow them.

The web tier holds hundreds of open event streams. With a subscription each, every new
event was read and parsed once per stream, by as many threads contending for the
interpreter. Here one thread reads ``events:*`` and parses each event once, then puts it
in the queue of each stream that listens to its deployment. After a lost connection it
subscribes again and tells every listener to re-read its log (:data:`~booklab.state.event.RESYNC`),
so no event is lost.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict

import redis

from booklab.state import schema
from booklab.state.event import RESYNC, Event, parse

log = logging.getLogger(__name__)

RECONNECT_DELAY = 1.0
#: seconds between two looks at whether the reader must stop
CLOSE_CHECK = 0.25


class EventFanout:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._lock = threading.Lock()
        self._listeners: dict[str, set[queue.SimpleQueue]] = defaultdict(set)
        self._subscribed = threading.Event()
        self._thread: threading.Thread | None = None
        self._closing = False

    def listen(self, stream: str) -> Listener:
        """A listener to the new events of a run (its stream, ``<deployment>#<n>``) (use it with ``with``)."""
        return Listener(self, stream)

    def _add(self, stream: str, inbox: queue.SimpleQueue) -> None:
        with self._lock:
            self._listeners[stream].add(inbox)
            if self._thread is None:
                self._thread = threading.Thread(target=self._read_forever, name="booklab-event-fanout", daemon=True)
                self._thread.start()
        self._subscribed.wait(5)  # the first listener: do not read the backlog before the subscription

    def _remove(self, stream: str, inbox: queue.SimpleQueue) -> None:
        with self._lock:
            self._listeners[stream].discard(inbox)
            if not self._listeners[stream]:
                del self._listeners[stream]

    def close(self) -> None:
        """Stop reading (before the Redis client is closed)."""
        self._closing = True
        if self._thread is not None:
            self._thread.join(5)

    def _read_forever(self) -> None:
        prefix = schema.events("")
        while not self._closing:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.psubscribe(schema.events("*"))
                self._subscribed.set()
                self._tell_everyone(RESYNC)  # events may have come while it was not subscribed
                while not self._closing:
                    message = pubsub.get_message(timeout=CLOSE_CHECK)
                    if message is not None:
                        self._hand_out(message, prefix)
            except redis.RedisError as e:
                log.warning("the shared event subscription broke (%s); subscribing again", type(e).__name__)
                time.sleep(RECONNECT_DELAY)
            finally:
                pubsub.close()

    def _hand_out(self, message: dict, prefix: str) -> None:
        channel = message["channel"]
        channel = channel.decode() if isinstance(channel, bytes) else channel
        with self._lock:
            inboxes = list(self._listeners.get(channel.removeprefix(prefix), ()))
        if inboxes:
            event = parse(message["data"])  # once, for all of them
            for inbox in inboxes:
                inbox.put(event)

    def _tell_everyone(self, news: Event) -> None:
        with self._lock:
            inboxes = [inbox for group in self._listeners.values() for inbox in group]
        for inbox in inboxes:
            inbox.put(news)


class Listener:
    """One event stream's share of :class:`EventFanout`."""

    def __init__(self, fanout: EventFanout, stream: str) -> None:
        self.fanout, self.stream = fanout, stream
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()

    def __enter__(self) -> Listener:
        self.fanout._add(self.stream, self.inbox)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.fanout._remove(self.stream, self.inbox)

    def receive(self, wait: float) -> Event | None:
        try:
            return self.inbox.get(timeout=wait)
        except queue.Empty:
            return None
