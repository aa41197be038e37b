"""The provider simulator's Realtime transcription websocket (`/v1/realtime?intent=transcription`).

It speaks the protocol of OpenAI's Realtime API in transcription mode, as the real client
sees it: ``session.created`` on connect; ``session.update`` (``type: transcription``,
``audio.input.format``, ``transcription``, ``turn_detection``) answered by
``session.updated`` or an ``error`` naming the client event; ``input_audio_buffer.append``
(base64 audio), ``.commit`` (``input_audio_buffer.committed`` with the item id, then
``conversation.item.added``, then ``conversation.item.input_audio_transcription.delta``
pieces and ``…completed``), ``.clear`` (``input_audio_buffer.cleared``). A commit of less
than 100 ms of audio is refused as the real API refuses it.

What was "said" is decided as in the batch STT route: the registered phrase whose
envelope matches the committed audio best (else ``default_transcript``). While audio
arrives, every ``partial_interval_ms`` of audio the simulator matches what it has against
the start of each phrase and sends the words of the best one heard so far as deltas
(deltas only ever extend: a changed guess sends nothing until the final).

It simulates only what our client uses: ``audio/pcmu`` and 24 kHz ``audio/pcm`` input,
no server VAD (a session left with ``turn_detection`` set is refused with an error, so a
client that forgot to turn it off sees it). Faults, per :class:`RealtimeBehaviour`: a
refused handshake, an ``error`` answering the commit, a ``…failed`` transcription, the
socket closed mid-stream after N appends, and any final delay (a stall).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from voicebot.audio.codec import ulaw_to_pcm16

PCMU_RATE_HZ = 8_000
ENVELOPE_FRAME_MS = 20
# Fewer envelope frames than this (200 ms of speech) make no partial guess.
MIN_PREFIX_FRAMES = 10
PCM_RATE_HZ = 24_000
MIN_COMMIT_MS = 100
WS_CLOSE_SERVER_ERROR = 1011
SUPPORTED_FORMATS = ("audio/pcmu", "audio/pcm")


@dataclass(slots=True)
class RealtimeBehaviour:
    """Timing and faults of the Realtime transcription socket."""

    final_delay_ms: float = 150.0
    """From the commit to ``…completed`` (a stall when long)."""
    final_jitter_ms: float = 0.0
    partial_interval_ms: int = 300
    """Audio between interim hypotheses while the caller speaks; 0 sends none before commit."""
    refuse_status: int | None = None
    """Refuse the websocket handshake with this HTTP status."""
    commit_error_rate: float = 0.0
    """Share of commits answered by an ``error`` event (``server_error``) instead."""
    transcription_failed_rate: float = 0.0
    """Share of commits whose transcription ends in ``…failed`` after the delay."""
    close_after_appends: int | None = None
    """Close the socket (code 1011) after this many appends on one connection."""
    misheard_partials: dict[str, str] = field(default_factory=dict)
    """Interim hypotheses a recogniser later revises: while a phrase (key) is being heard,
    its partials say these words instead; the commit's final is still the phrase."""


class PhraseMatcher(Protocol):
    def recognise(self, pcm16: bytes, sample_rate_hz: int) -> tuple[str | None, float]: ...

    def recognise_prefix(self, frame_rms: np.ndarray) -> tuple[str | None, float]: ...


@dataclass(frozen=True, slots=True)
class RealtimeCommit:
    """One answered commit, for assertions and reports: ``final_after_commit_ms`` is the
    simulator's own time from the commit event to sending ``…completed``."""

    item_id: str
    transcript: str
    audio_ms: int
    final_after_commit_ms: float
    outcome: str


