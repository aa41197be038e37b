"""Deploys without dropped calls: ``voicebot serve`` as a subprocess gets SIGTERM while a
call is live (issue #10, item 8)."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_settings
from tests.e2e.conftest import call_server_settings
from voicebot.audio.codec import pcm16_to_ulaw
from voicebot.call.registry import DRAIN_GOODBYE_TEXT
from voicebot.cli import migrate
from voicebot.providers.sentences import split_sentences
from voicebot.testing.hebrew_audio import synthesize_hebrew
from voicebot.testing.provider_sim import ProviderSim, SimConfig
from voicebot.testing.serve_process import ServerProcess, spawn_server
from voicebot.testing.server import free_port, running_server
from voicebot.testing.twilio_caller import CallNotConnectedError, SimulatedCall, place_call

ACCOUNT_SID = "AC" + "3" * 32
AUTH_TOKEN = "drain-auth-token"
AUDIO_CACHE = Path(".cache/hebrew_audio")
ANSWER = "כן, אפשר לדבר עכשיו"
SHORT_DRAIN_S = 4.0
EXIT_TIMEOUT_S = 20.0
# Three interpreters import the app (supervisor and two spawned workers) on a loaded box.
WORKERS_START_TIMEOUT_S = 120.0


@pytest.fixture
async def sim() -> AsyncIterator[ProviderSim]:
    async with ProviderSim(SimConfig(seed=7)) as running:
        running.register_phrase(ANSWER, synthesize_hebrew(ANSWER, cache_dir=AUDIO_CACHE), 8000)
        yield running


def _env(tmp_path: Path, sim: ProviderSim, *, drain_timeout_s: float) -> dict[str, str]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'drain.db'}"
    migrate(make_settings(database_url=url))
    return {
        "DATABASE_URL": url,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "STT_BASE_URL": sim.base_url,
        "STT_API_KEY": "sim-key",
        "CONVERSATION_MODE": "stream",
        "DRAIN_TIMEOUT_S": str(drain_timeout_s),
        "TTS_CACHE_DIR": str(tmp_path / "tts"),
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
    }


async def _wait_exit(server: ServerProcess, timeout_s: float) -> int:
    async with asyncio.timeout(timeout_s):
        while True:  # another process: nothing to await but its exit status
            if (code := server.proc.poll()) is not None:
                return code
            await asyncio.sleep(0.1)


async def _ready_status(base_url: str, wanted: int, timeout_s: float) -> httpx.Response:
    """Poll /health/ready until it answers ``wanted``."""
    async with httpx.AsyncClient(base_url=base_url, timeout=5.0) as http:
        async with asyncio.timeout(timeout_s):
            while True:
                if (ready := await http.get("/health/ready")).status_code == wanted:
                    return ready
                await asyncio.sleep(0.05)


async def _sigterm_and_check_refusals(server: ServerProcess, call: SimulatedCall) -> None:
    """SIGTERM; then /health/ready is 503 and a new call's webhook is redirected to the
    public URL while the live call stays up."""
    server.proc.send_signal(signal.SIGTERM)
    ready = await _ready_status(server.base_url, 503, 5)
    assert "calls" in ready.json()["failing"]
    with pytest.raises(CallNotConnectedError) as refused:
        async with place_call(server.base_url, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN):
            pass
    assert refused.value.status_code == 200
    assert f'<Redirect method="POST">{server.base_url}/twilio/voice</Redirect>' in (
        refused.value.twiml
    )
    assert not call.ended
    assert server.proc.poll() is None


async def test_sigterm_lets_the_live_call_finish_then_exits(
    tmp_path: Path, sim: ProviderSim
) -> None:
    """After SIGTERM the live call still answers the caller; the process exits once the
    caller hangs up, long before DRAIN_TIMEOUT_S, with exit code 0."""
    with spawn_server(tmp_path, _env(tmp_path, sim, drain_timeout_s=600)) as server:
        await server.wait_ready()
        async with place_call(
            server.base_url, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN
        ) as call:
            await call.wait_until(lambda: len(call.metrics.marks) >= 1, 20)
            await _sigterm_and_check_refusals(server, call)
            speech = call.say(pcm16_to_ulaw(synthesize_hebrew(ANSWER, cache_dir=AUDIO_CACHE)))
            await call.wait_until(lambda: speech.response_latency_ms is not None, 20)
            assert not call.ended
            assert server.proc.poll() is None
            hung_up_at = time.monotonic()
        assert await _wait_exit(server, EXIT_TIMEOUT_S) == 0, server.log_tail()
        assert time.monotonic() - hung_up_at < 10
        assert '"drain.done"' in server.log_tail(20000)


async def test_sigterm_to_two_workers_drains_the_live_call_then_exits(
    tmp_path: Path, sim: ProviderSim
) -> None:
    """`serve --workers 2`: SIGTERM to the supervisor reaches both workers; the one with
    the live call keeps answering it (new calls are redirected), and the supervisor exits
    0 once the caller hangs up."""
    env = _env(tmp_path, sim, drain_timeout_s=600)
    with spawn_server(tmp_path, env, args=["--workers", "2"]) as server:
        await server.wait_ready(WORKERS_START_TIMEOUT_S)
        async with place_call(
            server.base_url, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN
        ) as call:
            await call.wait_until(lambda: len(call.metrics.marks) >= 1, 20)
            server.proc.send_signal(signal.SIGTERM)
            # The worker with the call drains (the other may already have exited): every
            # new call is redirected while this one is answered.
            await _ready_status(server.base_url, 503, 10)
            with pytest.raises(CallNotConnectedError) as refused:
                async with place_call(
                    server.base_url, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN
                ):
                    pass
            assert "<Redirect" in refused.value.twiml
            speech = call.say(pcm16_to_ulaw(synthesize_hebrew(ANSWER, cache_dir=AUDIO_CACHE)))
            await call.wait_until(lambda: speech.response_latency_ms is not None, 20)
            assert not call.ended
            assert server.proc.poll() is None
            hung_up_at = time.monotonic()
        assert await _wait_exit(server, EXIT_TIMEOUT_S) == 0, server.log_tail()
        assert time.monotonic() - hung_up_at < 15
        assert '"drain.done"' in server.log_tail(50000)


async def test_past_the_drain_timeout_the_caller_hears_goodbye_before_exit(
    tmp_path: Path, sim: ProviderSim
) -> None:
    """With a short DRAIN_TIMEOUT_S, the call still live at the deadline hears the whole
    spoken goodbye (every sentence's mark comes back), then the server hangs up and exits;
    the goodbye is stored as the call's last, uninterrupted turn."""
    env = _env(tmp_path, sim, drain_timeout_s=SHORT_DRAIN_S)
    with spawn_server(tmp_path, env) as server:
        await server.wait_ready()
        async with place_call(
            server.base_url, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN
        ) as call:
            await call.wait_until(lambda: len(call.metrics.marks) >= 1, 20)
            assert call.metrics.start_sent_s is not None
            sigterm_ms = (time.monotonic() - call.metrics.start_sent_s) * 1000
            await _sigterm_and_check_refusals(server, call)
            await call.wait_until(lambda: call.ended, SHORT_DRAIN_S + 30)
            assert server.proc.poll() is None or server.proc.returncode == 0
            call_sid = call.call_sid
        assert await _wait_exit(server, EXIT_TIMEOUT_S) == 0, server.log_tail()
    deadline_ms = sigterm_ms + SHORT_DRAIN_S * 1000
    marks_after_deadline = [name for at_ms, name in call.metrics.marks if at_ms > deadline_ms]
    assert len(marks_after_deadline) >= len(split_sentences(DRAIN_GOODBYE_TEXT))
    db = sqlite3.connect(tmp_path / "drain.db")
    try:
        last = db.execute(
            "SELECT t.text, t.intent, t.interrupted FROM call_turns t JOIN calls c"
            " ON c.id = t.call_id WHERE c.call_sid = ? ORDER BY t.seq DESC LIMIT 1",
            (call_sid,),
        ).fetchone()
    finally:
        db.close()
    assert last == (DRAIN_GOODBYE_TEXT, "drain", 0)


async def test_max_calls_per_process_redirects_the_call_over_the_bound(
    tmp_path: Path, sim: ProviderSim
) -> None:
    """With MAX_CALLS_PER_PROCESS=1 a second call is redirected and /health/ready is 503
    while the first is live; once it ends, calls are admitted again."""
    port = free_port()
    settings = call_server_settings(
        tmp_path,
        port=port,
        sim=sim,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        max_calls_per_process=1,
    )
    async with running_server(settings, port=port) as base:
        async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call:
            await call.wait_until(lambda: len(call.metrics.marks) >= 1, 20)
            with pytest.raises(CallNotConnectedError) as refused:
                async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN):
                    pass
            assert "<Redirect" in refused.value.twiml
            async with httpx.AsyncClient(base_url=base) as http:
                ready = await http.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["checks"]["calls"].startswith("full")
        await _ready_status(base, 200, 10)
        async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as again:
            await again.wait_until(lambda: len(again.metrics.marks) >= 1, 20)
