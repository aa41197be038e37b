"""Overlapped turns on a live call: a reply prepared at a pause is thrown away when the
caller goes on, and the turn is answered once, for the whole utterance."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import call_server, stored_turns
from voicebot.audio.codec import pcm16_to_ulaw
from voicebot.call.playout import Playout
from voicebot.config import Settings
from voicebot.testing.hebrew_audio import silence, synthesize_hebrew
from voicebot.testing.provider_sim import ProviderSim, SimConfig
from voicebot.testing.twilio_caller import place_call

ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "speculation-auth-token"
AUDIO_CACHE = Path(".cache/hebrew_audio")
OPENING = "אז"  # hesitation: the turn waits past the pause
REST = "תשלח לי את הפרטים בווטסאפ"
PAUSE_MS = 600  # past the 200 ms speculation pause, short of the 1.2 s hesitation wait
WHOLE = f"{OPENING} {REST}"


def _whole_pcm16() -> bytes:
    opening = synthesize_hebrew(OPENING, cache_dir=AUDIO_CACHE)
    return opening + silence(PAUSE_MS) + synthesize_hebrew(REST, cache_dir=AUDIO_CACHE)


@pytest.fixture
async def sim() -> AsyncIterator[ProviderSim]:
    async with ProviderSim(SimConfig(seed=14)) as s:
        s.register_phrase(OPENING, synthesize_hebrew(OPENING, cache_dir=AUDIO_CACHE), 8000)
        s.register_phrase(WHOLE, _whole_pcm16(), 8000)
        yield s


@pytest.fixture
async def server(tmp_path: Path, sim: ProviderSim) -> AsyncIterator[tuple[str, Settings]]:
    async with call_server(
        tmp_path, sim, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN
    ) as running:
        yield running


async def test_a_reply_prepared_at_a_pause_is_dropped_when_the_caller_goes_on(
    server: tuple[str, Settings], sim: ProviderSim, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'אז' … (600 ms) … the rest: the pause is recognised and answered in advance, the
    caller resumes, that reply is dropped unheard; the call stores one caller turn with
    the whole utterance and one answer to it, and /metrics counts the dropped speculation.
    The answer, held until the turn was confirmed, is sent by the task that confirmed it,
    not one loop iteration later by the playout's."""
    pumps: list[tuple[str, int]] = []  # (sending task, queue entries it sent)
    pump = Playout.pump

    async def recorded_pump(self: Playout) -> None:
        before = len(self._queue)
        await pump(self)
        task = asyncio.current_task()
        pumps.append((task.get_name() if task else "", before - len(self._queue)))

    monkeypatch.setattr(Playout, "pump", recorded_pump)
    base, _ = server
    stt_before = sum(1 for r in sim.log if r.stage == "stt")
    async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call:
        await call.wait_for_greeting(20)
        clears_before = call.metrics.clears
        audio_before_ms = call.metrics.agent_audio_ms
        speech = call.say(pcm16_to_ulaw(_whole_pcm16()))
        await call.wait_until(lambda: speech.end_s is not None, 20)
        assert call.metrics.agent_audio_ms == audio_before_ms, "agent audio during the turn"
        await call.wait_until(lambda: speech.response_latency_ms is not None, 20)
        assert speech.response_latency_ms is not None, "the turn got no answer"
        await call.wait_until(lambda: not call.playback.busy, 20)
        assert call.metrics.clears == clears_before
    async with httpx.AsyncClient(base_url=base) as http:
        turns = await stored_turns(http)
        metrics = (await http.get("/metrics")).text
    user = [t["text"] for t in turns if t["role"] == "user"]
    agent = [t for t in turns if t["role"] == "assistant"]
    assert user == [WHOLE]
    assert len(agent) == 2  # the greeting and the one answer
    assert sum(1 for r in sim.log if r.stage == "stt") - stt_before >= 2  # pause + whole
    assert 'voicebot_speculative_turns_total{outcome="resumed"} 1.0' in metrics
    assert 'voicebot_speculative_turns_total{outcome="used"} 1.0' in metrics
    # The greeting's and the answer's generation tasks are "speech-N"; the turn loop's
    # release of the held answer is the one other sender.
    assert [sent for name, sent in pumps if not name.startswith("speech-") and sent]
