"""RealtimeTranscriptionSession against the simulator's Realtime websocket, with the real
openai client: μ-law in, partials while speaking, the final after the commit, and every
failure surfacing as ProviderError."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from tests.unit.providers.conftest import as_heard, needs_espeak, speak
from voicebot.audio.codec import FRAME_BYTES_ULAW, pcm16_to_ulaw
from voicebot.config import ProviderEndpoint
from voicebot.errors import ProviderError, ProviderTimeoutError
from voicebot.providers.openai_realtime_stt import RealtimeTranscriber, RealtimeTranscriptionSession
from voicebot.testing.provider_sim import ProviderSim
from voicebot.testing.realtime_sim import RealtimeBehaviour
from voicebot.testing.server import free_port

BOOKING = "אני רוצה לקבוע פגישה ביום שלישי בבוקר"
OTHER = "לא תודה, אין לי זמן עכשיו"
READY_TIMEOUT_S = 5.0


@contextlib.asynccontextmanager
async def running(
    session: RealtimeTranscriptionSession, *, wait: bool = True
) -> AsyncIterator[RealtimeTranscriptionSession]:
    """The session's connection task running (as a call's TaskGroup runs it)."""
    task = asyncio.create_task(session.run())
    try:
        if wait:
            assert await session.wait_ready(READY_TIMEOUT_S), "session never became ready"
        yield session
    finally:
        await session.aclose()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def frames(ulaw: bytes) -> list[bytes]:
    return [ulaw[i : i + FRAME_BYTES_ULAW] for i in range(0, len(ulaw), FRAME_BYTES_ULAW)]


async def say(session: RealtimeTranscriptionSession, ulaw: bytes, *, realtime: bool) -> None:
    """Feed an utterance in 20 ms frames (paced like a caller when ``realtime``)."""
    assert session.begin()
    for frame in frames(ulaw):
        session.feed(frame)
        await asyncio.sleep(0.02 if realtime else 0)


@pytest.fixture
async def booking_ulaw(sim: ProviderSim) -> bytes:
    """A registered phrase as a caller's line delivers it: 8 kHz μ-law with noise."""
    booking = await speak(BOOKING)
    sim.register_phrase(BOOKING, booking, 22_050)
    sim.register_phrase(OTHER, await speak(OTHER), 22_050)
    return pcm16_to_ulaw(as_heard(booking, rate_hz=8000))


def transcriber(sim: ProviderSim, **kwargs: float) -> RealtimeTranscriber:
    return RealtimeTranscriber(sim.endpoint("stt"), **kwargs)  # type: ignore[arg-type]


