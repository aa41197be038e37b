"""Streaming speech recognition over OpenAI's Realtime transcription websocket.

One :class:`RealtimeTranscriptionSession` per call: a websocket to
``{base_url}/realtime?intent=transcription`` (opened by the ``openai`` client's realtime
connection, so base URL, key and headers are the STT endpoint's), configured once with
``session.update`` as a transcription session whose input is ``audio/pcmu`` (G.711 μ-law
8 kHz: Twilio's media payload is forwarded as it arrives, never transcoded) and whose
``turn_detection`` is null (our endpointer decides where a turn ends).

Per utterance: :meth:`~RealtimeTranscriptionSession.begin` at the caller's speech onset,
:meth:`~RealtimeTranscriptionSession.feed` for every 20 ms frame (batched into
``input_audio_buffer.append`` events), :meth:`~RealtimeTranscriptionSession.commit` at the
end of the turn, which returns a future resolved by the item's
``conversation.item.input_audio_transcription.completed``. Interim text arrives as
``…transcription.delta`` events: :attr:`~RealtimeTranscriptionSession.partial_text` holds
what was heard of the current utterance so far, and
:meth:`~RealtimeTranscriptionSession.partials` yields it on every change.

Failure: an ``error`` event, a ``…transcription.failed`` event, the socket closing
mid-stream, a refused connection and no final within ``final_timeout_s`` of the commit all
fail the pending commit with :class:`~voicebot.errors.ProviderError` (the turn loop then
transcribes the utterance with batch STT). An utterance that began while the session was
down is never streamed (its commit fails at once); :meth:`~RealtimeTranscriptionSession.run`
reconnects in the background, backing off between attempts.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import openai
import structlog
import websockets.exceptions

from voicebot.config import ProviderEndpoint
from voicebot.errors import ProviderError, ProviderTimeoutError
from voicebot.providers.base import DEFAULT_LANGUAGE, Transcript
from voicebot.providers.openai_client import make_client

log = structlog.get_logger(__name__)

REALTIME_QUERY = {"intent": "transcription"}
INPUT_AUDIO_FORMAT = "audio/pcmu"
ULAW_BYTES_PER_MS = 8  # μ-law 8 kHz: one byte per sample
# Audio is sent in appends of this much (fewer, larger events; the commit flushes the rest).
APPEND_BATCH_MS = 100
DEFAULT_FINAL_TIMEOUT_S = 2.0
# Connecting and configuring the session (handshake + session.updated) may take this long.
CONNECT_TIMEOUT_S = 5.0
RECONNECT_MIN_S, RECONNECT_MAX_S = 0.5, 30.0
# Partial hypotheses queued for a slow reader; the oldest is dropped past it.
PARTIALS_QUEUE_SIZE = 32
# Item ids remembered as belonging to finished utterances (their late deltas are ignored).
OLD_ITEMS_KEPT = 16
# Audio queued for sending while the socket is slow, before the utterance is given up.
MAX_QUEUED_MESSAGES = 600  # 60 s of 100 ms appends
MAX_ERROR_MESSAGE_CHARS = 200


class RealtimeTranscriber:
    """Opens per-call transcription sessions on one STT endpoint; closed by the lifespan."""

    def __init__(
        self,
        endpoint: ProviderEndpoint,
        *,
        model: str | None = None,
        final_timeout_s: float = DEFAULT_FINAL_TIMEOUT_S,
        client: openai.AsyncOpenAI | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._model = model or endpoint.model
        self._final_timeout_s = final_timeout_s
        self._client = client or make_client(endpoint)

    @property
    def model(self) -> str:
        return self._model

    def open_session(self, *, language: str = DEFAULT_LANGUAGE) -> RealtimeTranscriptionSession:
        """A session for one call; it connects when its :meth:`run` task starts."""
        return RealtimeTranscriptionSession(
            self._client,
            model=self._model,
            language=language,
            final_timeout_s=self._final_timeout_s,
            connect_timeout_s=min(CONNECT_TIMEOUT_S, self._endpoint.timeout_s),
        )

    async def probe(self) -> None:
        """Open and configure one session, then close it; raises ProviderError (a wrong
        key is HTTP 401 at the handshake, an unknown model an ``error`` event)."""
        session = self.open_session()
        try:
            await session.check()
        finally:
            await session.aclose()

    async def aclose(self) -> None:
        await self._client.close()


class RealtimeTranscriptionSession:
    """One call's transcription websocket (see the module docstring for the protocol)."""

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        *,
        model: str,
        language: str = DEFAULT_LANGUAGE,
        final_timeout_s: float = DEFAULT_FINAL_TIMEOUT_S,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        reconnect_min_s: float = RECONNECT_MIN_S,
    ) -> None:
        self._client = client
        self._model = model
        self._language = language
        self._final_timeout_s = final_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._reconnect_min_s = reconnect_min_s
        self._conn: Any = None  # openai's AsyncRealtimeConnection while ready
        self._ready = asyncio.Event()
        self._closed = False
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._audio = bytearray()
        self._batch_bytes = APPEND_BATCH_MS * ULAW_BYTES_PER_MS
        self._streaming = False  # the current utterance is being sent
        self._cut: ProviderError | None = None  # why the current utterance stopped streaming
        self._partial = ""
        self._partials: asyncio.Queue[str | None] = asyncio.Queue(maxsize=PARTIALS_QUEUE_SIZE)
        self._old_items: collections.deque[str] = collections.deque(maxlen=OLD_ITEMS_KEPT)
        self._awaiting_commit: collections.deque[tuple[str, asyncio.Future[Transcript]]] = (
            collections.deque()
        )
        self._by_item: dict[str, tuple[asyncio.Future[Transcript], float]] = {}
        self._event_ids = itertools.count(1)
        self.connects = 0
        self.failures = 0

    # ---- state ----

    @property
    def ready(self) -> bool:
        """Connected and configured: an utterance begun now is streamed."""
        return self._ready.is_set() and not self._closed

    @property
    def partial_text(self) -> str:
        """What has been heard of the current utterance so far (deltas joined)."""
        return self._partial

    async def wait_ready(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the session to be connected; True if it is."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._ready.wait()
        return self.ready

    async def partials(self) -> AsyncIterator[str]:
        """Every change of :attr:`partial_text`, until the session is closed."""
        while True:
            text = await self._partials.get()
            if text is None:
                return
            yield text

    # ---- per utterance (called from the receive path: never block) ----

    def begin(self) -> bool:
        """Start a new utterance; False when the session is down (it is then not streamed
        and its commit fails at once, so the caller falls back to batch STT)."""
        self._audio.clear()
        self._partial = ""
        self._old_items.extend(self._by_item)
        self._streaming = self.ready
        self._cut = None
        if self._streaming:
            self._send({"type": "input_audio_buffer.clear"})
        return self._streaming

    def feed(self, ulaw: bytes) -> None:
        """Append μ-law audio to the current utterance (sent in ``APPEND_BATCH_MS`` pieces)."""
        if not self._streaming:
            return
        self._audio += ulaw
        if len(self._audio) >= self._batch_bytes:
            self._flush_audio()

    def commit(self, *, reopen: bool = False) -> asyncio.Future[Transcript]:
        """End the utterance: its final transcript, or ProviderError (never hangs past
        ``final_timeout_s``). With ``reopen`` the audio fed so far is committed and the
        utterance goes on streaming into a new item (a speculative commit at a short
        pause: if the caller goes on, the next commit's final is the rest of the words;
        ``partial_text`` keeps all of them)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Transcript] = loop.create_future()
        if not self._streaming or self._closed:
            _fail(
                future,
                self._cut
                or ProviderError(
                    "stt streaming session is not connected", details={"stage": "stt"}
                ),
            )
            return future
        self._flush_audio()
        self._streaming = reopen
        event_id = f"commit_{next(self._event_ids)}"
        self._send({"type": "input_audio_buffer.commit", "event_id": event_id})
        self._awaiting_commit.append((event_id, future))
        deadline = loop.call_later(self._final_timeout_s, self._expire, future)
        future.add_done_callback(lambda _: deadline.cancel())
        return future

    def _flush_audio(self) -> None:
        if not self._audio:
            return
        if self._outbox.qsize() >= MAX_QUEUED_MESSAGES:
            # The socket does not keep up: batch STT takes the turn.
            self._cut_utterance(
                ProviderError("stt streaming send backlog overflowed", details={"stage": "stt"})
            )
            self._audio.clear()
            return
        payload = base64.b64encode(self._audio).decode("ascii")
        self._audio.clear()
        self._send({"type": "input_audio_buffer.append", "audio": payload})

    def _cut_utterance(self, error: ProviderError) -> None:
        if self._streaming:
            self._streaming = False
            self._cut = error

    def _send(self, event: dict[str, Any]) -> None:
        self._outbox.put_nowait(event)

    def _expire(self, future: asyncio.Future[Transcript]) -> None:
        if not future.done():
            future.set_exception(
                ProviderTimeoutError("stt streaming final timed out", details={"stage": "stt"})
            )
            future.exception()

    # ---- the connection (run by the call's TaskGroup) ----

    async def run(self) -> None:
        """Connect, serve, and reconnect after a failure (backing off, from
        ``RECONNECT_MIN_S`` again once a connection was up) until cancelled. Never raises
        into the call: streaming is optional, batch STT takes every utterance it fails."""
        backoff_s = self._reconnect_min_s
        try:
            while not self._closed:
                connects = self.connects
                try:
                    await self._serve()
                    error = ProviderError("stt streaming session ended", details={"stage": "stt"})
                except ProviderError as exc:
                    error = exc
                except Exception as exc:  # a fault of ours or the client's: logged once, retried
                    log.exception("stt_stream.unexpected_error")
                    error = ProviderError(
                        f"stt streaming failed: {type(exc).__name__}", details={"stage": "stt"}
                    )
                finally:
                    self._ready.clear()
                    await self._close_connection()
                if self._closed:
                    return
                if self.connects > connects:
                    backoff_s = self._reconnect_min_s
                self.failures += 1
                self._cut_utterance(error)
                self._fail_pending(error)
                log.warning("stt_stream.failed", error=error.message, retry_in_s=backoff_s)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, RECONNECT_MAX_S)
        finally:
            self._closed = True
            self._fail_pending(
                ProviderError("stt streaming session closed", details={"stage": "stt"})
            )
            with contextlib.suppress(asyncio.QueueFull):
                self._partials.put_nowait(None)

    async def aclose(self) -> None:
        """End the session (call end); a running :meth:`run` returns at its next step."""
        self._closed = True
        self._streaming = False
        await self._close_connection()

    async def check(self) -> None:
        """Connect and configure once (no retry), for the start-up probe; raises
        ProviderError. Close the session with :meth:`aclose` afterwards."""
        await self._open()

    async def _open(self) -> Any:
        """The connected, configured connection (``session.updated`` received)."""
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                conn: Any = await self._client.realtime.connect(extra_query=REALTIME_QUERY).enter()
                self._conn = conn
                await conn.send(self._session_update())
                await self._await_configured(conn)
        except STREAM_ERRORS as exc:
            raise map_stream_error(exc) from None
        return conn

    async def _serve(self) -> None:
        conn = await self._open()
        try:
            # Audio queued while down belongs to no streamed utterance.
            while not self._outbox.empty():
                self._outbox.get_nowait()
            self.connects += 1
            self._ready.set()
            log.debug("stt_stream.ready", model=self._model)
            async with asyncio.TaskGroup() as group:
                group.create_task(self._writer(conn))
                await self._reader(conn)
                raise ProviderError(
                    "stt streaming session closed by the server", details={"stage": "stt"}
                )
        except* ProviderError as group:
            raise _first(group) from None
        except* STREAM_ERRORS as group:
            raise map_stream_error(_first(group)) from None

    def _session_update(self) -> dict[str, Any]:
        return {
            "type": "session.update",
            "session": {
                "type": "transcription",
                "audio": {
                    "input": {
                        "format": {"type": INPUT_AUDIO_FORMAT},
                        "transcription": {"model": self._model, "language": self._language},
                        "turn_detection": None,
                    }
                },
            },
        }

    async def _await_configured(self, conn: Any) -> None:
        while True:
            event = _parse(await conn.recv_bytes())
            kind = event.get("type")
            if kind == "session.updated":
                return
            if kind == "error":
                raise _error_event(event)

    async def _writer(self, conn: Any) -> None:
        # The client's typed send() validates each event against every client event type
        # (~1.2 ms per append, measured: 60 % of a core at 50 calls); send_raw (openai >= 3)
        # takes our own JSON as is.
        send_raw = getattr(conn, "send_raw", None)
        while True:
            event = await self._outbox.get()
            if send_raw is not None:
                await send_raw(json.dumps(event))
            else:
                await conn.send(event)

    async def _reader(self, conn: Any) -> None:
        """Dispatch server events until the server closes the socket cleanly."""
        while True:
            try:
                raw = await conn.recv_bytes()
            except websockets.exceptions.ConnectionClosedOK:
                return
            self._dispatch(_parse(raw))

    def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "conversation.item.input_audio_transcription.delta":
            item_id = str(event.get("item_id"))
            delta = event.get("delta")
            if item_id not in self._old_items and isinstance(delta, str) and delta:
                self._partial += delta
                self._publish(self._partial)
        elif kind == "input_audio_buffer.committed":
            if self._awaiting_commit:
                _, future = self._awaiting_commit.popleft()
                self._by_item[str(event.get("item_id"))] = (future, time.monotonic())
        elif kind == "conversation.item.input_audio_transcription.completed":
            entry = self._by_item.pop(str(event.get("item_id")), None)
            if entry is not None and not entry[0].done():
                text = str(event.get("transcript") or "").strip()
                entry[0].set_result(
                    Transcript(text=text, language=self._language, duration_ms=_duration_ms(event))
                )
        elif kind == "conversation.item.input_audio_transcription.failed":
            entry = self._by_item.pop(str(event.get("item_id")), None)
            if entry is not None:
                _fail(entry[0], _error_event(event, "transcription failed"))
        elif kind == "error":
            self._on_error(event)

    def _on_error(self, event: dict[str, Any]) -> None:
        """An error names the client event it answers: a refused commit fails that
        utterance; any other (a refused append) fails everything pending and the
        utterance being streamed, whose audio the server may not have."""
        error = _error_event(event)
        details = event.get("error") if isinstance(event.get("error"), dict) else {}
        about = details.get("event_id") if isinstance(details, dict) else None
        log.warning("stt_stream.error_event", error=error.message)
        for index, (event_id, future) in enumerate(self._awaiting_commit):
            if event_id == about:
                del self._awaiting_commit[index]
                _fail(future, error)
                return
        self._cut_utterance(error)
        self._fail_pending(error)

    def _publish(self, text: str) -> None:
        if self._partials.full():
            self._partials.get_nowait()
        self._partials.put_nowait(text)

    def _fail_pending(self, error: ProviderError) -> None:
        for _, future in self._awaiting_commit:
            _fail(future, error)
        self._awaiting_commit.clear()
        for future, _ in self._by_item.values():
            _fail(future, error)
        self._old_items.extend(self._by_item)
        self._by_item.clear()

    async def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(*STREAM_ERRORS):
                await conn.close()


# What the websocket and the openai client raise on a failed or broken connection.
STREAM_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    websockets.exceptions.WebSocketException,
    openai.OpenAIError,
    json.JSONDecodeError,
)


def map_stream_error(exc: BaseException) -> ProviderError:
    """Translate a websocket or client failure into the voicebot error tree."""
    details: dict[str, Any] = {"stage": "stt", "error": type(exc).__name__}
    if isinstance(exc, TimeoutError):
        return ProviderTimeoutError("stt streaming provider timed out", details=details)
    if isinstance(exc, websockets.exceptions.InvalidStatus):
        status = exc.response.status_code
        details["status"] = status
        return ProviderError(
            f"stt streaming provider refused the connection: HTTP {status}", details=details
        )
    if isinstance(exc, websockets.exceptions.ConnectionClosed):
        code = exc.rcvd.code if exc.rcvd is not None else None
        details["close_code"] = code
        return ProviderError(
            f"stt streaming session closed mid-stream (code {code})", details=details
        )
    if isinstance(exc, OSError):
        return ProviderError("stt streaming provider unreachable", details=details)
    if isinstance(exc, json.JSONDecodeError):
        return ProviderError("stt streaming provider sent a malformed event", details=details)
    return ProviderError(f"stt streaming provider failed: {type(exc).__name__}", details=details)


def _parse(raw: bytes | str) -> dict[str, Any]:
    event = json.loads(raw)
    if not isinstance(event, dict):
        raise json.JSONDecodeError("event is not an object", str(raw)[:50], 0)
    return event


def _error_event(event: dict[str, Any], what: str = "error") -> ProviderError:
    error = event.get("error")
    error = error if isinstance(error, dict) else {}
    message = str(error.get("message") or what)[:MAX_ERROR_MESSAGE_CHARS]
    return ProviderError(
        f"stt streaming provider {what}: {message}",
        details={"stage": "stt", "code": error.get("code"), "type": error.get("type")},
    )


def _duration_ms(event: dict[str, Any]) -> int | None:
    usage = event.get("usage")
    if isinstance(usage, dict) and usage.get("type") == "duration":
        seconds = usage.get("seconds")
        if isinstance(seconds, int | float):
            return round(seconds * 1000)
    return None


def _fail(future: asyncio.Future[Transcript], error: ProviderError) -> None:
    if not future.done():
        future.set_exception(error)
        future.exception()  # retrieved: a dropped utterance's future must not warn


def _first(group: BaseExceptionGroup[Any]) -> BaseException:
    """The first leaf of an exception group (a TaskGroup wraps what its tasks raise)."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
