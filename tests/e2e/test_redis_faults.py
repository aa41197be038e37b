"""Redis stalled (SIGSTOP) or down before a call: the greeting and every turn go on with
at most one Redis timeout of delay, and the turns are stored in order (issue #10, item 7)."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import AUDIO_CACHE, call_server_settings
from tests.e2e.test_call import ACCOUNT_SID, ANSWER, AUTH_TOKEN
from voicebot.audio.codec import pcm16_to_ulaw
from voicebot.testing.hebrew_audio import synthesize_hebrew
from voicebot.testing.provider_sim import ProviderSim, SimConfig
from voicebot.testing.server import free_port, running_server
from voicebot.testing.twilio_caller import place_call

TURNS = 2
QUIET_S = 1.5
# Redis used to add its 2 s socket timeout to the greeting and to every turn; now the call
# pays one 200 ms timeout at most, then Redis is skipped. The bounds leave room for load.
GREETING_BOUND_MS = 1000.0
ENDPOINT_SILENCE_MS = 700
TURN_BOUND_MS = ENDPOINT_SILENCE_MS + 1200.0


# "down" runs in the full suite; make test covers a dead Redis mid-call in
# test_redis_outage.py and keeps the stall here (the case a timeout must bound).
@pytest.mark.parametrize("fault", ["stalled", pytest.param("down", marks=pytest.mark.full)])
async def test_call_goes_on_without_delay_when_redis_is_stalled_or_down(
    tmp_path: Path, own_redis: tuple[str, subprocess.Popen[bytes]], fault: str
) -> None:
    """Greeting and answers arrive within small bounds; turns are stored user/agent in order."""
    redis_url, proc = own_redis
    port = free_port()
    async with ProviderSim(SimConfig(seed=5)) as sim:
        speech_pcm = synthesize_hebrew(ANSWER, cache_dir=AUDIO_CACHE)
        sim.register_phrase(ANSWER, speech_pcm, 8000)
        settings = call_server_settings(
            tmp_path,
            port=port,
            sim=sim,
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            redis_url=redis_url,
            endpoint_silence_ms=ENDPOINT_SILENCE_MS,
        )
        try:
            async with running_server(settings, port=port) as base:
                if fault == "stalled":
                    proc.send_signal(signal.SIGSTOP)
                else:
                    proc.kill()
                    proc.wait()
                async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call:
                    await call.wait_until(lambda: len(call.metrics.marks) >= 1, 20)
                    greeting_ms = call.metrics.first_agent_media_ms
                    latencies: list[float] = []
                    for _ in range(TURNS):
                        marks = len(call.metrics.marks)
                        speech = call.say(pcm16_to_ulaw(speech_pcm))
                        await call.wait_until(
                            lambda s=speech: s.response_latency_ms is not None, 20
                        )
                        assert speech.response_latency_ms is not None
                        latencies.append(speech.response_latency_ms)
                        await call.wait_until(lambda m=marks: len(call.metrics.marks) > m, 20)
                        await call.wait_until(lambda: not call.playback.busy, 30)
                        await asyncio.sleep(QUIET_S)  # the reply's later sentences too
                        await call.wait_until(lambda: not call.playback.busy, 30)
                    assert not call.ended
                    call_sid = call.call_sid
        finally:
            if fault == "stalled":
                proc.send_signal(signal.SIGCONT)
    assert greeting_ms is not None and greeting_ms < GREETING_BOUND_MS, greeting_ms
    assert max(latencies) < TURN_BOUND_MS, latencies
    db = sqlite3.connect(tmp_path / "calls.db")
    try:
        rows = db.execute(
            "SELECT t.seq, t.role, t.text FROM call_turns t JOIN calls c ON c.id = t.call_id"
            " WHERE c.call_sid = ? ORDER BY t.id",
            (call_sid,),
        ).fetchall()
    finally:
        db.close()
    assert [seq for seq, _, _ in rows] == list(range(1, len(rows) + 1))
    user_turns = [text for _, role, text in rows if role == "user"]
    assert user_turns == [ANSWER] * TURNS
    assert rows[0][1] == "assistant"  # the greeting
    for seq, role, _ in rows:
        if role == "user":
            assert rows[seq][1] == "assistant", rows  # every caller turn answered
