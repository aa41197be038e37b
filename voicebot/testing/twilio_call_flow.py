"""What the Twilio REST simulator does after ``calls.create``: the call's life on the wire.

Like Twilio, it POSTs signed status callbacks (``X-Twilio-Signature`` with the account's
auth token over the callback URL, ``I-Twilio-Idempotency-Token`` per event) —
``initiated``, ``ringing``, then ``in-progress`` and ``completed``, or ``busy``,
``no-answer``, ``failed`` — and, when the call is answered, the signed voice webhook
with ``AnsweredBy`` (``human``, ``machine_end_beep`` or ``fax``). A call created with
``AsyncAmd=true`` gets a voice webhook without ``AnsweredBy`` and, ``amd_delay_s`` after
the answer, the signed ``AsyncAmdStatusCallback`` with it (``MachineDetectionDuration``
in ms). An undelivered callback (refused, 5xx, timeout) is not retried, as with
Twilio's default.

Faults on demand (:class:`CallBehaviour`): an outcome mix, REST latency (callbacks
start BEFORE the REST answer returns, as Twilio's do), callback delay, loss, duplicates
(same idempotency token) and out-of-order delivery (the final status before the one it
follows).

With a ``callee`` (:attr:`CallBehaviour.callee`), an answered call whose TwiML is
``<Connect><Stream>`` opens that Media Stream as Twilio does (signed handshake, then
:class:`~voicebot.testing.twilio_caller.SimulatedCall`'s real-time frames) and the callee
speaks on it; the call lasts until the callee returns, the server closes the stream (no
TwiML follows ``<Connect>``, so Twilio hangs up) or the call is hung up over REST.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx
from twilio.request_validator import RequestValidator

from voicebot.testing.twilio_caller import SimulatedCall, open_stream, stream_from_twiml

OUTCOMES = ("human", "machine", "fax", "busy", "no-answer", "failed")
ANSWERED_BY = {"human": "human", "machine": "machine_end_beep", "fax": "fax"}
CALLBACK_TIMEOUT_S = 5.0
STREAM_MAX_S = 3600.0  # a streamed call is ended by its callee, the server or a REST hang-up


@dataclass
class CallBehaviour:
    """How simulated calls go. Probabilities are per call (mix) or per callback."""

    outcomes: dict[str, float] = field(default_factory=lambda: {"human": 1.0})
    """Relative weights over :data:`OUTCOMES`."""
    rest_latency_s: float = 0.0
    """Delay before the create request is answered (callbacks already flow meanwhile)."""
    callback_delay_s: float = 0.05
    """Gap between the call's successive events."""
    ring_s: float = 0.2
    talk_s: float = 1.0
    """How long an answered call lasts unless hung up (or its TwiML hangs up)."""
    loss: float = 0.0
    """Probability that one callback is never delivered."""
    duplicates: float = 0.0
    """Probability that one callback is delivered twice (same idempotency token)."""
    out_of_order: bool = False
    """Deliver each call's final status before the status preceding it."""
    amd_delay_s: float = 0.0
    """With async AMD: time from the answer to the AMD callback (the greeting's moment)."""
    answered_by: dict[str, str] = field(default_factory=lambda: dict(ANSWERED_BY))
    """Outcome → ``AnsweredBy`` sent (e.g. ``{"machine": "machine_end_silence"}``)."""
    seed: int | None = None
    callee: Callable[[CallEvents, SimulatedCall], Coroutine[Any, Any, None]] | None = None
    """The person who picks up a streamed call: called with the call and its open Media
    Stream; None keeps the line silent for ``talk_s`` (no stream is opened)."""

    def pick(self, rng: random.Random) -> str:
        names = [n for n in OUTCOMES if self.outcomes.get(n, 0) > 0]
        return rng.choices(names, weights=[self.outcomes[n] for n in names])[0]


