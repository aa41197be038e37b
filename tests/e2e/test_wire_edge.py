"""The Media Stream edge takes anything: binary frames, huge and deeply nested JSON and
unknown events are skipped mid-call; an unsigned handshake is refused; a stream token
serves one websocket only (a replay during or after the call is closed with 1008)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import call_server_settings
from voicebot.audio.codec import pcm16_to_ulaw
from voicebot.config import Settings
from voicebot.db.engine import create_engine, create_sessionmaker
from voicebot.db.models import Call
from voicebot.telephony import twilio_side as wire
from voicebot.testing.hebrew_audio import synthesize_hebrew
from voicebot.testing.provider_sim import ProviderSim, SimConfig
from voicebot.testing.server import free_port, running_server
from voicebot.testing.twilio_caller import EncodedSpeech, SimulatedCall, open_stream, place_call

ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "wire-edge-auth-token"
ANSWER = "כן, אפשר לדבר עכשיו"
AUDIO_CACHE = Path(".cache/hebrew_audio")


@pytest.fixture
async def sim() -> AsyncIterator[ProviderSim]:
    async with ProviderSim(SimConfig(seed=7)) as running:
        running.register_phrase(ANSWER, synthesize_hebrew(ANSWER, cache_dir=AUDIO_CACHE), 8000)
        yield running


@pytest.fixture
async def server(tmp_path: Path, sim: ProviderSim) -> AsyncIterator[tuple[str, Settings]]:
    port = free_port()
    settings = call_server_settings(
        tmp_path, port=port, sim=sim, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN
    )
    async with running_server(settings, port=port) as base:
        yield base, settings


def _replay(base: str, call: SimulatedCall) -> AbstractAsyncContextManager[SimulatedCall]:
    return open_stream(
        base,
        stream_url=call.stream_url,
        parameters=call.parameters,
        call_sid=call.call_sid,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
    )


async def _stream_row(settings: Settings) -> tuple[str | None, object]:
    """The call's claim once it committed: a stream handed over by the webhook greets
    first and claims beside the greeting, so the row may lag the first frame."""
    engine = create_engine(settings)
    try:
        for _ in range(50):
            async with create_sessionmaker(engine)() as db:
                call = (await db.scalars(select(Call))).one()
            if call.stream_sid is not None:
                break
            await asyncio.sleep(0.05)
        return call.stream_sid, call.stream_started_at
    finally:
        await engine.dispose()


async def test_junk_frames_are_skipped_and_the_call_goes_on(
    server: tuple[str, Settings],
) -> None:
    """A binary frame, 1 MB of JSON, 30 000-deep nesting and unknown events mid-greeting
    leave the call up: the agent's audio keeps coming and its marks keep being echoed."""
    base, _ = server
    async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call:
        await call.wait_until(lambda: call.metrics.agent_audio_ms > 200, 10)
        junk: list[str | bytes] = [
            b"\x00\xff binary frame",
            '{"event": "media", "pad": "' + "x" * 1_000_000 + '"}',
            "[" * 30_000 + "]" * 30_000,
            '{"event": "media", "media": ' + "{" * 5_000 + "}" * 5_000 + "}",
            '{"event": "x-future-event", "streamSid": "' + call.stream_sid + '"}',
            '{"event": null}',
        ]
        for frame in junk:
            await call.send_raw(frame)
        before_ms = call.metrics.agent_audio_ms
        await call.wait_until(lambda: len(call.metrics.marks) >= 1, 20)
        await call.wait_until(lambda: call.metrics.agent_audio_ms > before_ms + 200, 10)
        assert not call.ended
        assert not call.metrics.protocol_errors


async def test_media_payloads_of_any_length_are_heard(server: tuple[str, Settings]) -> None:
    """Caller speech in 100-byte payloads (12.5 ms, not Twilio's 20 ms) between 160-byte
    silence frames is cut back into 20 ms frames: the turn is heard and answered (it used
    to be dropped frame by frame, without a word in the log)."""
    base, _ = server
    ulaw = pcm16_to_ulaw(synthesize_hebrew(ANSWER, cache_dir=AUDIO_CACHE))
    odd = EncodedSpeech(
        frames_b64=tuple(wire.encode_payload(ulaw[i : i + 100]) for i in range(0, len(ulaw), 100))
    )
    async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call:
        await call.wait_for_greeting(20)
        speech = call.say(odd)
        await call.wait_until(lambda: speech.response_latency_ms is not None, 20)
        assert not call.ended
        async with httpx.AsyncClient(base_url=base) as http, asyncio.timeout(20):
            while True:
                calls = (await http.get("/api/v1/calls")).json()["items"]
                detail = (await http.get(f"/api/v1/calls/{calls[0]['id']}")).json()
                said = [t["text"] for t in detail["turns"] if t["role"] == "user"]
                if said:
                    break
                await asyncio.sleep(0.1)
    assert said == [ANSWER]


async def test_unsigned_handshake_is_refused(server: tuple[str, Settings]) -> None:
    """Twilio signs every handshake: one without X-Twilio-Signature never gets a socket."""
    base, _ = server
    with pytest.raises(InvalidStatus) as info:
        async with place_call(
            base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, sign_handshake=False
        ):
            pass
    assert info.value.response.status_code == httpx.codes.FORBIDDEN


async def test_stream_token_serves_one_socket(server: tuple[str, Settings]) -> None:
    """The first stream claims the call (stream_sid, stream_started_at stored, beside
    its greeting); the same token on a second socket is closed with 1008 during the call
    and after it, and the live call is untouched."""
    base, settings = server
    async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call:
        await call.wait_until(lambda: call.metrics.first_agent_media_ms is not None, 10)
        stream_sid, started_at = await _stream_row(settings)
        assert stream_sid == call.stream_sid
        assert started_at is not None
        async with _replay(base, call) as replay:
            await replay.wait_until(lambda: replay.ended, 5)
            assert replay.close_code == 1008
            assert replay.metrics.first_agent_media_ms is None
        before_ms = call.metrics.agent_audio_ms
        await call.wait_until(lambda: call.metrics.agent_audio_ms > before_ms + 100, 10)
        assert not call.ended
    await asyncio.sleep(0.3)
    async with _replay(base, call) as late:
        await late.wait_until(lambda: late.ended, 5)
        assert late.close_code == 1008
    assert (await _stream_row(settings))[0] == call.stream_sid
