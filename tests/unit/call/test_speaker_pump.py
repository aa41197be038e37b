"""The speaker sends what it queues as soon as it is due (Playout.pump), for a reply
played at once and for a speculative reply after its release, never while it is held."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import structlog

from tests.unit.call.conftest import Wire
from voicebot.call.playout import Playout
from voicebot.call.recorder import TurnTimings
from voicebot.call.speaker import Speaker
from voicebot.call.speculation import HeldSink

RATE_HZ = 8000
CHUNK_SAMPLES = 1600  # 200 ms per chunk


class GatedTone:
    """A TTS that streams a tone in 200 ms chunks, each when the test lets it."""

    sample_rate_hz = RATE_HZ
    voice_id = "test:gated"

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.gates = [asyncio.Event() for _ in range(chunks)]

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        t = np.arange(CHUNK_SAMPLES) / RATE_HZ
        tone = (np.sin(2 * np.pi * 440 * t) * 20000).astype("<i2").tobytes()
        for gate in self.gates:
            await gate.wait()
            yield tone

    async def aclose(self) -> None:
        return None


class NoPhrases:
    async def lookup(self, voice_id: str, text: str) -> bytes | None:
        return None


def _speaker(tts: GatedTone, playout: Playout) -> Speaker:
    services: Any = SimpleNamespace(
        tts=tts,
        tts_fallback=None,
        phrases=NoPhrases(),
        settings=SimpleNamespace(tts_reuse_sentences=False),
    )
    return Speaker(services, playout)


def _handle(sink: Any) -> Any:
    return SimpleNamespace(
        sink=sink,
        interrupted=None,
        timings=TurnTimings(started_at=0.0),
        log=structlog.get_logger(),
    )


async def test_a_released_reply_sends_its_later_chunks_at_once() -> None:
    """No playout task runs here, so only the speaker's pump can send: nothing while the
    reply is held; after its release, the next chunk's frames go out as it arrives."""
    wire = Wire()
    playout = Playout(wire.media, wire.mark, wire.clear, clock=lambda: 100.0)
    tts = GatedTone(chunks=2)
    sink = HeldSink(playout)
    handle = _handle(sink)
    utterance = sink.new_utterance("מחר בעשר מתאים לך?")
    speaking = asyncio.create_task(_speaker(tts, playout)._sentence(utterance, handle))
    tts.gates[0].set()
    await asyncio.sleep(0.01)
    assert wire.sent == [] and sink.held_frames > 0
    sink.release()
    tts.gates[1].set()
    await asyncio.sleep(0.01)
    await speaking
    # The held chunk and the new one: the 200 ms lead's worth, sent by the speaker's task.
    assert wire.sent == ["media"] * 10


async def test_a_reply_played_at_once_sends_its_first_chunk_at_once() -> None:
    wire = Wire()
    playout = Playout(wire.media, wire.mark, wire.clear, clock=lambda: 100.0)
    tts = GatedTone(chunks=1)
    utterance = playout.new_utterance("שלום")
    speaking = asyncio.create_task(_speaker(tts, playout)._sentence(utterance, _handle(playout)))
    tts.gates[0].set()
    await speaking
    assert wire.sent == ["media"] * 10
