"""Many event-stream viewers at once, light enough that the clients are not what is
measured: plain sockets (HTTP/1.0, so the body is the raw stream) read by one thread
through a selector. Each ``data:`` line that carries a probe (``probe <n> <monotonic
time written>``) gives one latency sample, taken when its bytes arrive.
"""

from __future__ import annotations

import logging
import re
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Self

log = logging.getLogger(__name__)

PROBE = re.compile(rb"probe (\d+) (\d+\.\d+)")
#: the event every viewer receives first (from the backlog): the stream is open
OPENED = b"viewers-open"


def probe_message(n: int) -> str:
    return f"probe {n} {time.monotonic():.6f}"


@dataclass
class Viewer:
    sock: socket.socket
    buffer: bytearray = field(default_factory=bytearray)
    status: int | None = None
    opened: bool = False
    closed: bool = False
    probes: set[int] = field(default_factory=set)


class Viewers:
    """``count`` streams of ``path`` at ``host:port``, with ``headers``; read until :meth:`close`."""

    def __init__(self, host: str, port: int, path: str, headers: dict[str, str]) -> None:
        self.address = (host, port)
        lines = [
            f"GET {path} HTTP/1.0",
            f"Host: {host}:{port}",
            "Accept: text/event-stream",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.viewers: list[Viewer] = []
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self._selector = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="bench-viewers", daemon=True)

    def open(self, count: int) -> None:
        """Connect and send the ``count`` requests, then read them all (once only)."""
        for _ in range(count):
            sock = socket.create_connection(self.address, timeout=10)
            sock.sendall(self.request)
            sock.setblocking(False)
            viewer = Viewer(sock)
            self.viewers.append(viewer)
            self._selector.register(sock, selectors.EVENT_READ, viewer)
        self._thread.start()

    def opened(self) -> int:
        return sum(v.opened for v in self.viewers)

    def received(self, n: int) -> int:
        """How many viewers received probe ``n``."""
        return sum(n in v.probes for v in self.viewers)

    def _read(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.05):
                viewer: Viewer = key.data
                try:
                    data = viewer.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as e:
                    data = b""
                    self.errors.append(f"read: {e}")
                arrived = time.monotonic()
                if not data:
                    viewer.closed = True
                    self._selector.unregister(viewer.sock)
                    continue
                self._parse(viewer, data, arrived)

    def _parse(self, viewer: Viewer, data: bytes, arrived: float) -> None:
        viewer.buffer += data
        if viewer.status is None:
            end = viewer.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status_line = bytes(viewer.buffer[: viewer.buffer.find(b"\r\n")])
            viewer.status = int(status_line.split()[1])
            if viewer.status != 200:
                self.errors.append(f"status {viewer.status}")
            del viewer.buffer[: end + 4]
        *lines, rest = bytes(viewer.buffer).split(b"\n")
        viewer.buffer = bytearray(rest)
        for line in lines:
            if not line.startswith(b"data:"):
                continue
            if OPENED in line:
                viewer.opened = True
            found = PROBE.search(line)
            if found:
                viewer.probes.add(int(found.group(1)))
                self.latencies.append(arrived - float(found.group(2)))

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        for viewer in self.viewers:
            viewer.sock.close()
        self._selector.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
