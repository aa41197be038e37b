"""A simulated phone caller that plays Twilio's part of a Media Streams call.

Used by the end-to-end tests, the load test and the demo. Like Twilio it:

1. posts the signed voice webhook (``X-Twilio-Signature`` over the public URL),
   reads ``<Connect><Stream url>`` and its ``<Parameter>``s from the TwiML;
2. opens the websocket with the handshake signature over the ``wss://`` URL and
   sends ``connected``, ``start``, then one 20 ms ``media`` frame every 20 ms of
   a monotonic clock (scheduled from the stream start, so it never drifts),
   carrying queued caller speech or μ-law silence;
3. plays the agent's audio in real time from a buffer: ``mark`` is echoed when
   playback reaches it, ``clear`` drops the buffer and echoes pending marks at once.

Each call is a receiver task owned by :func:`place_call` plus a frame clock: its
own sender task, or one :class:`FrameTicker` shared by every call of a load test
(one timer for all calls instead of one sleeping task per call). Work per frame
is O(1): a pre-built JSON template, base64 payloads encoded once per utterance
(or once per load test, :func:`encode_speech`), a deque and a few counters.
What it does not do: SIP, jitter or packet loss, the ``outbound`` track, or
status callbacks; it records :class:`CallMetrics` for assertions and reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import secrets
import time
import wave
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import httpx
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from voicebot.audio.codec import (
    FRAME_BYTES_ULAW,
    FRAME_MS,
    PCM16_SAMPLE_BYTES,
    SAMPLE_RATE_HZ,
    ULAW_SILENCE_BYTE,
    ULAW_SILENT_FRAME,
    ulaw_to_pcm16,
)
from voicebot.telephony import twilio_side as wire
from voicebot.telephony.events import MalformedEventError
from voicebot.telephony.twilio_playback import PlaybackBuffer

VOICE_WEBHOOK_PATH = "/twilio/voice"
SIGNATURE_HEADER = "X-Twilio-Signature"
TWILIO_USER_AGENT = "TwilioProxy/1.1"
FRAME_S = FRAME_MS / 1000
HTTP_TIMEOUT_S = 10.0
WS_OPEN_TIMEOUT_S = 10.0
WS_MAX_MESSAGE_BYTES = 1 << 20
DEFAULT_FROM = "+972501234567"
DEFAULT_TO = "+97233769999"
_SILENCE_B64 = wire.encode_payload(ULAW_SILENT_FRAME)
TICKER_LAG_SAMPLES = 100_000
"""At most this many per-tick lag samples are kept (over half an hour of ticks)."""


class CallNotConnectedError(Exception):
    """The voice webhook answered without ``<Connect><Stream>`` (e.g. ``<Hangup/>``)."""

    def __init__(self, status_code: int, twiml: str) -> None:
        super().__init__(f"voice webhook answered {status_code} without a stream: {twiml[:200]}")
        self.status_code = status_code
        self.twiml = twiml


@dataclass(frozen=True, slots=True)
class EncodedSpeech:
    """Caller speech cut into 20 ms frames, each already base64 (silence-padded at the end)."""

    frames_b64: tuple[str, ...]

    @property
    def duration_ms(self) -> int:
        return len(self.frames_b64) * FRAME_MS


def encode_speech(ulaw: bytes) -> EncodedSpeech:
    """Cut μ-law audio into 160-byte frames and base64 each one, once."""
    frames = []
    for offset in range(0, len(ulaw), FRAME_BYTES_ULAW):
        chunk = ulaw[offset : offset + FRAME_BYTES_ULAW]
        if len(chunk) < FRAME_BYTES_ULAW:
            chunk += bytes([ULAW_SILENCE_BYTE]) * (FRAME_BYTES_ULAW - len(chunk))
        frames.append(wire.encode_payload(chunk))
    return EncodedSpeech(frames_b64=tuple(frames))


class FrameTicker:
    """One 20 ms clock driving the ``media`` frames of many calls.

    Ticks are scheduled from the ticker's start on a monotonic clock, so they
    never drift; a late tick is not repeated (like a real phone line, a frame
    that was never sent is not sent twice). ``lags_ms`` keeps, per tick, how
    late the last call's frame left (the worst frame delay of that tick).
    """

    def __init__(self) -> None:
        self._calls: dict[int, Callable[[float, int], Awaitable[None]]] = {}
        self.ticks = 0
        self.lags_ms: deque[float] = deque(maxlen=TICKER_LAG_SAMPLES)
        self.max_lag_ms = 0.0

    def add(self, key: int, on_tick: Callable[[float, int], Awaitable[None]]) -> None:
        """Call ``on_tick(now_s, tick)`` every 20 ms from the next tick on."""
        self._calls[key] = on_tick

    def discard(self, key: int) -> None:
        self._calls.pop(key, None)

    def __len__(self) -> int:
        return len(self._calls)

    async def run(self) -> None:
        """Tick forever (cancel to stop)."""
        started_s = time.monotonic()
        monotonic = time.monotonic
        while True:
            self.ticks += 1
            due_s = started_s + self.ticks * FRAME_S
            wait_s = due_s - monotonic()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            else:
                # Skip ticks that are already over rather than bursting to catch up.
                missed = int(-wait_s / FRAME_S)
                self.ticks += missed
                due_s += missed * FRAME_S
            now = monotonic()
            for on_tick in list(self._calls.values()):
                await on_tick(now, self.ticks)
            lag_ms = (monotonic() - due_s) * 1000
            self.lags_ms.append(lag_ms)
            if lag_ms > self.max_lag_ms:
                self.max_lag_ms = lag_ms


@dataclass(slots=True)
class Utterance:
    """One stretch of caller speech, queued by :meth:`SimulatedCall.say`, and its timings."""

    speech: EncodedSpeech
    done: asyncio.Event = field(default_factory=asyncio.Event)
    onset_s: float | None = None
    end_s: float | None = None
    barge_in: bool = False
    """Agent audio was playing when this speech began."""
    response_latency_ms: float | None = None
    """End of this speech → first agent audio received after it."""
    clear_latency_ms: float | None = None
    """Onset of this speech → ``clear`` received while it lasted."""
    audio_after_clear_ms: float = 0.0
    """Agent audio received after that ``clear`` while this speech lasted (should be 0)."""


@dataclass(slots=True)
class CallMetrics:
    """What one simulated call measured; times are ``time.monotonic()`` seconds."""

    start_sent_s: float | None = None
    first_agent_media_ms: float | None = None
    utterances: list[Utterance] = field(default_factory=list)
    underruns: int = 0
    marks: list[tuple[float, str]] = field(default_factory=list)
    """(ms since ``start``, name) of every mark echoed, in order."""
    clears: int = 0
    frames_sent: int = 0
    max_send_lag_ms: float = 0.0
    agent_audio_ms: float = 0.0
    protocol_errors: list[str] = field(default_factory=list)


class SimulatedCall:
    """One live simulated call; obtain it from :func:`place_call`."""

    def __init__(
        self,
        ws: ClientConnection,
        *,
        stream_sid: str,
        call_sid: str,
        account_sid: str,
        parameters: dict[str, str],
        twiml: str,
        record_agent_audio: bool = True,
        ticker: FrameTicker | None = None,
    ) -> None:
        self.stream_sid, self.call_sid, self.account_sid = stream_sid, call_sid, account_sid
        self.parameters = parameters
        self.twiml = twiml
        self.metrics = CallMetrics()
        self.agent_audio = bytearray()
        self._ws = ws
        self._seq = 0
        self._speech: deque[Utterance] = deque()
        self._speaking: Utterance | None = None
        self._speech_frame = 0
        self._awaiting_response: Utterance | None = None
        self._record_agent_audio = record_agent_audio
        self._ticker = ticker
        self._frame = 0
        self.playback = PlaybackBuffer()
        self._ended = asyncio.Event()
        self._activity = asyncio.Event()
        self.stream_url = ""
        self.media_paused = False
        """While True no ``media`` frames are sent, the socket stays open (a network
        partition without a close); marks are still echoed."""

    # Caller actions.

    def say(self, ulaw: bytes | EncodedSpeech) -> Utterance:
        """Queue caller speech (μ-law 8 kHz); it replaces silence from the next frame on."""
        speech = ulaw if isinstance(ulaw, EncodedSpeech) else encode_speech(ulaw)
        utterance = Utterance(speech=speech)
        self._speech.append(utterance)
        self.metrics.utterances.append(utterance)
        return utterance

    async def send_dtmf(self, digit: str) -> None:
        """Press a key."""
        await self._send(
            wire.dtmf_message(
                stream_sid=self.stream_sid, sequence_number=self._next_seq(), digit=digit
            )
        )

    async def send_raw(self, message: str | bytes) -> None:
        """Send any frame as is: junk text, a binary frame, huge or deeply nested JSON."""
        if not self._ended.is_set():
            await self._ws.send(message)

    async def hangup(self) -> None:
        """Send ``stop`` and close the socket, as Twilio does when the caller hangs up."""
        if self._ended.is_set():
            return
        self._ended.set()
        with contextlib.suppress(ConnectionClosed):
            await self._ws.send(
                wire.stop_message(
                    stream_sid=self.stream_sid,
                    sequence_number=self._next_seq(),
                    account_sid=self.account_sid,
                    call_sid=self.call_sid,
                )
            )
        await self._ws.close()

    # Observation helpers.

    @property
    def ended(self) -> bool:
        """The stream is over (either side closed it)."""
        return self._ended.is_set()

    @property
    def close_code(self) -> int | None:
        """The websocket close code once closed (1000 when the server hung up normally)."""
        return self._ws.close_code

    @property
    def close_reason(self) -> str | None:
        """The close frame's reason once closed: the server's end reason (``brain_end``...)."""
        return self._ws.close_reason

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float) -> None:
        """Wait until ``predicate()`` is true, re-checking after every message and frame."""
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self._activity.clear()
                await self._activity.wait()

    async def wait_for_greeting(self, timeout_s: float) -> None:
        """Wait until the agent's first reply has played out: at least one mark echoed and
        nothing left in playback (the caller may speak without barging in)."""
        await self.wait_until(
            lambda: len(self.metrics.marks) >= 1 and not self.playback.busy, timeout_s
        )

    async def wait_for_mark(self, name: str, timeout_s: float) -> None:
        """Wait until the mark ``name`` has been echoed."""
        await self.wait_until(lambda: any(n == name for _, n in self.metrics.marks), timeout_s)

    def agent_audio_wav(self) -> bytes:
        """Everything the agent sent, as a 16-bit 8 kHz mono WAV file."""
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(PCM16_SAMPLE_BYTES)
            wav.setframerate(SAMPLE_RATE_HZ)
            wav.writeframes(ulaw_to_pcm16(bytes(self.agent_audio)))
        return buffer.getvalue()

    # The two loops.

    async def _run(self) -> None:
        start = wire.start_message(
            stream_sid=self.stream_sid,
            call_sid=self.call_sid,
            account_sid=self.account_sid,
            custom_parameters=self.parameters,
            sequence_number=self._next_seq(),
        )
        try:
            if self._ended.is_set():
                return  # Hung up before the stream began: nothing to send.
            await self._ws.send(wire.connected_message())
            await self._ws.send(start)
            self.metrics.start_sent_s = time.monotonic()
            if self._ticker is not None:
                self._ticker.add(id(self), self._on_tick)
                await self._receiver()
            else:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._sender())
                    await self._receiver()
                    self._ended.set()
        except* ConnectionClosed:
            pass
        finally:
            self._ended.set()
            if self._ticker is not None:
                self._ticker.discard(id(self))
        self._activity.set()

    async def _sender(self) -> None:
        started_s = self.metrics.start_sent_s or time.monotonic()
        frame = 0
        while not self._ended.is_set():
            frame += 1
            lag_s = time.monotonic() - (started_s + frame * FRAME_S)
            if lag_s < 0:
                await asyncio.sleep(-lag_s)
            elif lag_s * 1000 > self.metrics.max_send_lag_ms:
                self.metrics.max_send_lag_ms = lag_s * 1000
            if self._ended.is_set():
                return
            await self._send_frame(time.monotonic())

    async def _on_tick(self, now: float, _tick: int) -> None:
        if self._ended.is_set():
            return
        try:
            await self._send_frame(now)
        except ConnectionClosed:
            self._ended.set()
            self._activity.set()

    async def _send_frame(self, now: float) -> None:
        """One 20 ms step: play the agent's audio, echo reached marks, send the caller's frame."""
        self._frame += 1
        frame = self._frame
        _, reached = self.playback.tick()
        self.metrics.underruns = self.playback.underruns
        for name in reached:
            await self._echo_mark(name, now)
        if self.media_paused:
            self._activity.set()
            return
        await self._send(
            wire.inbound_media_message(
                stream_sid=self.stream_sid,
                sequence_number=self._next_seq(),
                chunk=frame,
                timestamp_ms=frame * FRAME_MS,
                payload_b64=self._caller_frame(now),
            )
        )
        self.metrics.frames_sent += 1
        self._activity.set()

    async def _receiver(self) -> None:
        async for raw in self._ws:
            now = time.monotonic()
            try:
                event = wire.parse_outbound(raw)
            except MalformedEventError as exc:
                # Twilio ends the stream on a malformed message (error 31924).
                self.metrics.protocol_errors.append(exc.message)
                await self._ws.close()
                return
            if event.stream_sid != self.stream_sid:
                self.metrics.protocol_errors.append(f"wrong streamSid {event.stream_sid!r}")
            elif isinstance(event, wire.OutboundMedia):
                self._on_media(event.payload, now)
            elif isinstance(event, wire.OutboundMark):
                if self.playback.add_mark(event.name):
                    await self._echo_mark(event.name, now)
            else:
                await self._on_clear(now)
            self._activity.set()

    # Per-frame and per-message work.

    def _caller_frame(self, now: float) -> str:
        utterance = self._speaking
        if utterance is None:
            if not self._speech:
                return _SILENCE_B64
            utterance = self._speaking = self._speech.popleft()
            utterance.onset_s = now
            utterance.barge_in = self.playback.busy
            self._speech_frame = 0
        frames = utterance.speech.frames_b64
        payload = frames[self._speech_frame]
        self._speech_frame += 1
        if self._speech_frame >= len(frames):
            utterance.end_s = now
            utterance.done.set()
            self._speaking = None
            self._awaiting_response = utterance
        return payload

    def _on_media(self, payload: bytes, now: float) -> None:
        if self._record_agent_audio:
            self.agent_audio += payload
        duration_ms = len(payload) / SAMPLE_RATE_HZ * 1000
        self.metrics.agent_audio_ms += duration_ms
        self.playback.add_audio(payload)
        start_s = self.metrics.start_sent_s
        if self.metrics.first_agent_media_ms is None and start_s is not None:
            self.metrics.first_agent_media_ms = (now - start_s) * 1000
        waiting = self._awaiting_response
        if waiting is not None and waiting.end_s is not None:
            waiting.response_latency_ms = (now - waiting.end_s) * 1000
            self._awaiting_response = None
        speaking = self._speaking
        if speaking is not None and speaking.clear_latency_ms is not None:
            speaking.audio_after_clear_ms += duration_ms

    async def _on_clear(self, now: float) -> None:
        self.metrics.clears += 1
        pending = self.playback.clear()
        speaking = self._speaking
        if (
            speaking is not None
            and speaking.onset_s is not None
            and speaking.clear_latency_ms is None
        ):
            speaking.clear_latency_ms = (now - speaking.onset_s) * 1000
        for name in pending:
            await self._echo_mark(name, now)

    async def _echo_mark(self, name: str, now: float) -> None:
        start_s = self.metrics.start_sent_s or now
        self.metrics.marks.append(((now - start_s) * 1000, name))
        await self._send(
            wire.mark_echo_message(
                stream_sid=self.stream_sid, sequence_number=self._next_seq(), name=name
            )
        )

    async def _send(self, message: str) -> None:
        if not self._ended.is_set():
            await self._ws.send(message)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq


def _ws_base(http_base: str) -> str:
    scheme, rest = http_base.rstrip("/").split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}"


def stream_from_twiml(status_code: int, twiml: str) -> tuple[str, dict[str, str]]:
    """The ``<Connect><Stream>`` URL and ``<Parameter>``s of a voice webhook's answer;
    raises :class:`CallNotConnectedError` when it connects no stream."""
    try:
        root = ET.fromstring(twiml)  # noqa: S314  our own server's TwiML, in tests
    except ET.ParseError as exc:
        raise CallNotConnectedError(status_code, twiml) from exc
    stream = root.find("./Connect/Stream")
    if status_code != httpx.codes.OK or stream is None or not stream.get("url"):
        raise CallNotConnectedError(status_code, twiml)
    parameters = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    return stream.get("url", ""), parameters


async def post_voice_webhook(
    client: httpx.AsyncClient,
    server_base_url: str,
    *,
    account_sid: str,
    auth_token: str,
    call_sid: str,
    from_number: str = DEFAULT_FROM,
    to_number: str = DEFAULT_TO,
    direction: str = "outbound-api",
    public_base_url: str | None = None,
    extra_params: Mapping[str, str] | None = None,
) -> httpx.Response:
    """POST the signed voice webhook Twilio sends when ``call_sid`` is answered, to
    ``server_base_url``, signed for ``public_base_url`` (the URL the server believes it is
    reachable at; default ``server_base_url``); the server's answer, TwiML expected."""
    public = (public_base_url or server_base_url).rstrip("/")
    form = {
        "AccountSid": account_sid,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": "in-progress",
        "Called": to_number,
        "Caller": from_number,
        "Direction": direction,
        "From": from_number,
        "To": to_number,
        **(extra_params or {}),
    }
    signature = RequestValidator(auth_token).compute_signature(public + VOICE_WEBHOOK_PATH, form)
    headers = {SIGNATURE_HEADER: signature, "User-Agent": TWILIO_USER_AGENT}
    return await client.post(
        server_base_url.rstrip("/") + VOICE_WEBHOOK_PATH, data=form, headers=headers
    )