@needs_espeak
async def test_a_committed_utterance_comes_back_as_the_registered_phrase(
    sim: ProviderSim, booking_ulaw: bytes
) -> None:
    """μ-law frames fed as they come and a commit give the phrase's text as the final."""
    stt = transcriber(sim)
    async with running(stt.open_session()) as session:
        await say(session, booking_ulaw, realtime=False)
        transcript = await session.commit()
    await stt.aclose()
    assert transcript.text == BOOKING
    assert transcript.duration_ms is not None and transcript.duration_ms > 1000
    [commit] = sim.realtime_commits
    assert commit.outcome == "completed"
    # The simulator decoded the payload as μ-law 8 kHz: the audio length is the fed bytes'.
    assert abs(commit.audio_ms - len(booking_ulaw) // 8) <= 20


@needs_espeak
async def test_partials_arrive_while_the_caller_speaks(
    sim: ProviderSim, booking_ulaw: bytes
) -> None:
    """Deltas before the commit build up partial_text as a prefix of what is said."""
    stt = transcriber(sim)
    seen: list[str] = []
    async with running(stt.open_session()) as session:

        async def collect() -> None:
            async for text in session.partials():
                seen.append(text)

        collector = asyncio.create_task(collect())
        await say(session, booking_ulaw, realtime=True)
        before_commit = session.partial_text
        transcript = await session.commit()
        collector.cancel()
    await stt.aclose()
    assert before_commit, "no partial transcript before the commit"
    assert BOOKING.startswith(before_commit)
    assert seen and all(BOOKING.startswith(text) for text in seen)
    assert transcript.text == BOOKING


@needs_espeak
async def test_the_final_waits_for_the_server_and_is_never_invented(
    sim: ProviderSim, booking_ulaw: bytes
) -> None:
    """The final comes no sooner than the simulator's configured delay after the commit."""
    sim.config.realtime = RealtimeBehaviour(final_delay_ms=300, partial_interval_ms=0)
    stt = transcriber(sim)
    async with running(stt.open_session()) as session:
        await say(session, booking_ulaw, realtime=False)
        started = time.perf_counter()
        transcript = await session.commit()
        elapsed_s = time.perf_counter() - started
    await stt.aclose()
    assert transcript.text == BOOKING
    assert elapsed_s >= 0.3


@needs_espeak
async def test_an_error_event_fails_the_commit_and_the_session_goes_on(
    sim: ProviderSim, booking_ulaw: bytes
) -> None:
    """An `error` answering the commit fails that utterance only; the next one streams."""
    sim.config.realtime = RealtimeBehaviour(commit_error_rate=1.0)
    stt = transcriber(sim)
    async with running(stt.open_session()) as session:
        await say(session, booking_ulaw, realtime=False)
        with pytest.raises(ProviderError, match="server had an error"):
            await session.commit()
        sim.config.realtime = RealtimeBehaviour()
        await say(session, booking_ulaw, realtime=False)
        assert (await session.commit()).text == BOOKING
        assert session.connects == 1


@needs_espeak
async def test_a_failed_transcription_fails_the_commit(
    sim: ProviderSim, booking_ulaw: bytes
) -> None:
    """`…transcription.failed` for the committed item is a ProviderError."""
    sim.config.realtime = RealtimeBehaviour(transcription_failed_rate=1.0)
    stt = transcriber(sim)
    async with running(stt.open_session()) as session:
        await say(session, booking_ulaw, realtime=False)
        with pytest.raises(ProviderError, match="transcription failed"):
            await session.commit()


async def test_a_too_short_commit_is_refused_by_the_server(sim: ProviderSim) -> None:
    """Committing under 100 ms of audio is answered by an error naming the commit."""
    stt = transcriber(sim)
    async with running(stt.open_session()) as session:
        assert session.begin()
        session.feed(b"\xff" * FRAME_BYTES_ULAW)
        with pytest.raises(ProviderError, match="buffer too small"):
            await session.commit()


@needs_espeak
async def test_a_socket_closed_mid_stream_fails_the_utterance_and_reconnects(
    sim: ProviderSim, booking_ulaw: bytes
) -> None:
    """The server dropping the socket mid-utterance fails its commit at once; the session
    reconnects and streams the next utterance."""
    sim.config.realtime = RealtimeBehaviour(close_after_appends=3)
    stt = RealtimeTranscriber(sim.endpoint("stt"))
    session = stt.open_session()
    session._reconnect_min_s = 0.05
    async with running(session):
        await say(session, booking_ulaw, realtime=True)
        with pytest.raises(ProviderError, match="closed"):
            await session.commit()
        sim.config.realtime = RealtimeBehaviour()
        assert await session.wait_ready(READY_TIMEOUT_S)
        await say(session, booking_ulaw, realtime=False)
        assert (await session.commit()).text == BOOKING
        assert session.connects == 2


async def test_a_refused_handshake_leaves_the_session_down(sim: ProviderSim) -> None:
    """A wrong key (HTTP 401 at the handshake): no utterance streams, each commit fails at
    once, and the session keeps retrying."""
    endpoint = sim.endpoint("stt")  # carries "sim-key"
    sim.config.api_key = "the-right-key"
    stt = RealtimeTranscriber(endpoint)
    session = stt.open_session()
    session._reconnect_min_s = 0.05
    async with running(session, wait=False):
        assert not await session.wait_ready(0.5)
        assert not session.begin()
        with pytest.raises(ProviderError, match="not connected"):
            await session.commit()
        assert session.failures >= 2
    await stt.aclose()


async def test_connection_refused_is_a_provider_error() -> None:
    """Nothing listening: the session reports the provider unreachable and stays down."""
    endpoint = ProviderEndpoint(
        stage="stt",
        base_url=f"http://127.0.0.1:{free_port()}/v1",
        api_key=SecretStr("k"),
        model="m",
        timeout_s=1.0,
        configured=True,
    )
    stt = RealtimeTranscriber(endpoint)
    session = stt.open_session()
    async with running(session, wait=False):
        assert not await session.wait_ready(0.3)
        assert session.failures >= 1
        assert not session.begin()
    await stt.aclose()


@needs_espeak
async def test_no_final_in_time_is_a_timeout(sim: ProviderSim, booking_ulaw: bytes) -> None:
    """A stalled final fails the commit after final_timeout_s, not later."""
    sim.config.realtime = RealtimeBehaviour(final_delay_ms=5_000)
    stt = transcriber(sim, final_timeout_s=0.3)
    async with running(stt.open_session()) as session:
        await say(session, booking_ulaw, realtime=False)
        started = time.perf_counter()
        with pytest.raises(ProviderTimeoutError):
            await session.commit()
        assert time.perf_counter() - started < 2.0


@needs_espeak
async def test_a_reopened_commit_splits_the_utterance_into_two_finals(
    sim: ProviderSim, booking_ulaw: bytes
) -> None:
    """commit(reopen=True) at a pause transcribes what was said so far and streaming goes
    on: the next commit's final holds what followed, partial_text all of it."""
    other = await speak(OTHER)
    other_ulaw = pcm16_to_ulaw(as_heard(other, rate_hz=8000))
    stt = transcriber(sim)
    async with running(stt.open_session()) as session:
        await say(session, booking_ulaw, realtime=False)
        first = session.commit(reopen=True)
        for frame in frames(other_ulaw):
            session.feed(frame)
        second = session.commit()
        assert (await first).text == BOOKING
        assert (await second).text == OTHER
    await stt.aclose()
    assert [c.transcript for c in sim.realtime_commits] == [BOOKING, OTHER]
