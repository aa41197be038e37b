"""``voicebot serve`` as a subprocess, as a deploy runs it: for drain tests and benchmarks
that need real signals or several processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from voicebot.config import Settings
from voicebot.testing.server import free_port

SERVER_START_TIMEOUT_S = 30.0
SERVER_STOP_TIMEOUT_S = 15.0
POLL_S = 0.1


class ServerNotReadyError(Exception):
    """The subprocess exited or never became ready; the message holds its log's tail."""


@dataclass(frozen=True, slots=True)
class ServerProcess:
    """One ``voicebot serve`` subprocess listening on ``base_url``."""

    base_url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    async def wait_ready(self, timeout_s: float = SERVER_START_TIMEOUT_S) -> None:
        """Poll ``/health/ready`` until 200; ServerNotReadyError if it exits or times out."""
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as http:
            try:
                async with asyncio.timeout(timeout_s):
                    while True:
                        if self.proc.poll() is not None:
                            raise ServerNotReadyError(f"server exited:\n{self.log_tail()}")
                        with contextlib.suppress(httpx.TransportError):
                            if (await http.get("/health/ready")).status_code == httpx.codes.OK:
                                return
                        await asyncio.sleep(POLL_S)
            except TimeoutError as exc:
                raise ServerNotReadyError(f"server not ready:\n{self.log_tail()}") from exc


def serve_command() -> list[str]:
    script = Path(sys.executable).with_name("voicebot")
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, "-m", "voicebot.cli", "serve"]


@contextlib.contextmanager
def spawn_server(
    workdir: Path, env: Mapping[str, str], *, port: int | None = None, args: Sequence[str] = ()
) -> Iterator[ServerProcess]:
    """Start ``voicebot serve`` on ``port`` in ``workdir`` (no stray .env is read) with only
    ``env``'s voicebot settings (PUBLIC_BASE_URL defaults to the server's own URL) and
    ``args`` (``--workers 2``); on exit
    SIGTERM it, then kill it if it has not stopped within ``SERVER_STOP_TIMEOUT_S``."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "server.log"
    clean = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    clean["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
    clean.update(env)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own CLI with fixed arguments
            [*serve_command(), "--host", "127.0.0.1", "--port", str(port), *args],
            cwd=workdir,
            env=clean,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(SERVER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