@contextlib.asynccontextmanager
async def place_call(
    server_base_url: str,
    *,
    account_sid: str,
    auth_token: str,
    from_number: str = DEFAULT_FROM,
    to_number: str = DEFAULT_TO,
    call_sid: str | None = None,
    direction: str = "outbound-api",
    public_base_url: str | None = None,
    extra_params: Mapping[str, str] | None = None,
    http: httpx.AsyncClient | None = None,
    ticker: FrameTicker | None = None,
    record_agent_audio: bool = True,
    sign_handshake: bool = True,
) -> AsyncIterator[SimulatedCall]:
    """Answer a call the way Twilio does and stream it until the block exits (then hang up).

    ``public_base_url`` is the URL the server believes it is reachable at (what
    Twilio signs); requests go to ``server_base_url``. With ``ticker`` the call's
    frames are clocked by that shared :class:`FrameTicker` (which the caller runs);
    ``record_agent_audio=False`` keeps no copy of the agent's audio (load tests). Raises
    :class:`CallNotConnectedError` when the webhook does not connect a stream.
    """
    public = (public_base_url or server_base_url).rstrip("/")
    server = server_base_url.rstrip("/")
    sid = call_sid or "CA" + secrets.token_hex(16)
    async with contextlib.AsyncExitStack() as stack:
        client = http
        if client is None:
            client = await stack.enter_async_context(httpx.AsyncClient(timeout=HTTP_TIMEOUT_S))
        response = await post_voice_webhook(
            client,
            server,
            account_sid=account_sid,
            auth_token=auth_token,
            call_sid=sid,
            from_number=from_number,
            to_number=to_number,
            direction=direction,
            public_base_url=public,
            extra_params=extra_params,
        )
        stream_url, parameters = stream_from_twiml(response.status_code, response.text)
        call = await stack.enter_async_context(
            open_stream(
                server,
                stream_url=stream_url,
                parameters=parameters,
                call_sid=sid,
                account_sid=account_sid,
                auth_token=auth_token,
                public_base_url=public,
                twiml=response.text,
                ticker=ticker,
                record_agent_audio=record_agent_audio,
                sign_handshake=sign_handshake,
            )
        )
        yield call


