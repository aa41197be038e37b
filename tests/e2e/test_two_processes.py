"""Two ``voicebot serve`` processes sharing one Postgres and one Redis, as behind a load
balancer: the call's websocket lives on one, its status callbacks land on the other."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from twilio.request_validator import RequestValidator

from voicebot.audio.codec import pcm16_to_ulaw
from voicebot.config import Settings
from voicebot.db.models import Call
from voicebot.store.redis import RedisStore
from voicebot.testing.hebrew_audio import synthesize_hebrew
from voicebot.testing.provider_sim import ProviderSim, SimConfig
from voicebot.testing.server import free_port
from voicebot.testing.twilio_caller import place_call

ACCOUNT_SID = "AC" + "2" * 32
AUTH_TOKEN = "two-process-auth-token"
AUDIO_CACHE = Path(".cache/hebrew_audio")
ANSWER = "כן, אפשר לדבר עכשיו"
SERVER_START_TIMEOUT_S = 30.0
SERVER_STOP_TIMEOUT_S = 15.0
POLL_S = 0.1
STATE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class ServerProcess:
    """One ``voicebot serve`` subprocess; it signs and checks against ``base_url``."""

    name: str
    base_url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def _serve_command() -> list[str]:
    script = Path(sys.executable).with_name("voicebot")
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, "-m", "voicebot.cli", "serve"]


def _server_env(*, port: int, database_url: str, redis_url: str, stt_url: str) -> dict[str, str]:
    """The environment of one process: no inherited voicebot settings, the shared stores."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        STT_BASE_URL=stt_url,
        STT_API_KEY="sim-key",
        CONVERSATION_MODE="stream",
        LOG_LEVEL="WARNING",
        LOG_FORMAT="json",
    )
    return env


@contextlib.contextmanager
def _spawn(name: str, workdir: Path, **env_args: Any) -> Iterator[ServerProcess]:
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own CLI with fixed arguments
            [*_serve_command(), "--host", "127.0.0.1", "--port", str(port)],
            cwd=workdir,  # no stray .env is read
            env=_server_env(port=port, **env_args),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(name, f"http://127.0.0.1:{port}", proc, log_path)
    try:
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(SERVER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _wait_ready(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=2.0) as http:
        try:
            async with asyncio.timeout(SERVER_START_TIMEOUT_S):
                while True:
                    if server.proc.poll() is not None:
                        pytest.fail(f"{server.name} exited:\n{server.log_tail()}")
                    with contextlib.suppress(httpx.TransportError):
                        if (await http.get("/health/ready")).status_code == httpx.codes.OK:
                            return
                    await asyncio.sleep(POLL_S)
        except TimeoutError:
            pytest.fail(f"{server.name} not ready:\n{server.log_tail()}")


@pytest.fixture
async def sim() -> AsyncIterator[ProviderSim]:
    async with ProviderSim(SimConfig(seed=5)) as running:
        running.register_phrase(ANSWER, synthesize_hebrew(ANSWER, cache_dir=AUDIO_CACHE), 8000)
        yield running


@pytest.fixture
async def servers(
    tmp_path: Path, postgres_url: str, redis_url: str, sim: ProviderSim
) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    """Two server processes on one Postgres database and one Redis."""
    shared = {"database_url": postgres_url, "redis_url": redis_url, "stt_url": sim.base_url}
    with (
        _spawn("process 1", tmp_path / "p1", **shared) as first,
        _spawn("process 2", tmp_path / "p2", **shared) as second,
    ):
        await asyncio.gather(_wait_ready(first), _wait_ready(second))
        yield first, second


async def _post_status(
    server: ServerProcess, call_sid: str, status: str, *, token: str, **extra: str
) -> int:
    """A status callback signed, as Twilio signs it, over the URL of the process it reaches."""
    form = {"AccountSid": ACCOUNT_SID, "CallSid": call_sid, "CallStatus": status, **extra}
    url = server.base_url + "/twilio/status"
    headers = {
        "X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(url, form),
        "I-Twilio-Idempotency-Token": token,
    }
    async with httpx.AsyncClient(timeout=5.0) as http:
        return (await http.post(url, data=form, headers=headers)).status_code


async def _active_calls(server: ServerProcess) -> float:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5.0) as http:
        text = (await http.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith("voicebot_active_calls "):
            return float(line.split()[1])
    raise AssertionError("voicebot_active_calls missing from /metrics")


async def _call_row(database_url: str, call_sid: str) -> Call:
    """The call row as Postgres holds it now (read outside both server processes)."""
    engine = create_async_engine(database_url)
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            call = (await session.scalars(select(Call).where(Call.call_sid == call_sid))).first()
    finally:
        await engine.dispose()
    assert call is not None, f"no call row for {call_sid}"
    return call


async def _wait_for(predicate: Callable[[], Awaitable[bool]], timeout_s: float) -> None:
    """Poll state another process writes (no event crosses the process boundary)."""
    async with asyncio.timeout(timeout_s):
        while True:
            if await predicate():
                return
            await asyncio.sleep(POLL_S)


async def test_status_callback_on_the_other_process(
    servers: tuple[ServerProcess, ServerProcess], postgres_url: str, redis_url: str
) -> None:
    """While process 1 holds the live call, process 2 takes its status callbacks (2xx):
    the row in Postgres moves to completed, process 1's turn state is readable from Redis,
    the idempotency ledger is shared, and process 1 ending the call keeps the status."""
    first, second = servers
    redis = Redis.from_url(redis_url)
    store = RedisStore(redis)
    try:
        async with place_call(
            first.base_url, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN
        ) as call:
            call_sid = call.call_sid
            await call.wait_until(lambda: len(call.metrics.marks) >= 1, 20)
            call.say(pcm16_to_ulaw(synthesize_hebrew(ANSWER, cache_dir=AUDIO_CACHE)))

            async def caller_turn_in_redis() -> bool:
                state = await store.load(call_sid)
                history = (state or {}).get("history", [])
                return any(t.get("role") == "user" and t.get("content") == ANSWER for t in history)

            await _wait_for(caller_turn_in_redis, STATE_TIMEOUT_S)
            assert await _active_calls(first) == 1
            assert await _active_calls(second) == 0

            assert await _post_status(second, call_sid, "in-progress", token="tp-1") == 204
            assert (
                await _post_status(second, call_sid, "completed", token="tp-2", CallDuration="7")
                == 204
            )
            assert not call.ended  # process 1 still streams the call
            row = await _call_row(postgres_url, call_sid)
            assert row.status == "completed"
            assert row.status_events[-2:] == ["in-progress", "completed"]
            assert row.ended_at is not None

            async with httpx.AsyncClient(base_url=second.base_url, timeout=5.0) as http:
                seen = (await http.get(f"/api/v1/calls/{row.id}")).json()
            assert seen["status"] == "completed"

            # A retry of the same callback reaching the other process is applied once;
            # a late `ringing` never moves the status back.
            assert (
                await _post_status(first, call_sid, "completed", token="tp-2", CallDuration="7")
                == 204
            )
            assert await _post_status(first, call_sid, "ringing", token="tp-3") == 204
            events = (await _call_row(postgres_url, call_sid)).status_events
            assert events.count("completed") == 1 and events[-1] == "ringing"

        async def first_finished() -> bool:
            return (await _call_row(postgres_url, call_sid)).outcome is not None

        await _wait_for(first_finished, STATE_TIMEOUT_S)
        final = await _call_row(postgres_url, call_sid)
        assert final.status == "completed"
        assert final.status_events == events
        assert await _active_calls(first) == 0
    finally:
        await redis.aclose()
