"""An OpenAI-compatible server for tests, load tests and the demo: STT, chat and TTS.

It speaks the wire formats the real ``openai`` client consumes: multipart
``/v1/audio/transcriptions``, ``/v1/chat/completions`` (JSON or SSE ``chat.completion.chunk``
events ending in ``data: [DONE]``, tool calls split across chunks) and ``/v1/audio/speech``
(chunked raw PCM, 24 kHz 16-bit mono little-endian). Errors use OpenAI's error JSON.
Streaming recognition is the Realtime transcription websocket at ``/v1/realtime``
(:mod:`voicebot.testing.realtime_sim`), recognising as the batch route does.

It is honest about being a simulator: it recognises only the phrases registered in its
library (best match on duration and energy envelope), and its replies come from a
pluggable responder. Latency, jitter, error rate, hang and garbage modes are set per stage
in :class:`SimConfig`, at start or at run time (``POST /_sim/config``).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import random
import re
import socket
import time
import uuid
import wave
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np
import uvicorn
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from voicebot.config import ProviderEndpoint, Stage
from voicebot.providers.espeak_tts import ESPEAK_SAMPLE_RATE_HZ, EspeakTextToSpeech
from voicebot.providers.wav import pcm16_to_wav
from voicebot.testing.realtime_sim import (
    RealtimeBehaviour,
    RealtimeCommit,
    RealtimeTranscriptionSocket,
    envelope_prefix_similarity,
    refusal,
)

TTS_SAMPLE_RATE_HZ = 24_000
PHRASE_SAMPLE_RATE_HZ = 8_000
ENVELOPE_FRAME_MS = 20
ENVELOPE_POINTS = 64
# Frames quieter than this share of the loudest frame are edge silence.
EDGE_SILENCE_RATIO = 0.1
# Below this RMS (of 32767) a clip counts as silence and matches nothing.
SILENCE_RMS = 100.0
MIN_MATCH_SCORE = 0.5
TTS_CACHE_ENTRIES = 256
SYNTH_MS_PER_CHAR = 60
SYNTH_MIN_MS, SYNTH_MAX_MS = 300, 15_000
SYNTH_F0_HZ = 140.0
SYNTH_SYLLABLE_HZ = 4.0
TOOL_ARGUMENT_PIECE_CHARS = 8
REQUEST_LOG_ENTRIES = 1000
# A hung request is released after this long even if the simulator keeps running.
MAX_HANG_S = 300.0
SHUTDOWN_GRACE_S = 1
PCM16_MAX = 32767
# Recorded (nginx's convention) for a request whose client left before its body arrived.
CLIENT_GONE_STATUS = 499

DEFAULT_REPLIES = (
    "בשמחה. אשמח לספר לך עוד, מה הכי חשוב לך?",
    "הבנתי. אפשר לקבוע פגישה קצרה עם נציג, מתי נוח לך?",
    "תודה על השאלה. בקצרה, השירות שלנו חוסך זמן וכסף.",
)
DEFAULT_AFTER_TOOL_REPLY = "מעולה, רשמתי את זה. יש עוד משהו שאוכל לעזור בו?"


@dataclass(slots=True)
class StageBehaviour:
    """How one stage misbehaves: first-answer delay (for streams: a first-byte stall),
    jitter, errors (``error_rate`` of the requests answer ``error_status``), hanging
    (every request, or ``hang_rate`` of them), and a streamed body cut after
    ``cut_after_chunks`` chunks (the connection drops without the final chunk, as a proxy
    or a crashed upstream does: the client sees an HTTP protocol error, not a status).
    With ``only_matching`` (a regex) every fault applies only to requests whose text
    matches it: the TTS input, or the last user message of a chat."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 500
    hang: bool = False
    hang_rate: float = 0.0
    """Share of requests (0–1) that hang like ``hang`` (answer nothing until released)."""
    cut_after_chunks: int | None = None
    only_matching: str | None = None


@dataclass(frozen=True, slots=True)
class StreamClosed:
    """A streamed answer ended: ``closed_at`` (``time.monotonic()``), and whether it ran
    to its end (False: the client went away, or the simulator cut it)."""

    stage: str
    closed_at: float
    completed: bool


