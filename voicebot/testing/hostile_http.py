"""HTTP servers that misbehave the way real receivers do, for webhook and eligibility tests.

A well-behaved Starlette app cannot trickle its status line, promise a body it never
ends or stream gigabytes: these answer from raw sockets. Each is served on 127.0.0.1 by
:func:`serve_raw` (an ``async with`` that yields the base URL) and counts its requests.

- :func:`trickle`: the status line, then one header byte every ``interval_s`` forever
  (a per-read timeout never fires; only a deadline on the whole request does).
- :func:`endless_body`: a complete status and headers (``200``, any ``Content-Type``),
  then body bytes as fast as the socket takes them, without end.
- :func:`redirect`: ``302`` to ``location`` (an internal address, say).
- :func:`stall`: reads the request, then never answers (a blackholed proxy or store).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

CHUNK_BYTES: Final = 64 * 1024
HEADER_LIMIT_BYTES: Final = 64 * 1024


@dataclass
class RawServer:
    base_url: str
    requests: int = 0
    bodies: list[bytes] = field(default_factory=list)


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    """Read one request's head and body (Content-Length only); returns the body."""
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > HEADER_LIMIT_BYTES:
        return b""
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip() or 0)
    return await reader.readexactly(length) if length else b""


def trickle(interval_s: float) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\n")
        await writer.drain()
        while True:
            await asyncio.sleep(interval_s)
            writer.write(b"X")
            await writer.drain()

    return handle


def endless_body(content_type: str = "application/json") -> Handler:
    chunk = b" " * CHUNK_BYTES  # JSON whitespace: a parser reads on, waiting for a value

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: "
            + content_type.encode()
            + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        while True:
            writer.write(frame)
            await writer.drain()

    return handle


def redirect(location: str, status: int = 302) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            f"HTTP/1.1 {status} Found\r\nLocation: {location}\r\n"
            "Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()

    return handle


def stall() -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.Event().wait()  # until the server closes

    return handle


@contextlib.asynccontextmanager
async def serve_raw(handler: Handler) -> AsyncIterator[RawServer]:
    """Serve ``handler`` on a free loopback port; every connection's task is cancelled
    on exit."""
    tasks: set[asyncio.Task[None]] = set()
    server_info = RawServer(base_url="")

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            server_info.bodies.append(await _read_request(reader))
            server_info.requests += 1
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            tasks.add(task)
        try:
            await run(reader, writer)
        finally:
            if task is not None:
                tasks.discard(task)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server_info.base_url = f"http://127.0.0.1:{port}"
    try:
        yield server_info
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)