class RealtimeTranscriptionSocket:
    """One websocket connection's state and protocol."""

    def __init__(
        self,
        websocket: WebSocket,
        *,
        behaviour: Callable[[], RealtimeBehaviour],
        phrases: PhraseMatcher,
        default_transcript: str,
        rng: random.Random,
        on_commit: Callable[[RealtimeCommit], None],
    ) -> None:
        self._ws = websocket
        self._behaviour_now = behaviour  # read at each event: changes apply to open sockets
        self._phrases = phrases
        self._default_transcript = default_transcript
        self._random = rng
        self._on_commit = on_commit
        self._send_lock = asyncio.Lock()
        self._session: dict[str, Any] = {
            "type": "transcription",
            "object": "realtime.session",
            "id": f"sess_{uuid.uuid4().hex[:20]}",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": PCM_RATE_HZ},
                    "noise_reduction": None,
                    "transcription": None,
                    "turn_detection": {
                        "type": "server_vad",
                        "threshold": 0.5,
                        "prefix_padding_ms": 300,
                        "silence_duration_ms": 500,
                    },
                }
            },
            "include": None,
        }
        self._buffer = bytearray()
        self._rms = FrameRms(PCM_RATE_HZ)
        self._item_id: str | None = None
        self._previous_item_id: str | None = None
        self._emitted_words: list[str] = []
        self._next_partial_ms = behaviour().partial_interval_ms
        self._appends = 0

    # ---- wire ----

    async def _send(self, event: dict[str, Any]) -> None:
        event = {"event_id": f"event_{uuid.uuid4().hex[:20]}", **event}
        async with self._send_lock:
            await self._ws.send_text(json.dumps(event, ensure_ascii=False))

    async def _error(
        self,
        message: str,
        *,
        code: str | None,
        kind: str = "invalid_request_error",
        param: str | None = None,
        about: str | None = None,
    ) -> None:
        await self._send(
            {
                "type": "error",
                "error": {
                    "type": kind,
                    "code": code,
                    "message": message,
                    "param": param,
                    "event_id": about,
                },
            }
        )

    async def serve(self) -> None:
        """Answer the client's events until it goes away or a fault closes the socket."""
        await self._send({"type": "session.created", "session": self._session})
        async with asyncio.TaskGroup() as finals:
            while True:
                try:
                    raw = await self._ws.receive_text()
                except WebSocketDisconnect:
                    return
                try:
                    event = json.loads(raw)
                    kind = event["type"]
                except (ValueError, KeyError, TypeError):
                    await self._error("The server could not parse the event.", code="invalid_json")
                    continue
                about = event.get("event_id")
                if kind == "session.update":
                    await self._update(event.get("session"), about)
                elif kind == "input_audio_buffer.append":
                    if not await self._append(event.get("audio"), about):
                        return
                elif kind == "input_audio_buffer.commit":
                    await self._commit(about, finals)
                elif kind == "input_audio_buffer.clear":
                    self._reset_buffer()
                    await self._send({"type": "input_audio_buffer.cleared"})
                else:
                    await self._error(
                        f"Invalid value: '{kind}'.", code="invalid_value", param="type", about=about
                    )

    # ---- events ----

    async def _update(self, session: Any, about: str | None) -> None:
        if not isinstance(session, dict) or session.get("type") != "transcription":
            await self._error(
                "This connection is a transcription session: session.type must be 'transcription'.",
                code="invalid_value",
                param="session.type",
                about=about,
            )
            return
        current = self._session["audio"]["input"]
        given = (session.get("audio") or {}).get("input") or {}
        merged = {**current, **given}
        fmt = merged.get("format") or {}
        if fmt.get("type") not in SUPPORTED_FORMATS:
            await self._error(
                f"Simulator supports input formats {SUPPORTED_FORMATS}, not {fmt.get('type')!r}.",
                code="invalid_value",
                param="session.audio.input.format",
                about=about,
            )
            return
        if merged.get("turn_detection") is not None:
            await self._error(
                "Simulator implements no server VAD: set turn_detection to null.",
                code="unsupported",
                param="session.audio.input.turn_detection",
                about=about,
            )
            return
        self._session["audio"]["input"] = merged
        self._reset_buffer()  # audio buffered in the old format means nothing in the new one
        if "include" in session:
            self._session["include"] = session["include"]
        await self._send({"type": "session.updated", "session": self._session})

    @property
    def _rate_hz(self) -> int:
        fmt = self._session["audio"]["input"]["format"]
        return PCMU_RATE_HZ if fmt.get("type") == "audio/pcmu" else PCM_RATE_HZ

    @property
    def _bytes_per_ms(self) -> int:
        return self._rate_hz // 1000 * (1 if self._rate_hz == PCMU_RATE_HZ else 2)

    def _pcm16(self) -> bytes:
        if self._rate_hz == PCMU_RATE_HZ:
            return ulaw_to_pcm16(bytes(self._buffer))
        return bytes(self._buffer[: len(self._buffer) // 2 * 2])

    def _reset_buffer(self) -> None:
        self._buffer.clear()
        self._rms = FrameRms(self._rate_hz)
        self._item_id = None
        self._emitted_words = []
        self._next_partial_ms = self._behaviour_now().partial_interval_ms

    async def _append(self, audio: Any, about: str | None) -> bool:
        """Buffer the audio (and send a partial when due); False when the socket was closed."""
        try:
            chunk = base64.b64decode(str(audio), validate=True)
        except (binascii.Error, ValueError):
            await self._error(
                "Invalid 'audio'. Expected base64-encoded audio bytes.",
                code="invalid_value",
                param="audio",
                about=about,
            )
            return True
        self._appends += 1
        limit = self._behaviour_now().close_after_appends
        if limit is not None and self._appends > limit:
            await self._ws.close(code=WS_CLOSE_SERVER_ERROR, reason="simulated upstream failure")
            return False
        if self._item_id is None:
            self._item_id = f"item_{uuid.uuid4().hex[:20]}"
        self._buffer += chunk
        self._rms.push(ulaw_to_pcm16(chunk) if self._rate_hz == PCMU_RATE_HZ else chunk)
        interval = self._behaviour_now().partial_interval_ms
        audio_ms = len(self._buffer) // self._bytes_per_ms
        if interval > 0 and audio_ms >= self._next_partial_ms:
            self._next_partial_ms = audio_ms + interval
            text, fraction = self._phrases.recognise_prefix(self._rms.values())
            if text is not None:
                text = self._behaviour_now().misheard_partials.get(text, text)
                words = text.split()
                await self._extend(words[: max(1, round(fraction * len(words)))])
        return True

    async def _extend(self, words: list[str]) -> None:
        """Send the words beyond those already sent, if the guess extends them."""
        sent = self._emitted_words
        if len(words) <= len(sent) or words[: len(sent)] != sent or self._item_id is None:
            return
        delta = (" " if sent else "") + " ".join(words[len(sent) :])
        self._emitted_words = list(words)
        await self._send(
            {
                "type": "conversation.item.input_audio_transcription.delta",
                "item_id": self._item_id,
                "content_index": 0,
                "delta": delta,
            }
        )

    async def _commit(self, about: str | None, finals: asyncio.TaskGroup) -> None:
        committed_at = time.perf_counter()
        audio_ms = len(self._buffer) // self._bytes_per_ms
        if audio_ms < MIN_COMMIT_MS:
            await self._error(
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has {audio_ms:.2f}ms of audio.",
                code="input_audio_buffer_commit_empty",
                about=about,
            )
            return
        behaviour = self._behaviour_now()
        if behaviour.commit_error_rate and self._random.random() < behaviour.commit_error_rate:
            await self._error(
                "The server had an error while processing your request.",
                code=None,
                kind="server_error",
                about=about,
            )
            self._on_commit(RealtimeCommit("", "", audio_ms, 0.0, "error"))
            self._reset_buffer()
            return
        item_id = self._item_id or f"item_{uuid.uuid4().hex[:20]}"
        await self._send(
            {
                "type": "input_audio_buffer.committed",
                "previous_item_id": self._previous_item_id,
                "item_id": item_id,
            }
        )
        await self._send(
            {
                "type": "conversation.item.added",
                "previous_item_id": self._previous_item_id,
                "item": {
                    "id": item_id,
                    "type": "message",
                    "object": "realtime.item",
                    "status": "completed",
                    "role": "user",
                    "content": [{"type": "input_audio", "transcript": None}],
                },
            }
        )
        self._previous_item_id = item_id
        pcm16, rate_hz, emitted = self._pcm16(), self._rate_hz, list(self._emitted_words)
        self._reset_buffer()
        finals.create_task(self._finish(item_id, pcm16, rate_hz, emitted, committed_at))

    async def _finish(
        self, item_id: str, pcm16: bytes, rate_hz: int, emitted: list[str], committed_at: float
    ) -> None:
        behaviour = self._behaviour_now()
        text, _ = self._phrases.recognise(pcm16, rate_hz)
        transcript = text if text is not None else self._default_transcript
        jitter_ms = self._random.uniform(-behaviour.final_jitter_ms, behaviour.final_jitter_ms)
        await asyncio.sleep(max(0.0, behaviour.final_delay_ms + jitter_ms) / 1000)
        audio_ms = len(pcm16) * 1000 // (2 * rate_hz)
        if (
            behaviour.transcription_failed_rate
            and self._random.random() < behaviour.transcription_failed_rate
        ):
            await self._send(
                {
                    "type": "conversation.item.input_audio_transcription.failed",
                    "item_id": item_id,
                    "content_index": 0,
                    "error": {
                        "type": "transcription_error",
                        "code": "audio_unintelligible",
                        "message": "Audio could not be transcribed.",
                        "param": None,
                    },
                }
            )
            self._record(item_id, "", audio_ms, committed_at, "failed")
            return
        words = transcript.split()
        if words[: len(emitted)] == emitted and len(words) > len(emitted):
            delta = (" " if emitted else "") + " ".join(words[len(emitted) :])
            await self._send(
                {
                    "type": "conversation.item.input_audio_transcription.delta",
                    "item_id": item_id,
                    "content_index": 0,
                    "delta": delta,
                }
            )
        await self._send(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item_id,
                "content_index": 0,
                "transcript": transcript,
                "usage": {"type": "duration", "seconds": round(audio_ms / 1000, 3)},
            }
        )
        self._record(item_id, transcript, audio_ms, committed_at, "completed")

    def _record(
        self, item_id: str, transcript: str, audio_ms: int, committed_at: float, outcome: str
    ) -> None:
        elapsed_ms = (time.perf_counter() - committed_at) * 1000
        self._on_commit(RealtimeCommit(item_id, transcript, audio_ms, elapsed_ms, outcome))


def refusal(status: int) -> JSONResponse:
    """The HTTP answer of a refused handshake, in OpenAI's error shape."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    code = "invalid_api_key" if status == 401 else None
    body = {
        "error": {
            "message": f"Simulated refusal (HTTP {status}).",
            "type": kind,
            "param": None,
            "code": code,
        }
    }
    return JSONResponse(body, status_code=status)


def envelope_prefix_similarity(heard: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """How well ``heard`` matches the start of ``reference`` (the correlation of the two
    envelopes over the heard length, 0-1), and how much of the reference it covers (0-1)."""
    count = min(heard.size, reference.size)
    if count < MIN_PREFIX_FRAMES:
        return 0.0, 0.0
    a = heard[:count] - heard[:count].mean()
    b = reference[:count] - reference[:count].mean()
    norm = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    if norm == 0.0:
        return 0.0, 0.0
    return max(0.0, float(np.dot(a, b)) / norm), count / reference.size


class FrameRms:
    """Per-20 ms RMS of a growing PCM16 stream, computed once per frame as audio arrives."""

    def __init__(self, sample_rate_hz: int) -> None:
        self._frame = sample_rate_hz * ENVELOPE_FRAME_MS // 1000
        self._pending = np.zeros(0, dtype=np.float32)
        self._values: list[float] = []

    def push(self, pcm16: bytes) -> None:
        samples = np.frombuffer(pcm16[: len(pcm16) // 2 * 2], dtype="<i2").astype(np.float32)
        pending = np.concatenate([self._pending, samples])
        count = pending.size // self._frame
        if count:
            frames = pending[: count * self._frame].reshape(count, self._frame)
            self._values.extend(np.sqrt(np.mean(frames**2, axis=1)).tolist())
        self._pending = pending[count * self._frame :]

    def values(self) -> np.ndarray:
        return np.asarray(self._values, dtype=np.float32)
