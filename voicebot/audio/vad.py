"""Per-frame voice activity: webrtcvad gated by an adaptive noise-floor energy test.

This module owns the decision "is this 20 ms inbound frame speech?". webrtcvad's
GMM tells voice-like spectra from others but fires on steady line noise and on
faint echo; the energy gate adds two tests on top: the frame must stand a margin
above the tracked noise floor, and above an absolute level. A stricter pair of
thresholds applies while the agent is talking, so that the agent's own voice
coming back as line echo is not taken for the caller. Stateful, one per stream.

A new stream has no floor yet: until the tracker has seen a whole window
(``NOISE_FLOOR_WARMUP_MS``) its floor is the minimum of every frame so far, an upper
bound on the line's background that falls as quieter frames arrive. A caller already
speaking at frame 0 sets that bound at their own voice, so their first frames fail the
margin when they arrive. The detector therefore keeps the evidence of each warm-up
frame (its level and webrtcvad's answer) and can judge it again against the floor as
known later (:meth:`VoiceActivityDetector.judge_again`); the endpointer uses that to
decide a stream's first frames retroactively.
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
NOISE_FLOOR_WARMUP_MS: Final = NOISE_FLOOR_BLOCK_MS * NOISE_FLOOR_WINDOW_BLOCKS
"""Until a stream is this old its floor is the minimum of all its frames (no block has
left the window): frames up to here can be judged again as the floor falls."""
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

    __slots__ = (
        "_aggressiveness",
        "_barge_in_margin_db",
        "_barge_in_min_dbfs",
        "_floor",
        "_frames",
        "_last_dbfs",
        "_vad",
        "_warm_levels",
        "_warm_voiced",
    )

    def __init__(
        self,
        *,
        aggressiveness: int = DEFAULT_VAD_AGGRESSIVENESS,
        barge_in_margin_db: float = BARGE_IN_MARGIN_DB,
        barge_in_min_dbfs: float = BARGE_IN_MIN_DBFS,
    ) -> None:
        self._aggressiveness = aggressiveness
        self._vad = webrtcvad.Vad(aggressiveness)
        self._floor = NoiseFloorTracker()
        self._barge_in_margin_db = barge_in_margin_db
        self._barge_in_min_dbfs = barge_in_min_dbfs
        self._last_dbfs = SILENCE_DBFS
        self._frames = 0
        warmup_frames = NOISE_FLOOR_WARMUP_MS // FRAME_MS
        self._warm_levels = [SILENCE_DBFS] * warmup_frames
        self._warm_voiced = [False] * warmup_frames

    @property
    def noise_floor_dbfs(self) -> float:
        """The tracked background level."""
        return self._floor.floor_dbfs

    @property
    def last_level_dbfs(self) -> float:
        """Level of the last classified frame."""
        return self._last_dbfs

    @property
    def frames_seen(self) -> int:
        """Frames classified since the stream began."""
        return self._frames

    @property
    def warming_up(self) -> bool:
        """True while every frame of the stream is recorded and the floor is still the
        minimum of them all (the first ``NOISE_FLOOR_WARMUP_MS``): each can be judged again."""
        return self._frames <= len(self._warm_levels)

    def is_speech(self, pcm16_frame: bytes, *, mode: GateMode = GateMode.ONSET) -> bool:
        """Classify one 320-byte frame against the thresholds of ``mode``.

        The frame's level is compared with the floor as it stood before this frame,
        then folded into the floor. On a stream's first frame there is no floor and the
        answer is False (see :meth:`judge_again`). Raises ``ValueError`` on a frame of
        wrong size.
        """
        if len(pcm16_frame) != FRAME_BYTES_PCM16:
            raise ValueError(f"expected {FRAME_BYTES_PCM16} bytes, got {len(pcm16_frame)}")
        level = frame_dbfs(pcm16_frame)
        self._last_dbfs = level
        floor = self._floor.floor_dbfs
        voiced = level > SPEECH_MIN_DBFS and self._vad.is_speech(pcm16_frame, SAMPLE_RATE_HZ)
        self._floor.update(level)
        index = self._frames
        self._frames = index + 1
        if index < len(self._warm_levels):
            self._warm_levels[index] = level
            self._warm_voiced[index] = voiced
        return voiced and self._passes(level, floor, mode)

    def judge_again(self, index: int, mode: GateMode) -> bool:
        """Classify the stream's ``index``-th frame again, against the floor as it stands
        now, as :meth:`is_speech` would have if the floor had been known then.

        Only frames of the warm-up can be judged again; raises ``IndexError`` for others
        (or for a frame not yet seen, or once the warm-up is over).
        """
        if not 0 <= index < self._frames <= len(self._warm_levels):
            raise IndexError(f"frame {index} cannot be judged again")
        if not self._warm_voiced[index]:
            return False
        return self._passes(self._warm_levels[index], self._floor.floor_dbfs, mode)

    def speech_level_span_db(self, first: int, last: int, mode: GateMode) -> tuple[float, float]:
        """How far apart (dB) lie the levels of the warm-up frames ``first`` … ``last``
        that :meth:`judge_again` calls speech in ``mode``, and the largest rise among them
        from one frame to a later one (0, 0 for fewer than two). Speech rises and falls
        from syllable to syllable; a steady tone or noise spans little, and one fading out
        spans much but never rises. Raises ``IndexError`` for frames :meth:`judge_again`
        refuses."""
        if not 0 <= first <= last < self._frames <= len(self._warm_levels):
            raise IndexError(f"frames {first}..{last} are not in the warm-up")
        floor = self._floor.floor_dbfs
        low, high, rise = math.inf, -math.inf, 0.0
        for index in range(first, last + 1):
            level = self._warm_levels[index]
            if self._warm_voiced[index] and self._passes(level, floor, mode):
                rise = max(rise, level - low)
                low, high = min(low, level), max(high, level)
        return (high - low, rise) if high > low else (0.0, 0.0)

    def _passes(self, level: float, floor: float, mode: GateMode) -> bool:
        if mode is GateMode.ONSET:
            return level >= floor + ONSET_MARGIN_DB
        if mode is GateMode.SUSTAIN:
            return level >= floor + SUSTAIN_MARGIN_DB
        return level >= max(floor + self._barge_in_margin_db, self._barge_in_min_dbfs)

    def reset(self) -> None:
        """Forget the line (new stream): the noise floor, the warm-up, and webrtcvad's own
        noise model, adapted to the old line."""
        self._vad = webrtcvad.Vad(self._aggressiveness)
        self._floor.reset()
        self._last_dbfs = SILENCE_DBFS
        self._frames = 0
