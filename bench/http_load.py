"""A closed-loop HTTP load: ``clients`` keep-alive HTTP/1.1 connections, each sending its
next request as soon as the previous answer is complete, driven by one thread through a
selector (plain sockets: the client costs little next to the server it measures).
Completed requests are counted per second of wall time; latencies are kept too.
"""

from __future__ import annotations

import selectors
import socket
import time
from dataclasses import dataclass, field


@dataclass
class _Connection:
    sock: socket.socket
    buffer: bytearray = field(default_factory=bytearray)
    sent_at: float = 0.0


@dataclass
class LoadResult:
    #: requests completed in each whole second of the measured time
    per_second: list[float]
    #: seconds from sending to the complete answer, for each request measured
    latencies: list[float]
    #: answers other than 200, and connections lost before their answer
    errors: int
    statuses: dict[int, int]
    #: answers that closed their connection (``Connection: close``): the next request opened another
    closed_by_server: int


def _complete(buffer: bytearray) -> tuple[int, int, bool] | None:
    """(status, length of the whole answer, whether the server closes the connection)
    once ``buffer`` holds a complete answer."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    length, close = 0, False
    for line in head[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection":
            close = value.strip().lower() == "close"
    total = end + 4 + length
    return (status, total, close) if len(buffer) >= total else None


def run(address: tuple[str, int], request: bytes, clients: int, warmup: float, seconds: float) -> LoadResult:
    selector = selectors.DefaultSelector()

    def connect() -> _Connection:
        sock = socket.create_connection(address, timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        connection = _Connection(sock)
        selector.register(sock, selectors.EVENT_READ, connection)
        send(connection)
        return connection

    def send(connection: _Connection) -> None:
        connection.sent_at = time.monotonic()
        connection.sock.sendall(request)

    connections = [connect() for _ in range(clients)]
    started = time.monotonic()
    measure_from, measure_to = started + warmup, started + warmup + seconds
    buckets = [0] * int(seconds)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = closed = 0

    def replace(connection: _Connection) -> None:
        selector.unregister(connection.sock)
        connection.sock.close()
        connections.remove(connection)
        connections.append(connect())

    while time.monotonic() < measure_to:
        for key, _ in selector.select(timeout=0.1):
            connection: _Connection = key.data
            try:
                data = connection.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:  # the server closed it before answering: open another
                errors += 1
                replace(connection)
                continue
            connection.buffer += data
            done = _complete(connection.buffer)
            if done is None:
                continue
            status, length, close = done
            del connection.buffer[:length]
            now = time.monotonic()
            if measure_from <= now < measure_to:
                statuses[status] = statuses.get(status, 0) + 1
                latencies.append(now - connection.sent_at)
                second = int(now - measure_from)
                if second < len(buckets):
                    buckets[second] += 1
                if status != 200:
                    errors += 1
                closed += close
            if close:
                replace(connection)
            else:
                send(connection)
    for connection in connections:
        selector.unregister(connection.sock)
        connection.sock.close()
    selector.close()
    return LoadResult([float(b) for b in buckets], latencies, errors, statuses, closed)
