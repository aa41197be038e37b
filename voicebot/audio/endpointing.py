"""Turn taking on the inbound stream: when the caller starts and stops speaking.

This module owns :class:`Endpointer`, a per-call state machine fed one 20 ms
PCM16 8 kHz frame at a time. It confirms speech onset (quickly when the line is
the caller's, more cautiously while the agent talks, so echo and coughs do not
barge in), buffers the utterance with a short pre-roll, and ends the utterance
after a run of silence, reporting when speech truly ended rather than when the
decision was taken. Stream time is counted in frames from the first frame fed.

A stream's first second is decided retroactively. Until the VAD's noise floor has seen
a whole window (``NOISE_FLOOR_WARMUP_MS``) it is only the quietest frame so far, too
high when the caller is already talking at the first frame. Each time it falls in that
time, the stream so far is decided again against it: before any utterance has started,
every frame goes through the onset logic again (the warm-up's audio is kept for it), so
speech from the first frame is reported as a :class:`SpeechStarted` whose ``onset_ms``
lies in the past (at most ``NOISE_FLOOR_WARMUP_MS`` before the decision); inside an
utterance, the frames since its last voiced one are judged again with the sustain gate
(a pause already reported may be taken back by :class:`SpeechResumed`). Line noise
alone starts nothing this way: its frames stay within a few dB of its own floor.

Overlapping the turn's stages: at the first short pause inside an utterance
(``speculate_silence_ms``) it reports :class:`SpeechPaused` with the audio so far, so
recognition and the reply can start while the end of the turn is still being
confirmed; voice after that pause is reported as :class:`SpeechResumed` (whatever was
started on the paused audio is stale). The silence that ends the turn can be changed
for the current utterance from the words heard so far (:meth:`Endpointer.set_turn_silence_ms`);
it falls back to the default when the caller resumes.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass
from typing import Final

from voicebot.audio.codec import FRAME_BYTES_PCM16, FRAME_MS
from voicebot.audio.vad import DEFAULT_VAD_AGGRESSIVENESS, GateMode, VoiceActivityDetector

DEFAULT_ENDPOINT_SILENCE_MS: Final = 700
"""Silence that ends a turn; chosen by scripts/vad_eval.py (see its output)."""
DEFAULT_SPECULATE_SILENCE_MS: Final = 120
"""Silence after which the utterance so far is handed over for speculative recognition."""
DEFAULT_START_MIN_SPEECH_MS: Final = 80
"""Voiced audio needed to confirm the caller started speaking."""
DEFAULT_BARGE_IN_MIN_SPEECH_MS: Final = 180
"""Voiced audio needed to confirm the caller is talking over the agent."""
DEFAULT_MAX_UTTERANCE_MS: Final = 30_000
"""An utterance is cut (ended) at this length, bounding the buffer."""
PREROLL_MS: Final = 200
"""Audio kept from before the onset, so STT hears the first phoneme whole."""
POSTROLL_MS: Final = 200
"""Audio kept after the last voiced frame, so STT hears the last phoneme's decay."""
ONSET_MAX_GAP_MS: Final = 60
"""While confirming an onset, a longer run of unvoiced frames abandons the candidate."""
RETROACTIVE_ONSET_MIN_SPAN_DB: Final = 3.0
"""An onset found only by judging the warm-up again needs the levels of its frames that
pass the gate, from the onset to the latest frame, this far apart: a tone or noise burst
that opened the stream and stopped is steady (within ~2 dB), a voice is not. Only the
warm-up has this test: there webrtcvad, whose own model has not seen the line yet, calls
the first frames of anything voice."""
RETROACTIVE_ONSET_MIN_RISE_DB: Final = 2.0
"""…and one of those frames this far above an earlier one: a burst fading out spans many
dB but its levels only fall (by less than their frame-to-frame jitter), a voice rises into
its syllables."""


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The caller started speaking; ``onset_ms`` is the stream time of the first voiced frame."""

    onset_ms: int


@dataclass(frozen=True, slots=True)
class SpeechPaused:
    """The caller paused for ``speculate_silence_ms`` inside an utterance; ``audio`` is
    the utterance so far, cut as :class:`SpeechEnded` would cut it at this instant."""

    onset_ms: int
    end_ms: int
    audio: bytes


@dataclass(frozen=True, slots=True)
class SpeechResumed:
    """Voice again after a :class:`SpeechPaused`: the paused audio was not the whole turn."""

    at_ms: int


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """The caller finished an utterance.

    ``end_ms`` is the stream time at which the last voiced frame ended; ``audio``
    is PCM16 8 kHz from ``PREROLL_MS`` before the onset to ``POSTROLL_MS`` after
    ``end_ms``.
    """

    onset_ms: int
    end_ms: int
    audio: bytes


class _State(enum.Enum):
    IDLE = enum.auto()
    ONSET = enum.auto()
    SPEAKING = enum.auto()


def _frames(duration_ms: int) -> int:
    return max(1, -(-duration_ms // FRAME_MS))


class Endpointer:
    """Per-stream speech start/end detector over 20 ms PCM16 8 kHz frames."""

    __slots__ = (
        "_audio",
        "_audio_start_frame",
        "_barge_in_frames",
        "_default_endpoint_frames",
        "_endpoint_frames",
        "_frame_index",
        "_gap_frames",
        "_judged_floor_dbfs",
        "_last_voiced_frame",
        "_max_gap_frames",
        "_max_utterance_frames",
        "_onset_frame",
        "_paused",
        "_postroll_frames",
        "_preroll",
        "_speculate_frames",
        "_start_frames",
        "_state",
        "_vad",
        "_voiced_frames",
        "_warm",
        "_warm_agent",
        "_warm_audio",
    )

    def __init__(
        self,
        *,
        endpoint_silence_ms: int = DEFAULT_ENDPOINT_SILENCE_MS,
        start_min_speech_ms: int = DEFAULT_START_MIN_SPEECH_MS,
        barge_in_min_speech_ms: int = DEFAULT_BARGE_IN_MIN_SPEECH_MS,
        vad_aggressiveness: int = DEFAULT_VAD_AGGRESSIVENESS,
        max_utterance_ms: int = DEFAULT_MAX_UTTERANCE_MS,
        speculate_silence_ms: int = 0,
    ) -> None:
        """``speculate_silence_ms`` 0 reports no pauses (no :class:`SpeechPaused`)."""
        self._default_endpoint_frames = _frames(endpoint_silence_ms)
        self._endpoint_frames = self._default_endpoint_frames
        self._speculate_frames = _frames(speculate_silence_ms) if speculate_silence_ms else 0
        self._start_frames = _frames(start_min_speech_ms)
        self._barge_in_frames = _frames(barge_in_min_speech_ms)
        self._max_utterance_frames = _frames(max_utterance_ms)
        self._max_gap_frames = ONSET_MAX_GAP_MS // FRAME_MS
        self._postroll_frames = POSTROLL_MS // FRAME_MS
        self._vad = VoiceActivityDetector(aggressiveness=vad_aggressiveness)
        self._preroll: deque[bytes] = deque(maxlen=PREROLL_MS // FRAME_MS)
        self._audio = bytearray()
        self._warm_audio = bytearray()  # the stream's frames while they can be judged again
        self._warm_agent: list[bool] = []  # agent_speaking of each of them
        self._reset_state()

    def _reset_state(self) -> None:
        self._state = _State.IDLE
        self._frame_index = 0
        self._onset_frame = 0
        self._audio_start_frame = 0
        self._last_voiced_frame = 0
        self._voiced_frames = 0
        self._gap_frames = 0
        self._paused = False
        self._endpoint_frames = self._default_endpoint_frames
        self._preroll.clear()
        self._audio.clear()
        self._warm = True
        self._judged_floor_dbfs = math.inf
        self._warm_audio.clear()
        self._warm_agent.clear()

    @property
    def stream_ms(self) -> int:
        """Stream time after the frames fed so far."""
        return self._frame_index * FRAME_MS

    @property
    def in_speech(self) -> bool:
        """True between ``SpeechStarted`` and ``SpeechEnded``."""
        return self._state is _State.SPEAKING

    @property
    def silence_ms(self) -> int:
        """Silence since the last voiced frame of the current utterance (0 outside one)."""
        if self._state is not _State.SPEAKING:
            return 0
        return (self._frame_index - 1 - self._last_voiced_frame) * FRAME_MS

    def set_turn_silence_ms(self, silence_ms: int) -> None:
        """End the current utterance after ``silence_ms`` of silence instead of the default
        (already past it: at the next frame). Back to the default when the caller resumes
        after a pause, and for the next utterance."""
        self._endpoint_frames = _frames(silence_ms)

    @property
    def noise_floor_dbfs(self) -> float:
        """The VAD's current background-level estimate."""
        return self._vad.noise_floor_dbfs

    def process(
        self, pcm16_frame: bytes, *, agent_speaking: bool = False
    ) -> SpeechStarted | SpeechPaused | SpeechResumed | SpeechEnded | None:
        """Feed the next 20 ms frame; return an event when a turn boundary is decided.

        A frame that is not exactly 320 bytes is ignored (no event, no stream time).
        """
        if len(pcm16_frame) != FRAME_BYTES_PCM16:
            return None
        index = self._frame_index
        self._frame_index = index + 1
        state = self._state
        if state is _State.SPEAKING:
            mode = GateMode.SUSTAIN
        elif agent_speaking:
            mode = GateMode.BARGE_IN
        else:
            mode = GateMode.ONSET
        voiced = self._vad.is_speech(pcm16_frame, mode=mode)
        if self._warm and self._floor_fell(pcm16_frame, agent_speaking=agent_speaking):
            if state is not _State.SPEAKING:
                return self._judge_onset_again()
            self._audio += pcm16_frame
            return self._judge_speech_again(index)
        if state is _State.IDLE:
            if voiced:
                self._begin_candidate(index, pcm16_frame)
            else:
                self._preroll.append(pcm16_frame)
            return None
        self._audio += pcm16_frame
        if state is _State.ONSET:
            return self._confirm_onset(index, voiced, agent_speaking=agent_speaking)
        return self._track_speech(index, voiced)

    def _floor_fell(self, frame: bytes, *, agent_speaking: bool) -> bool:
        """Keep a warm-up frame; True if the floor fell with it (the earlier frames'
        decisions are stale). Past the warm-up, ends it."""
        if not self._vad.warming_up:
            self._end_warmup()
            return False
        self._warm_audio += frame
        self._warm_agent.append(agent_speaking)
        floor = self._vad.noise_floor_dbfs
        if floor >= self._judged_floor_dbfs:
            return False
        self._judged_floor_dbfs = floor
        return True

    def _end_warmup(self) -> None:
        """No more retroactive decisions: an utterance has ended, or the floor is a real one."""
        self._warm = False
        self._warm_audio.clear()
        self._warm_agent.clear()

    def _judge_onset_again(self) -> SpeechStarted | None:
        """Decide the stream so far again, each frame judged against the floor as known now.

        Runs the same onset logic as :meth:`process`; only ``SpeechStarted`` can come of it
        (nothing was reported before). Frames after a confirmed onset only mark voice: a
        pause or end they hold is reported by the next frame, as its silence is counted
        from the last voiced frame. O(warm-up) per fall of the floor; the floor falls
        rarely once it has met the line's background.
        """
        self._state = _State.IDLE
        self._preroll.clear()
        self._audio.clear()
        vad = self._vad
        warm = self._warm_audio
        started: SpeechStarted | None = None
        for index, agent_speaking in enumerate(self._warm_agent):
            frame = bytes(warm[index * FRAME_BYTES_PCM16 : (index + 1) * FRAME_BYTES_PCM16])
            state = self._state
            if state is _State.SPEAKING:
                self._audio += frame
                if vad.judge_again(index, GateMode.SUSTAIN):
                    self._last_voiced_frame = index
                continue
            mode = GateMode.BARGE_IN if agent_speaking else GateMode.ONSET
            voiced = vad.judge_again(index, mode)
            if state is _State.IDLE:
                if voiced:
                    self._begin_candidate(index, frame)
                else:
                    self._preroll.append(frame)
                continue
            self._audio += frame
            started = self._confirm_onset(index, voiced, agent_speaking=agent_speaking)
            if started is not None and not self._varies_like_speech(mode):
                self._abandon_candidate()
                started = None
        return started

    def _varies_like_speech(self, mode: GateMode) -> bool:
        """The candidate just confirmed by judging the warm-up again, from its onset to the
        latest frame, rises and falls as a voice does (not a steady burst, nor one fading out)."""
        last = len(self._warm_agent) - 1
        span_db, rise_db = self._vad.speech_level_span_db(self._onset_frame, last, mode)
        return span_db >= RETROACTIVE_ONSET_MIN_SPAN_DB and rise_db >= RETROACTIVE_ONSET_MIN_RISE_DB

    def _judge_speech_again(self, index: int) -> SpeechPaused | SpeechResumed | SpeechEnded | None:
        """Inside an utterance begun in the warm-up: the frames since its last voiced one are
        judged again against the floor as known now (the sustain gate), then this frame is
        tracked as :meth:`process` would. Voice found after a reported pause resumes it."""
        first_voiced = -1
        for earlier in range(self._last_voiced_frame + 1, index + 1):
            if self._vad.judge_again(earlier, GateMode.SUSTAIN):
                if first_voiced < 0:
                    first_voiced = earlier
                self._last_voiced_frame = earlier
        if first_voiced >= 0 and self._paused:
            self._paused = False
            self._endpoint_frames = self._default_endpoint_frames
            return SpeechResumed(at_ms=first_voiced * FRAME_MS)
        return self._track_speech(index, self._last_voiced_frame == index)

    def _begin_candidate(self, index: int, frame: bytes) -> None:
        self._state = _State.ONSET
        self._onset_frame = index
        self._audio_start_frame = index - len(self._preroll)
        self._audio.clear()
        for earlier in self._preroll:
            self._audio += earlier
        self._audio += frame
        self._preroll.clear()
        self._voiced_frames = 1
        self._gap_frames = 0
        self._paused = False
        self._endpoint_frames = self._default_endpoint_frames
        self._last_voiced_frame = index

    def _confirm_onset(
        self, index: int, voiced: bool, *, agent_speaking: bool
    ) -> SpeechStarted | None:
        if voiced:
            self._voiced_frames += 1
            self._gap_frames = 0
            self._last_voiced_frame = index
        else:
            self._gap_frames += 1
            if self._gap_frames > self._max_gap_frames:
                self._abandon_candidate()
                return None
        needed = self._barge_in_frames if agent_speaking else self._start_frames
        if self._voiced_frames < needed:
            return None
        self._state = _State.SPEAKING
        return SpeechStarted(onset_ms=self._onset_frame * FRAME_MS)

    def _abandon_candidate(self) -> None:
        """Return to idle, keeping the candidate's tail as the next pre-roll."""
        self._state = _State.IDLE
        keep = self._preroll.maxlen or 0
        tail = memoryview(self._audio)[-keep * FRAME_BYTES_PCM16 :]
        for start in range(0, len(tail), FRAME_BYTES_PCM16):
            self._preroll.append(bytes(tail[start : start + FRAME_BYTES_PCM16]))
        tail.release()
        self._audio.clear()

    def _track_speech(
        self, index: int, voiced: bool
    ) -> SpeechPaused | SpeechResumed | SpeechEnded | None:
        if voiced:
            self._last_voiced_frame = index
            if self._paused:
                self._paused = False
                self._endpoint_frames = self._default_endpoint_frames
                return SpeechResumed(at_ms=index * FRAME_MS)
        silent_frames = index - self._last_voiced_frame
        too_long = index + 1 - self._onset_frame >= self._max_utterance_frames
        if silent_frames < self._endpoint_frames and not too_long:
            speculate = self._speculate_frames
            if speculate and silent_frames >= speculate and not self._paused:
                self._paused = True
                return SpeechPaused(
                    onset_ms=self._onset_frame * FRAME_MS,
                    end_ms=(self._last_voiced_frame + 1) * FRAME_MS,
                    audio=self._utterance_audio(index),
                )
            return None
        end_frame = self._last_voiced_frame + 1
        event = SpeechEnded(
            onset_ms=self._onset_frame * FRAME_MS,
            end_ms=end_frame * FRAME_MS,
            audio=self._utterance_audio(index),
        )
        self._paused = False
        self._endpoint_frames = self._default_endpoint_frames
        self._state = _State.IDLE
        self._audio.clear()
        self._preroll.clear()
        if self._warm:
            self._end_warmup()
        return event

    def _utterance_audio(self, index: int) -> bytes:
        """The utterance from its pre-roll to ``POSTROLL_MS`` after its last voiced frame."""
        end_frame = self._last_voiced_frame + 1
        keep_until = min(end_frame + self._postroll_frames, index + 1)
        return bytes(self._audio[: (keep_until - self._audio_start_frame) * FRAME_BYTES_PCM16])

    def reset(self) -> None:
        """Start a new stream: stream time back to 0, buffers and noise floor cleared."""
        self._vad.reset()
        self._reset_state()
