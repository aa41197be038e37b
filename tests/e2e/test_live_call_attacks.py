"""Attacks on a live call as a caller would make them: speech that resumes while the reply
to the last utterance is still being prepared (the reply must never start over the caller,
and both utterances are answered together)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tests.e2e.conftest import (
    call_server,
    hebrew_speech,
    recognising_sim,
    stored_turns,
)
from voicebot.audio.codec import ULAW_SILENCE_BYTE, pcm16_to_ulaw
from voicebot.config import Settings
from voicebot.store.redis import KEY_PREFIX as TURN_KEY_PREFIX
from voicebot.testing.hebrew_audio import synthesize_hebrew
from voicebot.testing.provider_sim import ProviderSim, SimConfig, StageBehaviour
from voicebot.testing.realtime_sim import RealtimeBehaviour
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
    async with call_server(
        tmp_path, sim, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN
    ) as running:
        yield running


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
        await call.wait_for_greeting(20)
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
        turns = await stored_turns(http)
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
        await call.wait_for_greeting(20)
        call.say(one)
        talking_on = call.say(pause + two)
        await call.wait_until(lambda: talking_on.response_latency_ms is not None, 30)
        assert talking_on.response_latency_ms is not None, "the caller got no answer"
        await call.wait_until(lambda: not call.playback.busy, 20)
    async with httpx.AsyncClient(base_url=base) as http:
        turns = await stored_turns(http)
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
                await call.wait_for_greeting(20)
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
                turns = await stored_turns(http)
                metrics = (await http.get("/metrics")).text
    counted = f'voicebot_speculative_partial_replies_total{{outcome="{outcome}"}} 1.0'
    assert counted in metrics, [m for m in metrics.splitlines() if "partial_replies_total" in m]
    assert [t["text"] for t in turns if t["role"] == "user"] == [said]
    if intent is not None:
        assert [t for t in turns if t["role"] == "assistant"][1]["intent"] == intent


def _restart_redis(redis_url: str) -> subprocess.Popen[bytes]:
    """A fresh, empty redis-server on the port of ``redis_url`` (a restart without data)."""
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    binary = shutil.which("redis-server")
    assert binary is not None
    proc = subprocess.Popen(  # noqa: S603 - fixed arguments, our own binary
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc


async def _saved_history(redis_url: str, call_sid: str) -> list[str]:
    """The caller's words in the call's turn state as Redis holds it ([] when absent)."""
    client = Redis.from_url(redis_url)
    try:
        raw = await client.get(TURN_KEY_PREFIX + call_sid)
    except (RedisError, OSError):
        return []
    finally:
        await client.aclose()
    if raw is None:
        return []
    return [t["content"] for t in json.loads(raw)["history"] if t["role"] == "user"]


async def test_redis_killed_and_restarted_mid_call_gets_the_turn_state_back(
    tmp_path: Path, own_redis: tuple[str, subprocess.Popen[bytes]]
) -> None:
    """Redis is killed after the greeting and comes back empty: the turn answered during
    the outage is in the new Redis (written back from memory), and so is the next one;
    the call goes on throughout."""
    redis_url, proc = own_redis
    async with (
        recognising_sim(seed=13, phrases=[FIRST, SECOND]) as sim,
        call_server(
            tmp_path, sim, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, redis_url=redis_url
        ) as (base, _),
        place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call,
    ):
        await call.wait_for_greeting(20)
        proc.kill()
        proc.wait()
        first = call.say(pcm16_to_ulaw(hebrew_speech(FIRST)))
        await call.wait_until(lambda: first.response_latency_ms is not None, 20)
        assert first.response_latency_ms is not None, "no answer with Redis down"
        await call.wait_until(lambda: not call.playback.busy, 20)
        restarted = _restart_redis(redis_url)
        try:
            for _ in range(50):
                if await _saved_history(redis_url, call.call_sid) == [FIRST]:
                    break
                await asyncio.sleep(0.1)
            assert await _saved_history(redis_url, call.call_sid) == [FIRST]
            second = call.say(pcm16_to_ulaw(hebrew_speech(SECOND)))
            await call.wait_until(lambda: second.response_latency_ms is not None, 20)
            assert second.response_latency_ms is not None, "no answer after the restart"
            await call.wait_until(lambda: not call.playback.busy, 20)
            assert await _saved_history(redis_url, call.call_sid) == [FIRST, SECOND]
            assert not call.ended
        finally:
            restarted.kill()
            restarted.wait()
