"""LiveRecognition between the endpointer and a transcription session: what audio is
streamed for an utterance, and when it is committed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np

from voicebot.audio.codec import FRAME_BYTES_ULAW, pcm16_to_ulaw, ulaw_to_pcm16
from voicebot.audio.endpointing import (
    PREROLL_MS,
    Endpointer,
    SpeechEnded,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
)
from voicebot.call.live_stt import LiveRecognition
from voicebot.errors import ProviderError
from voicebot.providers.base import Transcript


class RecordingSession:
    """A TranscriptionSession that keeps what it was fed (our own interface, no vendor)."""

    def __init__(self, *, ready: bool = True) -> None:
        self.ready = ready
        self.partial_text = ""
        self.fed: list[bytes] = []
        self.begun = 0
        self.commits = 0

    def begin(self) -> bool:
        self.begun += 1
        self.fed.clear()
        return self.ready

    def feed(self, ulaw: bytes) -> None:
        if self.ready:
            self.fed.append(ulaw)

    def commit(self, *, reopen: bool = False) -> asyncio.Future[Transcript]:
        self.commits += 1
        future: asyncio.Future[Transcript] = asyncio.get_running_loop().create_future()
        if self.ready:
            future.set_result(Transcript(text="כן", language="he", duration_ms=None))
        else:
            future.set_exception(ProviderError("down"))
        return future

    async def partials(self) -> AsyncIterator[str]:
        return
        yield  # pragma: no cover

    async def run(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def _line() -> list[bytes]:
    """0.6 s of line noise, 1 s of a voiced tone, 1.2 s of noise, as 20 ms μ-law frames."""
    rng = np.random.default_rng(1)
    t = np.arange(8000) / 8000
    tone = 6000 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))
    signal = np.concatenate([np.zeros(4800), tone, np.zeros(9600)])
    signal = signal + rng.normal(0, 60, signal.size)
    ulaw = pcm16_to_ulaw(signal.clip(-32767, 32767).astype("<i2").tobytes())
    return [ulaw[i : i + FRAME_BYTES_ULAW] for i in range(0, len(ulaw), FRAME_BYTES_ULAW)]


async def test_an_utterance_is_streamed_from_its_preroll_and_committed_at_its_end() -> None:
    """The session gets the frames from PREROLL_MS before the onset to the end decision,
    as Twilio sent them, and one commit whose future comes back with SpeechEnded."""
    session = RecordingSession()
    live = LiveRecognition(session)
    endpointer = Endpointer(endpoint_silence_ms=500)
    frames = _line()
    onset_ms = end_index = None
    finals = []
    for index, frame in enumerate(frames):
        event = endpointer.process(ulaw_to_pcm16(frame))
        final = live.on_frame(frame, event, stream_ms=endpointer.stream_ms)
        if isinstance(event, SpeechStarted):
            onset_ms = event.onset_ms
        if isinstance(event, SpeechEnded):
            end_index = index
        if final is not None:
            finals.append(await final)
    assert onset_ms is not None and end_index is not None
    assert session.begun == 1 and session.commits == 1
    assert [t.text for t in finals] == ["כן"]
    first = (onset_ms - PREROLL_MS) // 20
    assert session.fed == frames[first : end_index + 1]


async def test_a_session_that_is_down_streams_nothing_and_fails_the_commit() -> None:
    """Down at the onset: no audio is sent, and the utterance's future fails (batch STT
    then takes the turn)."""
    session = RecordingSession(ready=False)
    live = LiveRecognition(session)
    endpointer = Endpointer(endpoint_silence_ms=500)
    failures = 0
    for frame in _line():
        event = endpointer.process(ulaw_to_pcm16(frame))
        final = live.on_frame(frame, event, stream_ms=endpointer.stream_ms)
        if final is not None:
            try:
                await final
            except ProviderError:
                failures += 1
    assert session.fed == []
    assert failures == 1


async def test_a_pause_commits_and_a_resume_sends_the_whole_utterance_again() -> None:
    """A pause commits the audio so far (its final is returned for a speculative reply);
    when the caller resumes, a new item gets the whole utterance again, and the end of the
    turn commits it; a turn that ends on the pause reuses the pause's commit."""
    session = RecordingSession()
    live = LiveRecognition(session)
    frame = b"\x7f" * 160
    assert live.on_frame(frame, SpeechStarted(onset_ms=0), stream_ms=20) is None
    live.on_frame(frame, None, stream_ms=40)
    paused = live.on_frame(frame, SpeechPaused(onset_ms=0, end_ms=40, audio=b""), stream_ms=60)
    assert paused is not None
    assert session.commits == 1
    live.on_frame(frame, None, stream_ms=80)  # silence while paused: not streamed
    live.on_frame(frame, SpeechResumed(at_ms=80), stream_ms=100)
    assert session.begun == 2
    assert session.fed == [frame * 5]  # everything since the onset, once
    paused = live.on_frame(frame, SpeechPaused(onset_ms=0, end_ms=100, audio=b""), stream_ms=120)
    ended = live.on_frame(frame, SpeechEnded(onset_ms=0, end_ms=100, audio=b""), stream_ms=140)
    assert session.commits == 2
    assert ended is paused


async def test_speech_from_the_first_frame_is_streamed_from_that_frame() -> None:
    """Voice from the stream's first frame over the agent (the greeting), confirmed only
    once a quieter frame shows the line's floor, is streamed from the first frame on."""
    rng = np.random.default_rng(2)
    t = np.arange(4800) / 8000
    tone = 6000 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))
    signal = np.concatenate([tone, np.zeros(9600)]) + rng.normal(0, 60, 14400)
    ulaw = pcm16_to_ulaw(signal.clip(-32767, 32767).astype("<i2").tobytes())
    frames = [ulaw[i : i + FRAME_BYTES_ULAW] for i in range(0, len(ulaw), FRAME_BYTES_ULAW)]
    session = RecordingSession()
    live = LiveRecognition(session)
    endpointer = Endpointer(endpoint_silence_ms=500)
    started_at = end_index = None
    for index, frame in enumerate(frames):
        event = endpointer.process(ulaw_to_pcm16(frame), agent_speaking=True)
        live.on_frame(frame, event, stream_ms=endpointer.stream_ms)
        if isinstance(event, SpeechStarted):
            assert event.onset_ms == 0
            started_at = endpointer.stream_ms
        if isinstance(event, SpeechEnded):
            end_index = index
    assert started_at is not None and started_at > 600 - PREROLL_MS  # past the old ring
    assert end_index is not None
    assert session.fed == frames[: end_index + 1]