@dataclass
class CallEvents:
    """Per-call hooks into the REST resource (status changes, hang-up requests)."""

    sid: str
    to: str
    from_: str
    url: str | None
    status_callback: str | None
    set_status: Callable[[str], None]
    hangup: asyncio.Event = field(default_factory=asyncio.Event)
    answered_by: str | None = None
    answered_at: float | None = None
    twiml: str | None = None
    """What the voice webhook answered (None: not answered, or the webhook failed)."""
    amd_callback: str | None = None
    """``AsyncAmdStatusCallback`` when the call was created with ``AsyncAmd=true``."""
    amd_sent_at: float | None = None


class CallFlow:
    """Drives calls' events and delivers their callbacks; owns its tasks and HTTP client."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        behaviour: CallBehaviour,
        log_path: Path | None = None,
    ) -> None:
        self.account_sid = account_sid
        self.behaviour = behaviour
        self.validator = RequestValidator(auth_token)
        self._auth_token = auth_token
        self.rng = random.Random(behaviour.seed)
        self.delivered: list[tuple[str, str]] = []
        """(call SID, status) of every callback delivered, in delivery order."""
        self.lost: list[tuple[str, str]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None
        self._log: TextIO | None = log_path.open("a", encoding="utf-8") if log_path else None

    def log(self, event: str, **fields: Any) -> None:
        """Append one JSON line (``event``, wall-clock ``t``) to the JSONL log, if any."""
        if self._log is not None:
            self._log.write(json.dumps({"event": event, "t": time.time(), **fields}) + "\n")
            self._log.flush()

    def start(self, call: CallEvents) -> None:
        """Begin the call's life in a task owned by this flow."""
        self.spawn(self._life(call))

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
        if self._log is not None:
            self._log.close()

    async def _life(self, call: CallEvents) -> None:
        b = self.behaviour
        outcome = b.pick(self.rng)
        seq = 0
        held: list[dict[str, str]] = []

        async def event(status: str, *, hold: bool = False, **extra: str) -> None:
            nonlocal seq
            call.set_status(status)
            params = self._params(call, status, seq, extra)
            seq += 1
            if hold and b.out_of_order:  # delivered after the next (final) event
                held.append(params)
                return
            await self._deliver(call, params)
            for late in held:
                await self._deliver(call, late)
            held.clear()

        async def pause(seconds: float) -> bool:
            """Sleep; True when the call was hung up meanwhile."""
            try:
                await asyncio.wait_for(call.hangup.wait(), timeout=seconds)
            except TimeoutError:
                return False
            return True

        await event("initiated")
        if await pause(b.callback_delay_s):
            return await self._end(call, event, "canceled", answered=False)
        await event("ringing", hold=outcome in ("busy", "no-answer", "failed"))
        if await pause(b.ring_s):
            return await self._end(call, event, "canceled", answered=False)
        if outcome in ("busy", "no-answer", "failed"):
            return await self._end(call, event, outcome, answered=False)
        verdict = b.answered_by.get(outcome, ANSWERED_BY[outcome])
        call.answered_by = None if call.amd_callback else verdict
        call.answered_at = time.monotonic()
        call.set_status("in-progress")
        self.log("answer", sid=call.sid, answered_by=verdict)
        twiml = call.twiml = await self._voice(call)
        if call.amd_callback:
            self.spawn(self._amd_later(call, verdict, b.amd_delay_s))
        await event("in-progress", hold=True)
        talk_s = b.talk_s
        conversation = twiml is not None and ("<Connect" in twiml or "<Gather" in twiml)
        if not conversation:  # a voicemail message then <Hangup/>, or no TwiML
            talk_s = min(talk_s, b.callback_delay_s)
        if b.callee is not None and twiml is not None and "<Stream" in twiml:
            await self._stream(call, twiml, b.callee)
        else:
            await pause(talk_s)
        await self._end(call, event, "completed", answered=True)

    async def _stream(
        self,
        call: CallEvents,
        twiml: str,
        callee: Callable[[CallEvents, SimulatedCall], Coroutine[Any, Any, None]],
    ) -> None:
        """The call's Media Stream with ``callee`` on it, until one side ends it."""
        stream_url, parameters = stream_from_twiml(200, twiml)
        voice = httpx.URL(call.url or stream_url)
        async with open_stream(
            f"{voice.scheme}://{voice.netloc.decode()}",
            stream_url=stream_url,
            parameters=parameters,
            call_sid=call.sid,
            account_sid=self.account_sid,
            auth_token=self._auth_token,
            twiml=twiml,
        ) as stream:
            self.log("stream", sid=call.sid)
            async with asyncio.TaskGroup() as group:
                ends = [
                    group.create_task(callee(call, stream)),
                    group.create_task(call.hangup.wait()),
                    group.create_task(stream.wait_until(lambda: stream.ended, STREAM_MAX_S)),
                ]
                await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
                for task in ends:
                    task.cancel()

    def spawn(self, coro: Any) -> None:
        """Run ``coro`` in a task owned by this flow."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _amd_later(self, call: CallEvents, verdict: str, delay_s: float) -> None:
        try:
            await asyncio.wait_for(call.hangup.wait(), timeout=delay_s)
        except TimeoutError:
            call.answered_by = verdict
            await self.send_amd(call, verdict, duration_ms=int(delay_s * 1000))

    async def send_amd(self, call: CallEvents, answered_by: str, *, duration_ms: int) -> None:
        """POST the signed ``AsyncAmdStatusCallback`` with this verdict now."""
        if not call.amd_callback:
            return
        params = {
            "AccountSid": self.account_sid,
            "CallSid": call.sid,
            "AnsweredBy": answered_by,
            "MachineDetectionDuration": str(duration_ms),
        }
        call.amd_sent_at = time.monotonic()
        self.log("amd", sid=call.sid, answered_by=answered_by)
        await self._post(call.amd_callback, params, None)

    async def _end(self, call: CallEvents, event: Any, status: str, *, answered: bool) -> None:
        extra: dict[str, str] = {}
        if answered and call.answered_at is not None:
            extra["CallDuration"] = str(int(time.monotonic() - call.answered_at))
        self.log("end", sid=call.sid, status=status)
        await event(status, **extra)

    def _params(
        self, call: CallEvents, status: str, seq: int, extra: dict[str, str]
    ) -> dict[str, str]:
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": call.sid,
            "CallStatus": status,
            "Called": call.to,
            "To": call.to,
            "Caller": call.from_,
            "From": call.from_,
            "Direction": "outbound-api",
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(seq),
            "Timestamp": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
            **extra,
        }
        if call.answered_by is not None and status in ("in-progress", "completed"):
            params["AnsweredBy"] = call.answered_by
        return params

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=CALLBACK_TIMEOUT_S)
        return self._http

    async def _deliver(self, call: CallEvents, params: dict[str, str]) -> None:
        if not call.status_callback:
            return
        status = params["CallStatus"]
        if self.rng.random() < self.behaviour.loss:
            self.lost.append((call.sid, status))
            self.log("callback_lost", sid=call.sid, status=status)
            return
        token = "ID" + secrets.token_hex(16)
        copies = 2 if self.rng.random() < self.behaviour.duplicates else 1
        for _ in range(copies):
            await self._post(call.status_callback, params, token)
        self.delivered.append((call.sid, status))

    async def post_signed(self, url: str, params: dict[str, str]) -> str | None:
        """POST a signed form to ``url``; its body on a 2xx, None when undelivered."""
        headers = {"X-Twilio-Signature": self.validator.compute_signature(url, params)}
        try:
            response = await self._client().post(url, data=params, headers=headers)
        except httpx.HTTPError:
            return None
        return response.text if 200 <= response.status_code < 300 else None

    async def _post(self, url: str, params: dict[str, str], token: str | None) -> str | None:
        headers = {"X-Twilio-Signature": self.validator.compute_signature(url, params)}
        if token is not None:
            headers["I-Twilio-Idempotency-Token"] = token
        try:
            response = await self._client().post(url, data=params, headers=headers)
        except httpx.HTTPError:
            return None  # undelivered: Twilio does not retry status callbacks by default
        return response.text if response.status_code == 200 else None

    async def _voice(self, call: CallEvents) -> str | None:
        if not call.url:
            return None
        params = self._params(call, "in-progress", 0, {})
        params.pop("CallbackSource", None)
        params.pop("SequenceNumber", None)
        return await self._post(call.url, params, None)
