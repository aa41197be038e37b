"""Run the voicebot app with uvicorn on a free loopback port inside the current event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from voicebot.api.websocket_protocol import WEBSOCKET_SERVER_OPTIONS
from voicebot.app import create_app
from voicebot.config import Settings

SERVER_START_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def running_server(
    settings: Settings, *, port: int | None = None, ws: Any = None
) -> AsyncIterator[str]:
    """Serve ``settings``' app on 127.0.0.1; yields the base URL; stops on exit. ``ws``
    replaces the server's websocket protocol (e.g. uvicorn's own ``"websockets-sansio"``)."""
    port = port or free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_config=None,
        **{**WEBSOCKET_SERVER_OPTIONS, **({"ws": ws} if ws is not None else {})},
        lifespan="on",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(SERVER_START_TIMEOUT_S):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
