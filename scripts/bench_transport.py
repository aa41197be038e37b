"""Server CPU per inbound Media Streams frame, transport only: what a websocket server
costs to take one 20 ms Twilio ``media`` message before the call's own work begins.

A client process opens --calls websockets and sends each a Twilio-layout ``media``
message every 20 ms (masked, uncompressed, as Twilio does); the server process is one
of the stacks below with an app that takes each message and drops it. The server's CPU
time over a --window-s window after the ramp, divided by the frames sent in it, is the
cost per frame; each stack runs --repeats times, and the table gives min / median / max.

- ``asyncio-protocol``: a bare asyncio protocol that reads and drops bytes (the floor:
  kernel + uvloop).
- ``uvicorn-raw``: uvicorn's own websockets-sansio protocol, a bare ASGI app.
- ``uvicorn-starlette``: the same with a Starlette ``WebSocketRoute`` (what the server
  was before the fast lane).
- ``voicebot-queue``: :class:`voicebot.api.websocket_protocol.WebSocketProtocol`, messages
  through ``receive()``.
- ``voicebot-direct``: the same with the direct receiver (how the media route takes
  frames).

    .venv/bin/python scripts/bench_transport.py --calls 200
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

STACKS = [
    "asyncio-protocol",
    "uvicorn-raw",
    "uvicorn-starlette",
    "voicebot-queue",
    "voicebot-direct",
]
FRAME_S = 0.020
MEDIA = json.dumps(
    {
        "event": "media",
        "sequenceNumber": "123",
        "media": {
            "track": "inbound",
            "chunk": "122",
            "timestamp": "2440",
            "payload": base64.b64encode(bytes(range(160))).decode(),
        },
        "streamSid": "MZ" + "a" * 32,
    },
    separators=(",", ":"),
)
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def serve(stack: str, port: int) -> None:
    """The server process: ``stack`` on 127.0.0.1:``port`` until killed."""
    import uvloop

    if stack == "asyncio-protocol":

        class Drop(asyncio.Protocol):
            def connection_made(self, transport: Any) -> None:
                self.transport = transport
                self.open = False

            def data_received(self, data: bytes) -> None:
                if self.open:
                    return
                key = next(
                    line.split(b":", 1)[1].strip()
                    for line in data.split(b"\r\n")
                    if line.lower().startswith(b"sec-websocket-key")
                )
                accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())  # noqa: S324 (RFC 6455)
                self.transport.write(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
                )
                self.open = True

        async def main() -> None:
            loop = asyncio.get_running_loop()
            await loop.create_server(Drop, "127.0.0.1", port)
            await asyncio.Future()

        uvloop.run(main())
        return

    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    from voicebot.api.websocket_protocol import (
        DIRECT_RECEIVE_EXTENSION,
        WEBSOCKET_SERVER_OPTIONS,
    )

    async def route(websocket: WebSocket) -> None:
        await websocket.accept()
        if stack == "voicebot-direct":
            websocket.scope["extensions"][DIRECT_RECEIVE_EXTENSION](lambda text: True)
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

    async def raw(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await receive()
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass

    options = dict(WEBSOCKET_SERVER_OPTIONS)
    if stack.startswith("uvicorn"):
        options["ws"] = "websockets-sansio"
    app = raw if stack == "uvicorn-raw" else Starlette(routes=[WebSocketRoute("/m", route)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", loop="uvloop", **options)


def call(port: int, calls: int, duration_s: float) -> None:
    """The client process: ``calls`` websockets, one ``media`` message each per 20 ms."""
    import uvloop
    from websockets.asyncio.client import connect

    async def one(index: int) -> None:
        async with connect(
            f"ws://127.0.0.1:{port}/m", compression=None, ping_interval=None
        ) as websocket:
            await asyncio.sleep(index * FRAME_S / calls)
            started = time.monotonic()
            sent = 0
            while time.monotonic() - started < duration_s:
                sent += 1
                await websocket.send(MEDIA)
                await asyncio.sleep(max(0.0, started + sent * FRAME_S - time.monotonic()))

    async def main() -> None:
        await asyncio.gather(*(one(i) for i in range(calls)))

    uvloop.run(main())


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(stack: str, args: argparse.Namespace, port: int) -> float:
    """µs of server CPU per inbound frame for one run of ``stack``."""
    me = [sys.executable, __file__]
    server = subprocess.Popen([*me, "--serve", stack, "--port", str(port)])
    try:
        time.sleep(2.0)
        duration_s = args.ramp_s + args.window_s + 2.0
        client = subprocess.Popen(
            [
                *me,
                "--client",
                "--port",
                str(port),
                "--calls",
                str(args.calls),
                "--duration-s",
                str(duration_s),
            ]
        )
        time.sleep(args.ramp_s)
        before = cpu_s(server.pid)
        time.sleep(args.window_s)
        used = cpu_s(server.pid) - before
        client.wait(timeout=duration_s + 30)
        if client.returncode:
            raise RuntimeError(f"{stack}: the client failed ({client.returncode})")
    finally:
        server.kill()
        server.wait()
    return 1e6 * used / (args.calls * args.window_s / FRAME_S)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--stacks", type=lambda s: s.split(","), default=STACKS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ramp-s", type=float, default=6.0)
    parser.add_argument("--window-s", type=float, default=15.0)
    parser.add_argument("--port", type=int, default=28711)
    parser.add_argument("--serve", choices=STACKS, help=argparse.SUPPRESS)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--duration-s", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return 0
    if args.client:
        call(args.port, args.calls, args.duration_s)
        return 0
    print(f"{args.calls} calls, one media message per call every 20 ms; load {os.getloadavg()}")
    print("\n| stack | server CPU µs per inbound frame, min / median / max |\n| --- | --- |")
    for offset, stack in enumerate(args.stacks):
        runs = [measure(stack, args, args.port + offset) for _ in range(args.repeats)]
        print(
            f"| {stack} | {min(runs):.1f} / {statistics.median(runs):.1f} / {max(runs):.1f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