class _CutStream(Exception):
    """Raised inside a streamed body to drop the connection mid-body."""


@dataclass(slots=True)
class SimConfig:
    """Every tunable of the simulator; mutable at run time."""

    stt: StageBehaviour = field(default_factory=StageBehaviour)
    llm: StageBehaviour = field(default_factory=StageBehaviour)
    tts: StageBehaviour = field(default_factory=StageBehaviour)
    realtime: RealtimeBehaviour = field(default_factory=RealtimeBehaviour)
    llm_inter_token_ms: float = 0.0
    llm_garbage: bool = False
    llm_stream_end: Literal["done", "no_done", "no_finish"] = "done"
    """How a streamed chat answer ends: ``data: [DONE]`` (OpenAI's own), ``no_done`` (the
    final chunk with its finish reason, then the body just ends), ``no_finish`` (the body
    ends after the last text or tool-call piece: no finish reason, no ``[DONE]``)."""
    tts_chunk_ms: int = 100
    tts_realtime: bool = False
    tts_use_espeak: bool = True
    tts_garbage: str | None = None
    """A TTS that answers 200 without audio: ``"empty"`` (no body) or ``"html"`` (a
    proxy's HTML page), as a misconfigured gateway does."""
    default_transcript: str = ""
    api_key: str | None = None
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class SimToolCall:
    """A tool call the simulated model makes; ``raw_arguments`` (when set) is sent verbatim
    instead of ``arguments`` as JSON, to play a model that writes broken JSON."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    raw_arguments: str | None = None

    def arguments_json(self) -> str:
        if self.raw_arguments is not None:
            return self.raw_arguments
        return json.dumps(self.arguments, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class SimReply:
    text: str = ""
    tool_calls: tuple[SimToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    """If the last user message matches ``pattern``, reply with ``text`` or call ``tool``."""

    pattern: str
    text: str = ""
    tool: SimToolCall | None = None


Responder = Callable[[Sequence[dict[str, Any]]], SimReply]


class ScriptedResponder:
    """Rules first, then a short natural Hebrew reply; after a tool result, a confirmation."""

    def __init__(
        self,
        rules: Sequence[Rule] = (),
        *,
        after_tool_text: str = DEFAULT_AFTER_TOOL_REPLY,
        default_texts: Sequence[str] = DEFAULT_REPLIES,
    ) -> None:
        self._rules = [(re.compile(r.pattern), r) for r in rules]
        self._after_tool_text = after_tool_text
        self._default_texts = default_texts

    def __call__(self, messages: Sequence[dict[str, Any]]) -> SimReply:
        if messages and messages[-1].get("role") == "tool":
            return SimReply(text=self._after_tool_text)
        user: dict[str, Any] = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        said = str(user.get("content") or "")
        for pattern, rule in self._rules:
            if pattern.search(said):
                return SimReply(text=rule.text, tool_calls=(rule.tool,) if rule.tool else ())
        index = sum(said.encode()) % len(self._default_texts)
        return SimReply(text=self._default_texts[index])


class PhraseLibrary:
    """Known phrases and their reference audio; recognises the closest one."""

    def __init__(self) -> None:
        self._envelopes: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._envelopes)

    def register(
        self, text: str, pcm16: bytes, sample_rate_hz: int = PHRASE_SAMPLE_RATE_HZ
    ) -> None:
        envelope = _envelope(pcm16, sample_rate_hz)
        if envelope.size == 0:
            raise ValueError(f"reference audio for {text!r} is silent")
        self._envelopes[text] = envelope

    def recognise(self, pcm16: bytes, sample_rate_hz: int) -> tuple[str | None, float]:
        """The best-matching phrase and its score, or (None, best score) below threshold."""
        heard = _envelope(pcm16, sample_rate_hz)
        best: tuple[str | None, float] = (None, 0.0)
        if heard.size == 0:
            return best
        for text, reference in self._envelopes.items():
            score = _similarity(heard, reference)
            if score > best[1]:
                best = (text, score)
        return best if best[1] >= MIN_MATCH_SCORE else (None, best[1])

    def recognise_prefix(self, frame_rms: np.ndarray) -> tuple[str | None, float]:
        """The phrase whose beginning best matches the audio heard so far (its per-20 ms
        RMS, speech still going on) and the share of it heard, or (None, 0.0) below
        threshold."""
        heard = _trimmed_envelope(frame_rms)
        best: tuple[str | None, float, float] = (None, 0.0, 0.0)
        if heard.size == 0:
            return None, 0.0
        for text, reference in self._envelopes.items():
            score, fraction = envelope_prefix_similarity(heard, reference)
            if score > best[1]:
                best = (text, score, fraction)
        return (best[0], best[2]) if best[1] >= MIN_MATCH_SCORE else (None, 0.0)


@dataclass(frozen=True, slots=True)
class SimRequest:
    """One request the simulator answered, for assertions and load-test reports."""

    stage: str
    status: int
    detail: str
    latency_ms: float


class ProviderSim:
    """The simulator: a Starlette app plus a runner on a loopback port."""

    def __init__(
        self, config: SimConfig | None = None, *, responder: Responder | None = None
    ) -> None:
        self.config = config or SimConfig()
        self.responder: Responder = responder or ScriptedResponder()
        self.phrases = PhraseLibrary()
        self.requests: Counter[str] = Counter()
        self.log: deque[SimRequest] = deque(maxlen=REQUEST_LOG_ENTRIES)
        self.streams_closed: deque[StreamClosed] = deque(maxlen=REQUEST_LOG_ENTRIES)
        self.realtime_commits: deque[RealtimeCommit] = deque(maxlen=REQUEST_LOG_ENTRIES)
        self._random = random.Random(self.config.seed)
        self._speech: OrderedDict[str, bytes] = OrderedDict()
        self._released = asyncio.Event()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.base_url = ""
        self.app = Starlette(
            routes=[
                Route("/v1/audio/transcriptions", self._transcriptions, methods=["POST"]),
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/audio/speech", self._speech_route, methods=["POST"]),
                WebSocketRoute("/v1/realtime", self._realtime),
                Route("/_sim/phrases", self._admin_phrases, methods=["POST"]),
                Route("/_sim/config", self._admin_config, methods=["POST"]),
                Route("/_sim/stats", self._admin_stats, methods=["GET"]),
            ]
        )

    def register_phrase(
        self, text: str, pcm16: bytes, sample_rate_hz: int = PHRASE_SAMPLE_RATE_HZ
    ) -> None:
        """Teach the recogniser a phrase from its reference audio (PCM16 mono)."""
        self.phrases.register(text, pcm16, sample_rate_hz)

    def endpoint(
        self, stage: Stage, *, timeout_s: float = 5.0, model: str = "sim"
    ) -> ProviderEndpoint:
        """A ProviderEndpoint pointing one stage at this simulator."""
        return ProviderEndpoint(
            stage=stage,
            base_url=self.base_url,
            api_key=SecretStr(self.config.api_key or "sim-key"),
            model=model,
            timeout_s=timeout_s,
            configured=True,
        )

    # Runner.

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 picks a free port) as a task this object owns."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it: without it, uvloop serving a pre-bound socket
        # leaves Nagle on, and every answer waits ~40 ms for the client's delayed ACK,
        # time that would be wrongly charged to the server under test.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        )
        self._server = uvicorn.Server(config)
        self._released = asyncio.Event()
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                await self._task
                raise RuntimeError("provider simulator failed to start")
            await asyncio.sleep(0.01)
        self.base_url = f"http://{host}:{sock.getsockname()[1]}/v1"
        return self.base_url

    async def wait_closed(self) -> None:
        if self._task is not None:
            await self._task

    async def stop(self) -> None:
        """Release hung requests and shut the server down."""
        self._released.set()
        if self._server is not None:
            self._server.should_exit = True
        await self.wait_closed()
        self._task = None

    async def __aenter__(self) -> ProviderSim:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # Shared request handling.

    def _faulty(self, stage: Literal["stt", "llm", "tts"], text: str | None) -> bool:
        """Whether this request gets the stage's faults (``only_matching`` unset or matched)."""
        pattern = getattr(self.config, stage).only_matching
        return pattern is None or (text is not None and re.search(pattern, text) is not None)

    async def _gate(
        self, request: Request, stage: Literal["stt", "llm", "tts"], text: str | None = None
    ) -> Response | None:
        """Auth, injected errors and hang mode; None means go on and answer."""
        self.requests[stage] += 1
        key = self.config.api_key
        if key is not None and request.headers.get("authorization") != f"Bearer {key}":
            return _error(
                401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )
        if not self._faulty(stage, text):
            return None
        behaviour: StageBehaviour = getattr(self.config, stage)
        if behaviour.hang or (behaviour.hang_rate and self._random.random() < behaviour.hang_rate):
            async with asyncio.timeout(MAX_HANG_S):
                await self._released.wait()
            return _error(503, "Simulator stopped.", "server_error", None)
        if behaviour.error_rate and self._random.random() < behaviour.error_rate:
            if behaviour.error_status == 429:
                return _error(429, "Rate limit reached.", "requests", "rate_limit_exceeded")
            return _error(behaviour.error_status, "The server had an error.", "server_error", None)
        return None

    async def _first_answer_delay(self, stage: Literal["stt", "llm", "tts"]) -> None:
        behaviour: StageBehaviour = getattr(self.config, stage)
        jitter_ms = self._random.uniform(-behaviour.jitter_ms, behaviour.jitter_ms)
        await asyncio.sleep(max(0.0, behaviour.delay_ms + jitter_ms) / 1000)

    def _gone(self, stage: str, started_s: float) -> Response:
        """The client went away before its request body arrived (it gave up or was
        cancelled): recorded as 499 and answered with nothing (no one is listening)."""
        self.requests[f"{stage}_client_gone"] += 1
        self._record(stage, CLIENT_GONE_STATUS, "client gone before its body arrived", started_s)
        return Response(status_code=CLIENT_GONE_STATUS)

    def _record(self, stage: str, status: int, detail: str, started_s: float) -> None:
        self.log.append(SimRequest(stage, status, detail, (time.perf_counter() - started_s) * 1000))

    # STT.

    async def _transcriptions(self, request: Request) -> Response:
        started_s = time.perf_counter()
        if (refusal := await self._gate(request, "stt")) is not None:
            self._record("stt", refusal.status_code, "refused", started_s)
            return refusal
        try:
            async with request.form() as form:
                upload = form.get("file")
                if not isinstance(upload, UploadFile) or not form.get("model"):
                    return _error(
                        400, "file and model are required.", "invalid_request_error", None
                    )
                audio = await upload.read()
                response_format = str(form.get("response_format") or "json")
                language = str(form.get("language") or "he")
        except ClientDisconnect:
            return self._gone("stt", started_s)
        try:
            pcm16, rate_hz = _decode_wav(audio)
        except (wave.Error, EOFError, ValueError) as exc:
            return _error(400, f"Invalid file format: {exc}", "invalid_request_error", None)
        text, score = self.phrases.recognise(pcm16, rate_hz)
        text = text if text is not None else self.config.default_transcript
        await self._first_answer_delay("stt")
        self._record("stt", 200, text, started_s)
        duration_s = len(pcm16) / 2 / rate_hz
        if response_format in ("text", "srt", "vtt"):
            return PlainTextResponse(text)
        if response_format == "verbose_json":
            return JSONResponse(
                {"task": "transcribe", "language": language, "duration": duration_s, "text": text,
                 "segments": [], "x_sim_score": round(score, 3)}
            )  # fmt: skip
        return JSONResponse(
            {"text": text, "usage": {"type": "duration", "seconds": round(duration_s)}}
        )

    # Streaming STT (Realtime transcription websocket).

    async def _realtime(self, websocket: WebSocket) -> None:
        self.requests["realtime"] += 1
        key = self.config.api_key
        refuse = self.config.realtime.refuse_status
        if key is not None and websocket.headers.get("authorization") != f"Bearer {key}":
            refuse = 401
        elif websocket.query_params.get("intent") != "transcription":
            refuse = 400  # only transcription sessions are simulated
        if refuse is not None:
            await websocket.send_denial_response(refusal(refuse))
            return
        await websocket.accept()
        socket = RealtimeTranscriptionSocket(
            websocket,
            behaviour=lambda: self.config.realtime,
            phrases=self.phrases,
            default_transcript=self.config.default_transcript,
            rng=self._random,
            on_commit=self._on_realtime_commit,
        )
        await socket.serve()

    def _on_realtime_commit(self, commit: RealtimeCommit) -> None:
        self.realtime_commits.append(commit)
        self.log.append(
            SimRequest(
                "stt_stream",
                200 if commit.outcome == "completed" else 500,
                commit.transcript,
                commit.final_after_commit_ms,
            )
        )

    # Chat.

    async def _chat(self, request: Request) -> Response:
        started_s = time.perf_counter()
        try:
            body = await request.json()
            messages = body["messages"]
            model = str(body["model"])
        except ClientDisconnect:
            return self._gone("llm", started_s)
        except (ValueError, KeyError, TypeError):
            body, messages, model = None, None, ""
        last_user = _last_user_text(messages)
        if (refusal := await self._gate(request, "llm", last_user)) is not None:
            self._record("llm", refusal.status_code, "refused", started_s)
            return refusal
        if body is None or messages is None:
            return _error(400, "model and messages are required.", "invalid_request_error", None)
        reply = self.responder(messages)
        detail = reply.text or ",".join(c.name for c in reply.tool_calls)
        self._record("llm", 200, detail, started_s)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        faulty = self._faulty("llm", last_user)
        if body.get("stream"):
            events = self._chat_events(reply, completion_id, model, faulty)
            return StreamingResponse(
                self._watched("llm", events, faulty), media_type="text/event-stream"
            )
        if faulty:
            await self._first_answer_delay("llm")
        if self.config.llm_garbage:
            return PlainTextResponse("<html>upstream garbage</html>", media_type="application/json")
        return JSONResponse(_completion(reply, completion_id, model))

    async def _chat_events(
        self, reply: SimReply, completion_id: str, model: str, faulty: bool
    ) -> AsyncIterator[str]:
        created = int(time.time())

        def event(delta: dict[str, Any], finish_reason: str | None = None) -> str:
            chunk = {
                "id": completion_id, "object": "chat.completion.chunk", "created": created,
                "model": model, "system_fingerprint": "fp_sim",
                "choices": [{"index": 0, "delta": delta, "logprobs": None,
                             "finish_reason": finish_reason}],
            }  # fmt: skip
            return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

        if faulty:
            await self._first_answer_delay("llm")
        yield event({"role": "assistant", "content": "", "refusal": None})
        pause_s = self.config.llm_inter_token_ms / 1000
        if self.config.llm_garbage:  # whatever the reply was: text or tool calls
            yield 'data: {"choices": [{"delta": {"content": \n\n'
            return
        for piece in re.findall(r"\S+\s*", reply.text):
            yield event({"content": piece})
            await asyncio.sleep(pause_s)
        for index, call in enumerate(reply.tool_calls):
            arguments = call.arguments_json()
            call_id = f"call_{uuid.uuid4().hex[:24]}"
            opening = {"index": index, "id": call_id, "type": "function",
                       "function": {"name": call.name, "arguments": ""}}  # fmt: skip
            yield event({"tool_calls": [opening]})
            for start in range(0, len(arguments), TOOL_ARGUMENT_PIECE_CHARS):
                piece = arguments[start : start + TOOL_ARGUMENT_PIECE_CHARS]
                yield event({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                await asyncio.sleep(pause_s)
        end = self.config.llm_stream_end
        if end == "no_finish":
            return
        yield event({}, "tool_calls" if reply.tool_calls else "stop")
        if end == "done":
            yield "data: [DONE]\n\n"

    # TTS.

    async def _speech_route(self, request: Request) -> Response:
        started_s = time.perf_counter()
        try:
            body = await request.json()
            text: str | None = str(body["input"])
            response_format = str(body.get("response_format", "mp3"))
        except ClientDisconnect:
            return self._gone("tts", started_s)
        except (ValueError, KeyError, TypeError):
            text, response_format = None, ""
        if (refusal := await self._gate(request, "tts", text)) is not None:
            self._record("tts", refusal.status_code, "refused", started_s)
            return refusal
        if text is None:
            return _error(
                400, "input, model and voice are required.", "invalid_request_error", None
            )
        if response_format not in ("pcm", "wav"):
            return _error(400, f"Simulator serves pcm or wav, not {response_format}.",
                          "invalid_request_error", "unsupported_format")  # fmt: skip
        if self.config.tts_garbage == "empty":
            self._record("tts", 200, "empty", started_s)
            return Response(b"", media_type="audio/pcm")
        if self.config.tts_garbage == "html":
            self._record("tts", 200, "html", started_s)
            page = "<html><body>" + "gateway says hello " * 400 + "</body></html>"
            return Response(page, media_type="text/html; charset=utf-8")
        pcm = await self._speech_pcm(text)
        self._record("tts", 200, text, started_s)
        media_type = "audio/pcm" if response_format == "pcm" else "audio/wav"
        faulty = self._faulty("tts", text)
        chunks = self._speech_chunks(pcm, response_format == "wav", faulty)
        return StreamingResponse(self._watched("tts", chunks, faulty), media_type=media_type)

    async def _watched(
        self, stage: str, body: AsyncIterator[Any], faulty: bool
    ) -> AsyncIterator[Any]:
        """A streamed body that records when it ended, cut after ``cut_after_chunks``."""
        cut_after = getattr(self.config, stage).cut_after_chunks if faulty else None
        completed = False
        sent = 0
        try:
            async for chunk in body:
                if cut_after is not None and sent >= cut_after:
                    raise _CutStream(f"{stage} stream cut after {sent} chunks (simulated)")
                yield chunk
                sent += 1
            completed = True
        finally:
            self.streams_closed.append(StreamClosed(stage, time.monotonic(), completed))

    async def _speech_chunks(self, pcm: bytes, as_wav: bool, faulty: bool) -> AsyncIterator[bytes]:
        if faulty:
            await self._first_answer_delay("tts")
        payload = pcm16_to_wav(pcm, sample_rate_hz=TTS_SAMPLE_RATE_HZ) if as_wav else pcm
        step = TTS_SAMPLE_RATE_HZ * 2 * self.config.tts_chunk_ms // 1000
        for start in range(0, len(payload), step):
            yield payload[start : start + step]
            if self.config.tts_realtime:
                await asyncio.sleep(self.config.tts_chunk_ms / 1000)

    async def _speech_pcm(self, text: str) -> bytes:
        cached = self._speech.get(text)
        if cached is not None:
            self._speech.move_to_end(text)
            return cached
        pcm = await _espeak_24k(text) if self.config.tts_use_espeak else None
        pcm = pcm if pcm is not None else _synthetic_voice(text)
        self._speech[text] = pcm
        if len(self._speech) > TTS_CACHE_ENTRIES:
            self._speech.popitem(last=False)
        return pcm

    # Admin.

    async def _admin_phrases(self, request: Request) -> Response:
        body = await request.json()
        pcm16 = base64.b64decode(body["pcm16_b64"])
        self.register_phrase(
            str(body["text"]), pcm16, int(body.get("sample_rate_hz", PHRASE_SAMPLE_RATE_HZ))
        )
        return JSONResponse({"phrases": len(self.phrases)}, status_code=201)

    async def _admin_config(self, request: Request) -> Response:
        updates: dict[str, Any] = await request.json()
        for item in fields(SimConfig):
            if item.name not in updates:
                continue
            value = updates[item.name]
            if isinstance(value, dict):
                value = replace(getattr(self.config, item.name), **value)
            setattr(self.config, item.name, value)
        return JSONResponse({"ok": True})

    async def _admin_stats(self, _: Request) -> Response:
        return JSONResponse({"requests": dict(self.requests), "phrases": len(self.phrases)})


def _last_user_text(messages: object) -> str | None:
    if not isinstance(messages, list):
        return None
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else None
    return None


def _error(status: int, message: str, kind: str, code: str | None) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(
        body, status_code=status, headers={"x-request-id": f"req_{uuid.uuid4().hex}"}
    )


def _completion(reply: SimReply, completion_id: str, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
             "function": {"name": c.name, "arguments": c.arguments_json()}}
            for c in reply.tool_calls
        ]  # fmt: skip
    return {
        "id": completion_id, "object": "chat.completion", "created": int(time.time()),
        "model": model, "system_fingerprint": "fp_sim",
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": "tool_calls" if reply.tool_calls else "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }  # fmt: skip


def _decode_wav(data: bytes) -> tuple[bytes, int]:
    with wave.open(io.BytesIO(data)) as reader:
        if reader.getsampwidth() != 2:
            raise ValueError("only 16-bit PCM WAV is supported")
        frames = reader.readframes(reader.getnframes())
        channels = reader.getnchannels()
        rate_hz = reader.getframerate()
    samples = np.frombuffer(frames, dtype="<i2")
    if channels > 1:
        samples = samples[::channels]
    return samples.tobytes(), rate_hz


def _envelope(pcm16: bytes, sample_rate_hz: int) -> np.ndarray:
    """Per-20 ms RMS normalised to the loudest frame, with edge silence trimmed."""
    samples = np.frombuffer(pcm16[: len(pcm16) // 2 * 2], dtype="<i2").astype(np.float32)
    frame = max(1, sample_rate_hz * ENVELOPE_FRAME_MS // 1000)
    count = samples.size // frame
    if count == 0:
        return np.zeros(0, dtype=np.float32)
    rms = np.sqrt(np.mean(samples[: count * frame].reshape(count, frame) ** 2, axis=1))
    return _trimmed_envelope(rms)


def _trimmed_envelope(rms: np.ndarray) -> np.ndarray:
    """Per-frame RMS normalised to the loudest frame, edge silence trimmed (empty if silent)."""
    if rms.size == 0:
        return np.zeros(0, dtype=np.float32)
    peak = float(rms.max())
    if peak < SILENCE_RMS:
        return np.zeros(0, dtype=np.float32)
    active = np.nonzero(rms > peak * EDGE_SILENCE_RATIO)[0]
    trimmed: np.ndarray = (rms[active[0] : active[-1] + 1] / peak).astype(np.float32)
    return trimmed


def _similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Duration ratio times envelope correlation, in [0, 1]."""
    duration_ratio = min(a.size, b.size) / max(a.size, b.size)
    grid = np.linspace(0.0, 1.0, ENVELOPE_POINTS)
    a_points = (
        np.interp(grid, np.linspace(0.0, 1.0, a.size), a)
        if a.size > 1
        else np.full(ENVELOPE_POINTS, a[0])
    )
    b_points = (
        np.interp(grid, np.linspace(0.0, 1.0, b.size), b)
        if b.size > 1
        else np.full(ENVELOPE_POINTS, b[0])
    )
    if np.std(a_points) == 0 or np.std(b_points) == 0:
        return duration_ratio * 0.5
    correlation = float(np.corrcoef(a_points, b_points)[0, 1])
    return duration_ratio * max(correlation, 0.0)


async def _espeak_24k(text: str) -> bytes | None:
    """espeak-ng's Hebrew speech resampled to 24 kHz, or None without espeak-ng."""
    if not EspeakTextToSpeech.available():
        return None
    chunks = [chunk async for chunk in EspeakTextToSpeech(max_concurrency=2).synthesize(text)]
    samples = np.frombuffer(b"".join(chunks), dtype="<i2").astype(np.float32)
    if samples.size == 0:
        return None
    count = samples.size * TTS_SAMPLE_RATE_HZ // ESPEAK_SAMPLE_RATE_HZ
    positions = np.arange(count) * (ESPEAK_SAMPLE_RATE_HZ / TTS_SAMPLE_RATE_HZ)
    resampled = np.interp(positions, np.arange(samples.size), samples)
    return bytes(resampled.clip(-PCM16_MAX, PCM16_MAX).astype("<i2").tobytes())


def _synthetic_voice(text: str) -> bytes:
    """A voiced tone (harmonics of a steady pitch, syllable-rate envelope) as long as the text."""
    duration_ms = min(max(len(text) * SYNTH_MS_PER_CHAR, SYNTH_MIN_MS), SYNTH_MAX_MS)
    t = np.arange(TTS_SAMPLE_RATE_HZ * duration_ms // 1000) / TTS_SAMPLE_RATE_HZ
    voice = sum(np.sin(2 * np.pi * SYNTH_F0_HZ * k * t) / k for k in range(1, 8))
    envelope = 0.5 - 0.5 * np.cos(2 * np.pi * SYNTH_SYLLABLE_HZ * t)
    signal = 0.3 * PCM16_MAX * voice * envelope / 2.6
    return np.asarray(signal).astype("<i2").tobytes()
