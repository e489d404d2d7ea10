"""``python -m booklab.demo.forward FD TARGET``: pass every TCP connection made to the listening socket
``FD`` (handed over already bound, so that no one else takes its port meanwhile) on to ``TARGET``
(``host:port``), until SIGTERM.

The demo of several hosts runs Traefik on the first host's address, in a network namespace of its
own; a browser on this machine opens ``http://<slug>.localhost:<port>/``, which is always this
machine's loopback. This forwarder, on loopback, joins the two.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket

CHUNK = 65536


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: give host:port")
    return host, int(port)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy ``reader`` to ``writer`` until either end closes; then close the writing side."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(ConnectionError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()


async def _serve(listener: socket.socket, target: tuple[str, int]) -> None:
    async def forward(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        writers = [client_writer]
        try:
            target_reader, target_writer = await asyncio.open_connection(*target)
            writers.append(target_writer)
            await asyncio.gather(_pipe(client_reader, target_writer), _pipe(target_reader, client_writer))
        except OSError:
            pass
        finally:
            for writer in writers:
                writer.close()

    server = await asyncio.start_server(forward, sock=listener)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m booklab.demo.forward", description=__doc__.split("\n\n")[0])
    parser.add_argument("fd", type=int, help="a listening TCP socket this process was given")
    parser.add_argument("target", type=_address, help="host:port to pass connections on to")
    args = parser.parse_args(argv)
    asyncio.run(_serve(socket.socket(fileno=args.fd), args.target))


if __name__ == "__main__":
    main()
