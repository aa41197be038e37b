"""Phone audio: μ-law codec, resampling to 8 kHz, outbound framing, VAD and endpointing.

Everything here is synchronous, per-stream state plus pure functions, cheap enough
to run on the event loop once per 20 ms frame (see scripts/bench_audio.py).
"""

from __future__ import annotations

from voicebot.audio.codec import (
    FRAME_BYTES_PCM16,
    FRAME_BYTES_ULAW,
    FRAME_MS,
    SAMPLE_RATE_HZ,
    ULAW_SILENCE_BYTE,
    pcm16_to_ulaw,
    ulaw_to_pcm16,
)
from voicebot.audio.endpointing import (
    DEFAULT_ENDPOINT_SILENCE_MS,
    Endpointer,
    SpeechEnded,
    SpeechStarted,
)
from voicebot.audio.framing import UlawFramer, fade_in, fade_out
from voicebot.audio.resample import Resampler
from voicebot.audio.vad import GateMode, VoiceActivityDetector

__all__ = [
    "DEFAULT_ENDPOINT_SILENCE_MS",
    "FRAME_BYTES_PCM16",
    "FRAME_BYTES_ULAW",
    "FRAME_MS",
    "SAMPLE_RATE_HZ",
    "ULAW_SILENCE_BYTE",
    "Endpointer",
    "GateMode",
    "Resampler",
    "SpeechEnded",
    "SpeechStarted",
    "UlawFramer",
    "VoiceActivityDetector",
    "fade_in",
    "fade_out",
    "pcm16_to_ulaw",
    "ulaw_to_pcm16",
]
