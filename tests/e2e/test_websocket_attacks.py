"""The media route's direct receive attacked as Twilio, a hostile caller and an operator
would: faults inside the read callback, frames after the end, bursts and closes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from structlog.contextvars import get_contextvars
from structlog.testing import capture_logs
from websockets.frames import Frame, Opcode

from tests.e2e.conftest import call_server, hebrew_speech, recognising_sim
from voicebot.audio.codec import pcm16_to_ulaw
from voicebot.call.playout import Playout
from voicebot.call.session import CallSession
from voicebot.call.speculator import Speculator
from voicebot.config import Settings
from voicebot.telephony import twilio_side as wire
from voicebot.testing.provider_sim import ProviderSim
from voicebot.testing.twilio_caller import place_call

ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "e2e-ws-attack-token"
ANSWER = "כן, אפשר לדבר עכשיו"
POISON = b"\x00" * 160  # a payload the planted bug in on_media fails on


@pytest.fixture
async def sim() -> AsyncIterator[ProviderSim]:
    async with recognising_sim(seed=5, phrases=[ANSWER]) as running:
        yield running


@pytest.fixture(params=["direct", "websockets-sansio"])
async def server(
    request: pytest.FixtureRequest, tmp_path: Path, sim: ProviderSim
) -> AsyncIterator[tuple[str, Settings]]:
    """The server with its own websocket protocol, and with uvicorn's (awaited path)."""
    async with call_server(
        tmp_path,
        sim,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        ws=None if request.param == "direct" else request.param,
        stt_timeout_s=1.0,
    ) as served:
        yield served


def plant_media_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    """on_media fails on POISON (a bug in the receive path), as it would on any frame."""
    original = CallSession._media

    def buggy(self: CallSession, ulaw: bytes) -> Any:
        if ulaw == POISON:
            raise ZeroDivisionError("a bug in on_media")
        return original(self, ulaw)

    monkeypatch.setattr(CallSession, "_media", buggy)