@contextlib.asynccontextmanager
async def open_stream(
    server_base_url: str,
    *,
    stream_url: str,
    parameters: Mapping[str, str],
    call_sid: str,
    account_sid: str,
    auth_token: str,
    public_base_url: str | None = None,
    twiml: str = "",
    ticker: FrameTicker | None = None,
    record_agent_audio: bool = True,
    sign_handshake: bool = True,
) -> AsyncIterator[SimulatedCall]:
    """Open the Media Stream websocket of a call and stream until the block exits (then
    ``stop``). Tests also use it to replay a call's stream URL and parameters (its token)
    on a second socket; ``sign_handshake=False`` leaves out ``X-Twilio-Signature``."""
    public = (public_base_url or server_base_url).rstrip("/")
    server = server_base_url.rstrip("/")
    headers = {"User-Agent": TWILIO_USER_AGENT}
    if sign_handshake:
        headers[SIGNATURE_HEADER] = RequestValidator(auth_token).compute_signature(stream_url, {})
    connect_url = stream_url.replace(_ws_base(public), _ws_base(server), 1)
    async with connect(
        connect_url,
        compression=None,
        open_timeout=WS_OPEN_TIMEOUT_S,
        max_size=WS_MAX_MESSAGE_BYTES,
        ping_interval=None,
        additional_headers=headers,
    ) as ws:
        call = SimulatedCall(
            ws,
            stream_sid="MZ" + secrets.token_hex(16),
            call_sid=call_sid,
            account_sid=account_sid,
            parameters=dict(parameters),
            twiml=twiml,
            record_agent_audio=record_agent_audio,
            ticker=ticker,
        )
        call.stream_url = stream_url
        runner = asyncio.create_task(call._run())
        try:
            yield call
        finally:
            await call.hangup()
            await runner
