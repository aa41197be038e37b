"""Attacks on a live call as a caller would make them: speech that resumes while the reply
to the last utterance is still being prepared (the reply must never start over the caller,
and both utterances are answered together)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import call_server, call_server_settings, hebrew_speech, recognising_sim
from voicebot.audio.codec import ULAW_SILENCE_BYTE, pcm16_to_ulaw
from voicebot.config import Settings
from voicebot.testing.hebrew_audio import synthesize_hebrew
from voicebot.testing.provider_sim import ProviderSim, SimConfig, StageBehaviour
from voicebot.testing.realtime_sim import RealtimeBehaviour
from voicebot.testing.server import free_port, running_server
from voicebot.testing.twilio_caller import place_call

ACCOUNT_SID = "AC" + "a" * 32
AUTH_TOKEN = "live-call-attacks-auth-token"
AUDIO_CACHE = Path(".cache/hebrew_audio")
FIRST = "כן, אפשר לדבר עכשיו"
SECOND = "רגע, לפני זה אני רוצה לשאול כמה זה עולה בחודש"
# Recognition outlasts the pause: the caller is talking again before any reply to FIRST
# (speculative or not) is ready.
STT_DELAY_MS = 1500
PAUSE_MS = 760  # over the 700 ms endpoint: FIRST ends a turn of its own


@pytest.fixture
async def sim() -> AsyncIterator[ProviderSim]:
    async with ProviderSim(SimConfig(stt=StageBehaviour(delay_ms=STT_DELAY_MS), seed=10)) as s:
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


async def _stored_turns(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    for _ in range(50):  # turns are written off the speaking path
        calls = (await http.get("/api/v1/calls")).json()["items"]
        detail = (await http.get(f"/api/v1/calls/{calls[0]['id']}")).json()
        if detail["status"] == "completed":
            break
        await asyncio.sleep(0.1)
    turns: list[dict[str, Any]] = detail["turns"]
    return turns


async def test_speech_resumed_while_the_reply_is_prepared_is_answered_together(
    server: tuple[str, Settings],
) -> None:
    """FIRST, a pause just past the endpoint, SECOND while FIRST is still being recognised:
    no audio of a reply to FIRST alone reaches the caller during SECOND (no `clear` needed),
    and the call stores one caller turn with both utterances, answered once."""
    base, _ = server
    first = pcm16_to_ulaw(synthesize_hebrew(FIRST, cache_dir=AUDIO_CACHE))
    pause = bytes([ULAW_SILENCE_BYTE]) * (8 * PAUSE_MS)
    second = pause + pcm16_to_ulaw(synthesize_hebrew(SECOND, cache_dir=AUDIO_CACHE))
    async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call:
        await call.wait_until(lambda: len(call.metrics.marks) >= 1 and not call.playback.busy, 20)
        clears_before = call.metrics.clears
        audio_before_ms = call.metrics.agent_audio_ms
        call.say(first)
        talking_on = call.say(second)
        await call.wait_until(lambda: talking_on.end_s is not None, 20)
        assert call.metrics.agent_audio_ms == audio_before_ms, "a reply started over the caller"
        assert call.metrics.clears == clears_before
        await call.wait_until(lambda: talking_on.response_latency_ms is not None, 20)
        assert talking_on.response_latency_ms is not None, "the caller got no answer"
        await call.wait_until(lambda: not call.playback.busy, 20)
    async with httpx.AsyncClient(base_url=base) as http:
        turns = await _stored_turns(http)
    user = [t["text"] for t in turns if t["role"] == "user"]
    assert user == [f"{FIRST} {SECOND}"]
    assert len([t for t in turns if t["role"] == "assistant"]) == 2  # greeting + one answer


async def test_words_carried_over_several_utterances_stay_bounded(
    server: tuple[str, Settings], sim: ProviderSim
) -> None:
    """A caller who never lets the agent in (each utterance recognised as ~1,300
    characters, the next begun before the reply to the last is ready): the carried words
    are joined to the next utterance, and the joined turn the brain reads and the call
    stores is still cut to a phone turn's length (1,000 characters), keeping the newest."""
    base, _ = server
    sim.config.default_transcript = "אני רוצה לשמוע עוד פרטים " * 50
    one = pcm16_to_ulaw(synthesize_hebrew("שלום לך, מה נשמע היום", cache_dir=AUDIO_CACHE))
    two = pcm16_to_ulaw(synthesize_hebrew("ומה עוד יש לכם להציע", cache_dir=AUDIO_CACHE))
    pause = bytes([ULAW_SILENCE_BYTE]) * (8 * PAUSE_MS)
    async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call:
        await call.wait_until(lambda: len(call.metrics.marks) >= 1 and not call.playback.busy, 20)
        call.say(one)
        talking_on = call.say(pause + two)
        await call.wait_until(lambda: talking_on.response_latency_ms is not None, 30)
        assert talking_on.response_latency_ms is not None, "the caller got no answer"
        await call.wait_until(lambda: not call.playback.busy, 20)
    async with httpx.AsyncClient(base_url=base) as http:
        turns = await _stored_turns(http)
    user = [t["text"] for t in turns if t["role"] == "user"]
    assert len(user) == 1 and len(user[0]) <= 1000, [len(u) for u in user]


# (what the caller says = the final, the recogniser's partial while hearing it, what the
# final does to the reply started on that partial, the intent the caller is answered on)
PARTIAL_CASES = [
    ("אני לא רוצה", "אני כן רוצה", "redone", "not_interested"),  # a negation: redone
    ("כן אני רוצה.", "כֵּן, אני רוצה", "kept", None),  # niqqud and punctuation: kept
]


@pytest.mark.parametrize(("said", "partial", "outcome", "intent"), PARTIAL_CASES)
async def test_a_reply_started_on_a_partial_answers_the_final_words(
    tmp_path: Path, said: str, partial: str, outcome: str, intent: str | None
) -> None:
    """Streaming recognition whose partial differs from the final: in a negation ('אני כן
    רוצה' heard as the caller says 'אני לא רוצה') the reply started on the partial is
    redone and the caller is answered on the refusal; in niqqud and punctuation only it is
    kept. Either way the stored caller turn is the final's words."""
    async with recognising_sim(seed=12, phrases=[said]) as sim:
        sim.config.realtime = RealtimeBehaviour(misheard_partials={said: partial})
        async with call_server(
            tmp_path,
            sim,
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            stt_mode="streaming",
            stt_streaming_final_timeout_s=5.0,
        ) as (base, _):
            async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call:
                await call.wait_until(
                    lambda: len(call.metrics.marks) >= 1 and not call.playback.busy, 20
                )
                marks_before = len(call.metrics.marks)
                speech = call.say(pcm16_to_ulaw(hebrew_speech(said)))
                await call.wait_until(lambda: speech.response_latency_ms is not None, 20)
                assert speech.response_latency_ms is not None, "the caller heard nothing back"
                await call.wait_until(
                    lambda: (
                        call.ended
                        or (len(call.metrics.marks) > marks_before and not call.playback.busy)
                    ),
                    30,
                )
            async with httpx.AsyncClient(base_url=base) as http:
                turns = await _stored_turns(http)
                metrics = (await http.get("/metrics")).text
    counted = f'voicebot_speculative_partial_replies_total{{outcome="{outcome}"}} 1.0'
    assert counted in metrics, [m for m in metrics.splitlines() if "partial_replies_total" in m]
    assert [t["text"] for t in turns if t["role"] == "user"] == [said]
    if intent is not None:
        assert [t for t in turns if t["role"] == "assistant"][1]["intent"] == intent
