"""A caller who asks the agent to wait ("רגע") is given longer than the usual silence
before the check-in: the call is not ended for silence while they look something up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import call_server_settings, hebrew_speech
from voicebot.audio.codec import pcm16_to_ulaw
from voicebot.call.turns import HOLD_SILENCE_FACTOR
from voicebot.testing.provider_sim import ProviderSim, SimConfig
from voicebot.testing.server import free_port, running_server
from voicebot.testing.twilio_caller import place_call

ACCOUNT_SID = "AC" + "8" * 32
AUTH_TOKEN = "hold-silence-auth-token"
HOLD = "רגע"
CHECKIN_S = 1.0


@pytest.fixture
async def sim() -> AsyncIterator[ProviderSim]:
    async with ProviderSim(SimConfig(seed=12)) as running:
        running.register_phrase(HOLD, hebrew_speech(HOLD), 8000)
        yield running


async def _turns(base: str) -> list[tuple[str, str | None]]:
    async with httpx.AsyncClient(base_url=base) as http:
        calls = (await http.get("/api/v1/calls")).json()["items"]
        detail: dict[str, Any] = (await http.get(f"/api/v1/calls/{calls[0]['id']}")).json()
    return [(t["role"], t["intent"]) for t in detail["turns"]]


async def test_silence_after_a_hold_waits_longer_before_the_check_in(
    tmp_path: Path, sim: ProviderSim
) -> None:
    """After "רגע" and the agent's "בטח, אני מחכה." the line stays quiet: no check-in for
    HOLD_SILENCE_FACTOR x the check-in silence (1 s here; it used to come after 1 s and
    the goodbye after 2 s), then the check-ins as usual."""
    port = free_port()
    settings = call_server_settings(
        tmp_path,
        port=port,
        sim=sim,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        silence_checkin_s=CHECKIN_S,
    )
    async with (
        running_server(settings, port=port) as base,
        place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call,
    ):
        await call.wait_for_greeting(20)
        call.say(pcm16_to_ulaw(hebrew_speech(HOLD)))
        async with asyncio.timeout(20):
            while True:
                if ("assistant", "hold") in await _turns(base):
                    break
                await asyncio.sleep(0.05)
        await call.wait_until(lambda: not call.playback.busy, 10)
        held_at = time.monotonic()
        await asyncio.sleep((HOLD_SILENCE_FACTOR - 1) * CHECKIN_S)
        assert not call.ended
        assert ("assistant", "silence") not in await _turns(base)
        await call.wait_until(lambda: call.ended, HOLD_SILENCE_FACTOR * CHECKIN_S + 15)
        assert time.monotonic() - held_at >= HOLD_SILENCE_FACTOR * CHECKIN_S
        await asyncio.sleep(0.5)  # the last turns are stored after the socket closed
        turns = await _turns(base)
    assert turns[-2:] == [("assistant", "silence"), ("assistant", "silence")]
