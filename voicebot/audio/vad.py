"""Per-frame voice activity: webrtcvad gated by an adaptive noise-floor energy test.

This module owns the decision "is this 20 ms inbound frame speech?". webrtcvad's
GMM tells voice-like spectra from others but fires on steady line noise and on
faint echo; the energy gate adds two tests on top: the frame must stand a margin
above the tracked noise floor, and above an absolute level. A stricter pair of
thresholds applies while the agent is talking, so that the agent's own voice
coming back as line echo is not taken for the caller. Stateful, one per stream.
"""

from __future__ import annotations

import enum
import math
from typing import Final

import webrtcvad

from voicebot.audio.codec import FRAME_BYTES_PCM16, FRAME_MS, SAMPLE_RATE_HZ, pcm16_rms

DEFAULT_VAD_AGGRESSIVENESS: Final = 2
"""webrtcvad mode 0 (permissive) … 3 (strict); 2 balances misses against noise hits."""
PCM16_FULL_SCALE: Final = 32768.0
SILENCE_DBFS: Final = -96.0
"""Level given to a frame of digital zeros (log of 0 is undefined)."""
NOISE_FLOOR_BLOCK_MS: Final = 200
"""The floor is the minimum frame level seen over a window cut into blocks of this length…"""
NOISE_FLOOR_WINDOW_BLOCKS: Final = 5
"""…and this many blocks (1 s): long enough to span the dips inside speech."""
ONSET_MARGIN_DB: Final = 6.0
"""To start an utterance a frame must stand at least this far above the noise floor…"""
SUSTAIN_MARGIN_DB: Final = 3.0
"""…and to continue one, this far (hysteresis: quiet syllables do not end a turn)."""
SPEECH_MIN_DBFS: Final = -55.0
"""…and at least this loud in absolute terms."""
BARGE_IN_MARGIN_DB: Final = 15.0
"""While the agent talks: margin above the floor required of caller speech."""
BARGE_IN_MIN_DBFS: Final = -38.0
"""While the agent talks: absolute level required; line echo sits well below it."""


class GateMode(enum.Enum):
    """Which energy thresholds a frame must pass besides webrtcvad."""

    ONSET = enum.auto()
    """Idle line, caller's turn: floor + ``ONSET_MARGIN_DB``."""
    SUSTAIN = enum.auto()
    """Inside a confirmed utterance: floor + ``SUSTAIN_MARGIN_DB``."""
    BARGE_IN = enum.auto()
    """Agent talking: floor + ``BARGE_IN_MARGIN_DB`` and at least ``BARGE_IN_MIN_DBFS``."""


def frame_dbfs(pcm16_frame: bytes) -> float:
    """RMS level of a PCM16 frame in dB relative to full scale."""
    rms = pcm16_rms(pcm16_frame)
    return 20.0 * math.log10(rms / PCM16_FULL_SCALE) if rms else SILENCE_DBFS


class NoiseFloorTracker:
    """Minimum-statistics noise floor in dBFS, O(1) per frame.

    Speech is never stationary: within any second it dips to the background level
    between syllables, while steady noise (hiss, hum) never rises above it. The
    minimum frame level over the last ~1 s is therefore a robust floor estimate
    that follows louder noise within a second and quieter noise at once.
    """

    __slots__ = ("_block_frames", "_block_min", "_blocks", "_count", "_floor_dbfs", "_next")

    def __init__(self, *, frame_ms: int = FRAME_MS) -> None:
        self._block_frames = max(1, NOISE_FLOOR_BLOCK_MS // frame_ms)
        self._blocks = [math.inf] * NOISE_FLOOR_WINDOW_BLOCKS
        self._next = 0
        self._count = 0
        self._block_min = math.inf
        self._floor_dbfs = math.inf

    @property
    def floor_dbfs(self) -> float:
        """Current floor estimate; ``inf`` before the first frame."""
        return self._floor_dbfs

    def update(self, level_dbfs: float) -> float:
        """Fold one frame's level into the estimate and return the new floor."""
        if level_dbfs < self._block_min:
            self._block_min = level_dbfs
        self._count += 1
        if self._count == self._block_frames:
            self._blocks[self._next] = self._block_min
            self._next = (self._next + 1) % NOISE_FLOOR_WINDOW_BLOCKS
            self._count = 0
            self._block_min = math.inf
            self._floor_dbfs = min(self._blocks)
        elif self._block_min < self._floor_dbfs:
            self._floor_dbfs = self._block_min
        return self._floor_dbfs

    def reset(self) -> None:
        """Forget the line (new stream)."""
        self._blocks = [math.inf] * NOISE_FLOOR_WINDOW_BLOCKS
        self._next = 0
        self._count = 0
        self._block_min = math.inf
        self._floor_dbfs = math.inf


class VoiceActivityDetector:
    """Classifies 20 ms PCM16 8 kHz frames as speech or not, adapting to line noise."""

    __slots__ = ("_barge_in_margin_db", "_barge_in_min_dbfs", "_floor", "_last_dbfs", "_vad")

    def __init__(
        self,
        *,
        aggressiveness: int = DEFAULT_VAD_AGGRESSIVENESS,
        barge_in_margin_db: float = BARGE_IN_MARGIN_DB,
        barge_in_min_dbfs: float = BARGE_IN_MIN_DBFS,
    ) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        self._floor = NoiseFloorTracker()
        self._barge_in_margin_db = barge_in_margin_db
        self._barge_in_min_dbfs = barge_in_min_dbfs
        self._last_dbfs = SILENCE_DBFS

    @property
    def noise_floor_dbfs(self) -> float:
        """The tracked background level."""
        return self._floor.floor_dbfs

    @property
    def last_level_dbfs(self) -> float:
        """Level of the last classified frame."""
        return self._last_dbfs

    def is_speech(self, pcm16_frame: bytes, *, mode: GateMode = GateMode.ONSET) -> bool:
        """Classify one 320-byte frame against the thresholds of ``mode``.

        The frame's level is compared with the floor as it stood before this frame,
        then folded into the floor. Raises ``ValueError`` on a frame of wrong size.
        """
        if len(pcm16_frame) != FRAME_BYTES_PCM16:
            raise ValueError(f"expected {FRAME_BYTES_PCM16} bytes, got {len(pcm16_frame)}")
        level = frame_dbfs(pcm16_frame)
        self._last_dbfs = level
        floor = self._floor.floor_dbfs
        voiced = level > SPEECH_MIN_DBFS and self._vad.is_speech(pcm16_frame, SAMPLE_RATE_HZ)
        self._floor.update(level)
        if not voiced:
            return False
        if mode is GateMode.ONSET:
            return level >= floor + ONSET_MARGIN_DB
        if mode is GateMode.SUSTAIN:
            return level >= floor + SUSTAIN_MARGIN_DB
        return level >= max(floor + self._barge_in_margin_db, self._barge_in_min_dbfs)

    def reset(self) -> None:
        """Forget the noise floor (new stream)."""
        self._floor.reset()
        self._last_dbfs = SILENCE_DBFS
