"""A caller already talking when the Media Stream starts, through the real server: the
noise floor is not known at the stream's first frames, and the speech must still be
heard whole; and it cuts the greeting, whose first frames its own task sends from the
call's first loop iteration (0f00097)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import call_server, hebrew_speech, recognising_sim, stored_turns
from voicebot.audio.codec import pcm16_to_ulaw
from voicebot.config import Settings
from voicebot.testing.provider_sim import ProviderSim
from voicebot.testing.twilio_caller import place_call

ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "e2e-speech-at-stream-start"
ANSWER = "כן, אפשר לדבר עכשיו"


@pytest.fixture
async def sim() -> AsyncIterator[ProviderSim]:
    async with recognising_sim(seed=17, phrases=[ANSWER]) as running:
        yield running


@pytest.fixture(params=["direct", "websockets-sansio"])
async def server(
    request: pytest.FixtureRequest, tmp_path: Path, sim: ProviderSim
) -> AsyncIterator[tuple[str, Settings]]:
    async with call_server(
        tmp_path,
        sim,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        ws=None if request.param == "direct" else request.param,
        stt_timeout_s=1.0,
    ) as served:
        yield served


async def test_words_from_the_first_frame_are_the_callers_turn(
    server: tuple[str, Settings],
) -> None:
    """The caller speaks from the stream's first frame, over the greeting: the greeting is
    cut, the agent answers, and the stored caller turn holds the words."""
    base, _ = server
    async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call:
        speech = call.say(pcm16_to_ulaw(hebrew_speech(ANSWER)))
        await speech.done.wait()
        assert speech.barge_in
        await call.wait_until(lambda: speech.response_latency_ms is not None, 20)
        assert speech.clear_latency_ms is not None
        assert not call.metrics.protocol_errors
    async with httpx.AsyncClient(base_url=base) as http:
        turns = await stored_turns(http)
    assert turns[0]["role"] == "assistant" and turns[0]["interrupted"]
    assert [t["text"] for t in turns if t["role"] == "user"] == [ANSWER]


async def test_a_caller_talking_from_the_first_frame_cuts_the_greeting(
    server: tuple[str, Settings],
) -> None:
    """The caller speaks from the stream's first frame, over the greeting's first frames
    (sent by the greeting's own task): a `clear` comes, no greeting audio after it, the
    call goes on, and the greeting is stored as interrupted, as far as it was heard."""
    base, _ = server
    async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call:
        speech = call.say(pcm16_to_ulaw(hebrew_speech(ANSWER)))
        await call.wait_until(lambda: speech.clear_latency_ms is not None, 10)
        assert speech.barge_in
        await speech.done.wait()
        await asyncio.sleep(0.5)
        assert speech.audio_after_clear_ms == 0
        assert not call.metrics.protocol_errors
        assert not call.ended
    async with httpx.AsyncClient(base_url=base) as http:
        turns = await stored_turns(http)
    assert turns[0]["role"] == "assistant" and turns[0]["interrupted"]
