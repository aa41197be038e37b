"""Turn taking when the caller keeps talking: an agent reply that would start over the
caller's speech is cut at once (`clear`), and nothing of it is sent while the caller talks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.conftest import call_server_settings
from voicebot.audio.codec import ULAW_SILENCE_BYTE, pcm16_to_ulaw
from voicebot.config import Settings
from voicebot.testing.hebrew_audio import synthesize_hebrew
from voicebot.testing.provider_sim import ProviderSim, SimConfig, StageBehaviour
from voicebot.testing.server import free_port, running_server
from voicebot.testing.twilio_caller import place_call

ACCOUNT_SID = "AC" + "4" * 32
AUTH_TOKEN = "turn-taking-auth-token"
AUDIO_CACHE = Path(".cache/hebrew_audio")
FIRST = "כן, אפשר לדבר עכשיו"
SECOND = "רגע, לפני זה אני רוצה לשאול כמה זה עולה בחודש ואם יש התחייבות"
STT_DELAY_MS = 400  # the reply to FIRST starts while the caller is well into SECOND
PAUSE_MS = 760  # just over the 700 ms endpoint: FIRST is a turn of its own


@pytest.fixture
async def sim() -> AsyncIterator[ProviderSim]:
    async with ProviderSim(SimConfig(stt=StageBehaviour(delay_ms=STT_DELAY_MS), seed=9)) as s:
        for phrase in (FIRST, SECOND):
            s.register_phrase(phrase, synthesize_hebrew(phrase, cache_dir=AUDIO_CACHE), 8000)
        yield s


@pytest.fixture
async def server(tmp_path: Path, sim: ProviderSim) -> AsyncIterator[tuple[str, Settings]]:
    port = free_port()
    settings = call_server_settings(
        tmp_path, port=port, sim=sim, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN
    )
    async with running_server(settings, port=port) as base:
        yield base, settings


async def test_agent_yields_when_its_reply_would_start_over_the_caller(
    server: tuple[str, Settings],
) -> None:
    """The caller pauses just long enough to end a turn, then goes on talking; the reply to
    the first turn begins during the second, so the agent clears it and stays silent."""
    base, _ = server
    first = pcm16_to_ulaw(synthesize_hebrew(FIRST, cache_dir=AUDIO_CACHE))
    pause = bytes([ULAW_SILENCE_BYTE]) * (8 * PAUSE_MS)
    second = pause + pcm16_to_ulaw(synthesize_hebrew(SECOND, cache_dir=AUDIO_CACHE))
    async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call:
        await call.wait_for_greeting(20)
        clears_before = call.metrics.clears
        call.say(first)
        talking_on = call.say(second)
        await call.wait_until(lambda: talking_on.end_s is not None, 20)
        assert call.metrics.clears > clears_before, "the agent talked over the caller"
        assert talking_on.audio_after_clear_ms == 0
        await call.wait_until(lambda: talking_on.response_latency_ms is not None, 20)
        assert talking_on.response_latency_ms is not None, "the second turn got no answer"