async def test_a_bug_in_on_media_ends_that_call_once_and_not_the_others(
    server: tuple[str, Settings], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A frame that makes on_media raise ends that call as internal_error (close 1011),
    logged once with its SID, no ASGI traceback nor receiver failure; the call beside
    it goes on."""
    base, _ = server
    plant_media_bug(monkeypatch)
    caplog.set_level(logging.INFO)
    with capture_logs() as logs:
        async with (
            place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as bad,
            place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as good,
        ):
            await bad.wait_until(lambda: bad.metrics.first_agent_media_ms is not None, 10)
            await good.wait_until(lambda: good.metrics.first_agent_media_ms is not None, 10)
            await bad.send_raw(_media(bad.stream_sid, POISON))
            await bad.wait_until(lambda: bad.ended, 5)
            agent_ms = good.metrics.agent_audio_ms
            await good.wait_until(lambda: good.metrics.agent_audio_ms > agent_ms + 500, 10)
            assert not good.ended
    assert (bad.close_code, bad.close_reason) == (1011, "internal_error")
    errors = [e for e in logs if e["event"] == "call.unexpected_error"]
    assert [e["call_sid"] for e in errors] == [bad.call_sid]
    assert errors[0].get("exc_info") is True
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in failures if r.name.startswith("uvicorn")] == []


def _media(stream_sid: str, payload: bytes, sequence_number: int = 10_000) -> str:
    return wire.inbound_media_message(
        stream_sid=stream_sid,
        sequence_number=sequence_number,
        chunk=sequence_number,
        timestamp_ms=sequence_number * 20,
        payload_b64=wire.encode_payload(payload),
    )


async def test_a_burst_of_two_utterances_over_the_agent_barges_in_once(
    server: tuple[str, Settings],
) -> None:
    """Two utterances over the greeting in one TCP read (frames Twilio held back, all
    taken in one read callback before any action runs): one `clear`, not one per
    utterance."""
    base, _ = server
    speech = pcm16_to_ulaw(hebrew_speech(ANSWER))
    frames = [speech[i : i + 160] for i in range(0, len(speech) - 159, 160)]
    silence = [b"\xff" * 160] * 60  # 1.2 s: the first utterance ends
    async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call:
        await call.wait_until(lambda: call.metrics.agent_audio_ms > 3000, 10)
        burst = [*frames, *silence, *frames, *silence]
        raw = b"".join(
            Frame(Opcode.TEXT, _media(call.stream_sid, f, 20_000 + i).encode()).serialize(mask=True)
            for i, f in enumerate(burst)
        )
        call.media_paused = True  # the burst is the caller's only audio meanwhile
        call._ws.transport.write(raw)
        await asyncio.sleep(2)
    assert call.metrics.clears == 1


async def test_media_after_stop_in_the_same_read_never_reaches_the_session(
    server: tuple[str, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`stop` and then media in one TCP read (a hostile or buggy peer): the call ends on
    the stop as the caller hanging up, and the audio behind it is never processed."""
    base, _ = server
    after_stop = b"\x01" * 160
    seen: list[bytes] = []
    original = CallSession._media

    def spy(self: CallSession, ulaw: bytes) -> Any:
        seen.append(ulaw)
        return original(self, ulaw)

    monkeypatch.setattr(CallSession, "_media", spy)
    async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call:
        await call.wait_until(lambda: call.metrics.first_agent_media_ms is not None, 10)
        stop = wire.stop_message(
            stream_sid=call.stream_sid,
            sequence_number=30_000,
            account_sid=ACCOUNT_SID,
            call_sid=call.call_sid,
        )
        texts = [stop, *(_media(call.stream_sid, after_stop, 30_001 + i) for i in range(20))]
        call.media_paused = True
        call._ws.transport.write(
            b"".join(Frame(Opcode.TEXT, t.encode()).serialize(mask=True) for t in texts)
        )
        await call.wait_until(lambda: call.ended, 5)
    assert (call.close_code, call.close_reason) == (1000, "stop")
    assert after_stop not in seen


async def test_a_bug_in_what_a_barge_in_starts_ends_the_call_as_internal_error(
    server: tuple[str, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller talks over the greeting and the `clear` it starts raises (a bug in the
    action the session runs for the frame): the call ends as internal_error (close
    1011), on the direct path as on the awaited one."""
    base, _ = server

    async def buggy_clear(self: Playout) -> list[Any]:
        raise ZeroDivisionError("a bug in clear")

    monkeypatch.setattr(Playout, "clear", buggy_clear)
    speech = pcm16_to_ulaw(hebrew_speech(ANSWER))
    async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call:
        await call.wait_until(lambda: call.metrics.agent_audio_ms > 2000, 10)
        call.say(speech)
        await call.wait_until(lambda: call.ended, 10)
    assert (call.close_code, call.close_reason) == (1011, "internal_error")


async def test_a_caller_vanishing_mid_frame_ends_its_call_quietly(
    server: tuple[str, Settings], caplog: pytest.LogCaptureFixture
) -> None:
    """The connection is reset in the middle of a burst, half a frame in flight: the call
    ends without an error logged, and the next call is answered as usual."""
    base, _ = server
    caplog.set_level(logging.INFO)
    speech = pcm16_to_ulaw(hebrew_speech(ANSWER))
    async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call:
        await call.wait_until(lambda: call.metrics.agent_audio_ms > 1000, 10)
        raw = b"".join(
            Frame(Opcode.TEXT, _media(call.stream_sid, speech[i : i + 160], i).encode()).serialize(
                mask=True
            )
            for i in range(0, 160 * 100, 160)
        )
        call.media_paused = True
        call._ws.transport.write(raw[: len(raw) - 100])
        call._ws.transport.abort()
        await asyncio.sleep(1)
    async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as next_call:
        await next_call.wait_until(lambda: next_call.metrics.first_agent_media_ms is not None, 10)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == []


async def test_media_behind_a_key_waits_until_the_key_is_handled(
    server: tuple[str, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key whose handling takes a while (the reply's interrupt awaits its tasks): the
    media Twilio sent after it is processed after it, not in the middle of it."""
    base, _ = server
    order: list[str] = []
    original_media, original_dtmf = CallSession._media, CallSession.on_dtmf

    def media_spy(self: CallSession, ulaw: bytes) -> Any:
        order.append("media")
        return original_media(self, ulaw)

    async def slow_dtmf(self: CallSession, digit: str) -> None:
        order.append("dtmf")
        await asyncio.sleep(0.3)
        await original_dtmf(self, digit)
        order.append("dtmf handled")

    monkeypatch.setattr(CallSession, "_media", media_spy)
    monkeypatch.setattr(CallSession, "on_dtmf", slow_dtmf)
    async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call:
        await call.wait_until(lambda: call.metrics.first_agent_media_ms is not None, 10)
        await call.send_dtmf("5")
        await call.wait_until(lambda: "dtmf handled" in order, 5)
        await asyncio.sleep(0.1)
    assert order.index("dtmf handled") == order.index("dtmf") + 1
    assert order[-1] == "media"  # the media behind the key was processed, after it


async def test_frames_taken_in_the_read_callback_log_as_their_call(
    server: tuple[str, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two calls at once: every frame each session processes, and every task the frames
    start (a reply speculated at a pause), runs with that call's SID in the log context."""
    base, _ = server
    seen: dict[str, set[object]] = {"media": set(), "speculation": set()}
    original_media, original_speculate = CallSession._media, Speculator._run

    def media_spy(self: CallSession, ulaw: bytes) -> Any:
        seen["media"].add((self.call_sid, get_contextvars().get("call_sid")))
        return original_media(self, ulaw)

    async def speculation_spy(self: Speculator, spec: Any) -> None:
        seen["speculation"].add((self._call.call_sid, get_contextvars().get("call_sid")))
        await original_speculate(self, spec)

    monkeypatch.setattr(CallSession, "_media", media_spy)
    monkeypatch.setattr(Speculator, "_run", speculation_spy)
    speech = pcm16_to_ulaw(hebrew_speech(ANSWER))
    async with (
        place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as first,
        place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as second,
    ):
        for call in (first, second):
            await call.wait_for_greeting(20)
        utterances = [first.say(speech), second.say(speech)]
        for call, utterance in zip((first, second), utterances, strict=True):
            await call.wait_until(lambda u=utterance: u.response_latency_ms is not None, 20)
    sids = {first.call_sid, second.call_sid}
    assert {sid for sid, _ in seen["media"]} == sids
    assert all(sid == logged for sid, logged in seen["media"] | seen["speculation"])
    assert seen["speculation"]
