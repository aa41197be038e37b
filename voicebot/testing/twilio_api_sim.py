"""A simulator of Twilio's Calls REST resource, for tests and the demo.

This is NOT Twilio. It speaks the same wire as ``api.twilio.com`` for the few
requests voicebot makes, so the real ``twilio`` client can be pointed at it
(``TWILIO_API_BASE_URL``; run it as a process with ``python -m
voicebot.testing.twilio_api_sim --help``):

* ``POST /2010-04-01/Accounts/{AccountSid}/Calls.json`` (form-encoded) creates a
  call and answers 201 with a Twilio-shaped Call resource and a fresh ``CA…`` SID;
  ``MachineDetection`` must be ``Enable`` or ``DetectMessageEnd`` (400/21234 otherwise);
  with ``AsyncAmd=true`` the ``AsyncAmdStatusCallback`` is kept and called (by the call's
  flow, or on demand with :meth:`TwilioApiSimulator.send_amd`);
* ``POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` updates it:
  ``Status=completed|canceled``, ``Twiml=…`` or ``Url=…``; a call that is no
  longer in progress answers 400 with Twilio error 21220, an unknown SID 404/20404;
* ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` sends an SMS: 201 with a
  Message resource (``SM…``, status ``queued``; 400/21604 without ``To``, 21603 without
  ``From``, 21602 without ``Body``), kept in :attr:`TwilioApiSimulator.messages`, then the
  signed ``StatusCallback`` with ``sent`` and ``delivered`` (or ``undelivered`` with
  ``ErrorCode`` 30003 for numbers in :attr:`TwilioApiSimulator.undeliverable`, 30006
  for Israeli landlines, +972 2/3/4/8/9, as carriers report them). As Twilio, a body
  over 1,600 characters is refused (400/21617), a ``To`` that is not E.164 too
  (400/21211), and ``num_segments`` is counted the GSM-7 way (160, 153 per part) or,
  for any other character (Hebrew), the UCS-2 way (70, 67 per part);
* ``GET`` of the same path fetches the call; ``GET …/Calls.json`` lists calls
  (``To``, ``StartTime>`` filters);
* with a :class:`~voicebot.testing.twilio_call_flow.CallBehaviour`, each created call
  lives like a Twilio call: signed status callbacks and the voice webhook, with an
  outcome mix, latency, loss, duplicates and out-of-order delivery on demand
  (:mod:`voicebot.testing.twilio_call_flow`), and a JSONL log of every create.

Requests must carry HTTP Basic auth with the configured account SID and auth
token (401/20003 otherwise, as Twilio answers). Every request is recorded in
:attr:`TwilioApiSimulator.requests`, and faults can be queued with
:meth:`TwilioApiSimulator.fail_next`. What it does not do: place real calls,
model pricing, or open Media Streams unless the behaviour has a ``callee`` (then each
answered ``<Connect><Stream>`` call opens one, :mod:`voicebot.testing.twilio_call_flow`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import re
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from voicebot.testing.twilio_call_flow import CallBehaviour, CallEvents, CallFlow

API_VERSION = "2010-04-01"
LOOPBACK_HOST = "127.0.0.1"
SERVER_START_TIMEOUT_S = 5.0
SERVER_POLL_INTERVAL_S = 0.01
ERROR_DOCS_URL = "https://www.twilio.com/docs/errors/"
CODE_AUTHENTICATE = 20003
CODE_NOT_FOUND = 20404
CODE_NO_TO = 21201
CODE_NO_URL = 21205
CODE_NO_FROM = 21603
CODE_CALL_NOT_IN_PROGRESS = 21220
CODE_INVALID_MACHINE_DETECTION = 21234
CODE_SMS_NO_BODY = 21602
CODE_SMS_NO_TO = 21604
CODE_SMS_BAD_TO = 21211
CODE_SMS_TOO_LONG = 21617
CODE_SMS_LANDLINE = "30006"
SMS_MAX_CHARS = 1600
GSM7_CHARS = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)
"""GSM 03.38 (with the extension table): a body of only these is sent as GSM-7."""
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
ISRAELI_LANDLINE = re.compile(r"^\+972[23489][0-9]{7}$")


def sms_segments(body: str) -> int:
    """How many SMS parts Twilio bills for ``body``: GSM-7 160 (153 per part when split),
    UCS-2 70 (67 per part) when any character is outside GSM-7 (Hebrew)."""
    if set(body) <= GSM7_CHARS:
        single, part = 160, 153
    else:
        single, part = 70, 67
    return 1 if len(body) <= single else -(-len(body) // part)


MACHINE_DETECTION_VALUES = frozenset({"Enable", "DetectMessageEnd"})
LIVE_STATUSES = frozenset({"queued", "initiated", "ringing", "in-progress"})


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the simulator received, as it arrived."""

    method: str
    path: str
    form: dict[str, list[str]]
    authorized: bool

    def value(self, name: str) -> str | None:
        """The first value of form field ``name``, if sent."""
        values = self.form.get(name)
        return values[0] if values else None


@dataclass(slots=True)
class SimulatedCall:
    """A call as the simulator holds it."""

    sid: str
    to: str
    from_: str
    status: str
    created_at: datetime
    twiml_updates: list[str] = field(default_factory=list)
    machine_detection: str | None = None
    """``MachineDetection`` as requested (``Enable`` or ``DetectMessageEnd``), if any."""
    amd_callback: str | None = None
    """``AsyncAmdStatusCallback`` when created with ``AsyncAmd=true``."""
    events: CallEvents | None = None


@dataclass(slots=True)
class SimulatedMessage:
    """An SMS as the simulator holds it."""

    sid: str
    to: str
    from_: str
    body: str
    status: str
    status_callback: str | None
    segments: int = 1
    """The parts Twilio would bill (:func:`sms_segments`)."""
    callbacks: list[str] = field(default_factory=list)
    """Statuses called back (delivered to the callback URL), in order."""


@dataclass(frozen=True, slots=True)
class _Fault:
    status: int
    code: int
    message: str


class TwilioApiSimulator:
    """State and Starlette app of the simulated Calls resource for one account."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        answer_calls: bool = True,
        behaviour: CallBehaviour | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.answer_calls = answer_calls
        """When True, created calls go straight to ``in-progress`` (the callee picked up);
        ignored with a ``behaviour``, whose calls live their own life."""
        self.requests: list[RecordedRequest] = []
        self.calls: dict[str, SimulatedCall] = {}
        self.flow = (
            CallFlow(
                account_sid=account_sid,
                auth_token=auth_token,
                behaviour=behaviour,
                log_path=log_path,
            )
            if behaviour is not None
            else None
        )
        self.creates: list[tuple[float, str]] = []
        """(monotonic time, SID) of every call created, in order."""
        self.max_live = 0
        """The most calls live (created, not yet ended) at once."""
        self.max_live_per_number = 0
        """The most live calls to one number at once."""
        self._faults: list[_Fault] = []
        self._faults_after_create: list[_Fault] = []
        self._on_demand_flow: CallFlow | None = None
        self.messages: list[SimulatedMessage] = []
        self.undeliverable: set[str] = set()
        """Numbers whose SMS ends ``undelivered`` (a landline, a blocked handset)."""
        self.sms_callback_delay_s = 0.05
        self.response_delay_s = 0.0
        """Every request is answered this much later (a slow or distant Twilio API)."""
        prefix = f"/{API_VERSION}/Accounts/{{account_sid}}/Calls"
        self.app: Starlette = Starlette(
            routes=[
                Route(prefix + ".json", self._create, methods=["POST"]),
                Route(prefix + ".json", self._list, methods=["GET"]),
                Route(prefix + "/{call_sid}.json", self._update, methods=["POST"]),
                Route(prefix + "/{call_sid}.json", self._fetch, methods=["GET"]),
                Route(
                    f"/{API_VERSION}/Accounts/{{account_sid}}/Messages.json",
                    self._message,
                    methods=["POST"],
                ),
            ]
        )

    def fail_next(
        self, status: int, *, code: int = 20500, message: str = "Internal error", count: int = 1
    ) -> None:
        """Answer the next ``count`` authorized requests with this error instead."""
        self._faults.extend(_Fault(status, code, message) for _ in range(count))

    def fail_after_create(
        self, status: int, *, code: int = 20500, message: str = "Internal error", count: int = 1
    ) -> None:
        """The next ``count`` creates place the call and then answer this error (a 5xx
        whose call exists all the same: the client cannot know it was created)."""
        self._faults_after_create.extend(_Fault(status, code, message) for _ in range(count))

    def set_status(self, call_sid: str, status: str) -> None:
        """Move a call to ``status`` (e.g. ``completed`` when the callee hangs up)."""
        self.calls[call_sid].status = status

    def updates_for(self, call_sid: str) -> list[RecordedRequest]:
        """The update requests received for one call, in order."""
        suffix = f"/Calls/{call_sid}.json"
        return [r for r in self.requests if r.method == "POST" and r.path.endswith(suffix)]

    async def _record(self, request: Request) -> tuple[RecordedRequest, JSONResponse | None]:
        form: dict[str, list[str]] = {}
        if request.method == "POST":
            data = await request.form()
            for key, value in data.multi_items():
                form.setdefault(key, []).append(str(value))
        authorized = self._authorized(request)
        recorded = RecordedRequest(request.method, request.url.path, form, authorized)
        self.requests.append(recorded)
        if self.response_delay_s:
            await asyncio.sleep(self.response_delay_s)
        if not authorized:
            return recorded, _error(
                401,
                CODE_AUTHENTICATE,
                "Authenticate",
                detail="Your AccountSid or AuthToken was incorrect.",
                headers={"WWW-Authenticate": 'Basic realm="Twilio API"'},
            )
        if self._faults:
            fault = self._faults.pop(0)
            return recorded, _error(fault.status, fault.code, fault.message)
        return recorded, None

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        path_account = request.path_params.get("account_sid")
        return (
            secrets.compare_digest(user, self.account_sid)
            and secrets.compare_digest(password, self.auth_token)
            and path_account == self.account_sid
        )

    async def _create(self, request: Request) -> JSONResponse:
        recorded, failure = await self._record(request)
        if failure is not None:
            return failure
        to, from_ = recorded.value("To"), recorded.value("From")
        if not to:
            return _error(400, CODE_NO_TO, "No 'To' number is specified")
        if not from_:
            return _error(400, CODE_NO_FROM, "A 'From' phone number is required.")
        if not (
            recorded.value("Url") or recorded.value("Twiml") or recorded.value("ApplicationSid")
        ):
            return _error(400, CODE_NO_URL, "Url parameter is required.")
        machine_detection = recorded.value("MachineDetection")
        if machine_detection is not None and machine_detection not in MACHINE_DETECTION_VALUES:
            return _error(
                400,
                CODE_INVALID_MACHINE_DETECTION,
                "Invalid Machine Detection configuration value",
            )
        async_amd = (recorded.value("AsyncAmd") or "").lower() == "true"
        call = SimulatedCall(
            sid="CA" + secrets.token_hex(16),
            to=to,
            from_=from_,
            status="queued",
            created_at=datetime.now(UTC),
            machine_detection=machine_detection,
            amd_callback=recorded.value("AsyncAmdStatusCallback") if async_amd else None,
        )
        self.calls[call.sid] = call
        self.creates.append((time.monotonic(), call.sid))
        body = self._resource(call)
        if self.flow is not None:
            events = CallEvents(
                sid=call.sid,
                to=to,
                from_=from_,
                url=recorded.value("Url"),
                status_callback=recorded.value("StatusCallback"),
                set_status=functools.partial(self._set_live, call),
                amd_callback=call.amd_callback,
            )
            call.events = events
            self.flow.log(
                "create", sid=call.sid, to=to, url=recorded.value("Url"), live=self.live_count()
            )
            self.max_live = max(self.max_live, self.live_count())
            same_number = sum(
                1 for c in self.calls.values() if c.to == to and c.status in LIVE_STATUSES
            )
            self.max_live_per_number = max(self.max_live_per_number, same_number)
            self.flow.start(events)  # callbacks may arrive before this answer does
            if self.flow.behaviour.rest_latency_s > 0:
                await asyncio.sleep(self.flow.behaviour.rest_latency_s)
        elif self.answer_calls:
            call.status = "in-progress"
        if self._faults_after_create:
            fault = self._faults_after_create.pop(0)
            return _error(fault.status, fault.code, fault.message)
        return JSONResponse(body, status_code=201)

    async def aclose(self) -> None:
        """Stop the calls' flows (their tasks and callback client)."""
        if self.flow is not None:
            await self.flow.aclose()
        if self._on_demand_flow is not None:
            await self._on_demand_flow.aclose()

    def live_count(self) -> int:
        """Calls created and not yet ended."""
        return sum(1 for c in self.calls.values() if c.status in LIVE_STATUSES)

    def _set_live(self, call: SimulatedCall, status: str) -> None:
        call.status = status

    async def _list(self, request: Request) -> JSONResponse:
        _, failure = await self._record(request)
        if failure is not None:
            return failure
        to = request.query_params.get("To")
        after = request.query_params.get("StartTime>")
        since = datetime.fromisoformat(after.replace("Z", "+00:00")) if after else None
        found = [
            self._resource(c)
            for c in self.calls.values()
            if (to is None or c.to == to) and (since is None or c.created_at >= since)
        ]
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls.json"
        return JSONResponse(
            {
                "calls": found,
                "first_page_uri": uri,
                "next_page_uri": None,
                "previous_page_uri": None,
                "page": 0,
                "page_size": len(found) or 50,
                "start": 0,
                "end": max(0, len(found) - 1),
                "uri": uri,
            }
        )

    async def _update(self, request: Request) -> JSONResponse:
        recorded, failure = await self._record(request)
        if failure is not None:
            return failure
        call = self.calls.get(request.path_params["call_sid"])
        if call is None:
            return _error(
                404, CODE_NOT_FOUND, f"The requested resource {request.url.path} was not found"
            )
        status = recorded.value("Status")
        if call.status not in LIVE_STATUSES:
            return _error(
                400, CODE_CALL_NOT_IN_PROGRESS, "Call is not in-progress. Cannot redirect."
            )
        if status in ("canceled", "completed") and call.events is not None:
            call.events.hangup.set()  # the call's flow ends it and sends the callback
        elif status == "canceled":
            if call.status in ("queued", "ringing"):
                call.status = "canceled"
        elif status == "completed":
            call.status = "completed"
        else:
            document = recorded.value("Twiml") or recorded.value("Url")
            if document is not None:
                call.twiml_updates.append(document)
                if call.events is not None and "<Hangup" in document:
                    call.events.hangup.set()  # the new TwiML plays, then the call ends
        return JSONResponse(self._resource(call))

    async def send_amd(self, call_sid: str, answered_by: str, *, duration_ms: int = 0) -> None:
        """POST the call's signed ``AsyncAmdStatusCallback`` with ``answered_by`` now (tests
        pick the moment: before, during or after the greeting)."""
        call = self.calls[call_sid]
        if call.amd_callback is None:
            raise ValueError(f"call {call_sid} was not created with AsyncAmd=true")
        events = call.events or CallEvents(
            sid=call.sid,
            to=call.to,
            from_=call.from_,
            url=None,
            status_callback=None,
            set_status=functools.partial(self._set_live, call),
            amd_callback=call.amd_callback,
        )
        flow = self.flow or self._amd_flow()
        await flow.send_amd(events, answered_by, duration_ms=duration_ms)

    async def _message(self, request: Request) -> JSONResponse:
        recorded, failure = await self._record(request)
        if failure is not None:
            return failure
        to, from_, body = recorded.value("To"), recorded.value("From"), recorded.value("Body")
        if not to:
            return _error(400, CODE_SMS_NO_TO, "A 'To' phone number is required.")
        if not from_:
            return _error(400, CODE_NO_FROM, "A 'From' phone number is required.")
        if not body:
            return _error(400, CODE_SMS_NO_BODY, "Message body is required.")
        if not E164.match(to):
            return _error(
                400, CODE_SMS_BAD_TO, f"The 'To' number {to} is not a valid phone number."
            )
        if len(body) > SMS_MAX_CHARS:
            return _error(
                400,
                CODE_SMS_TOO_LONG,
                "The concatenated message body exceeds the 1600 character limit.",
            )
        message = SimulatedMessage(
            sid="SM" + secrets.token_hex(16),
            to=to,
            from_=from_,
            body=body,
            status="queued",
            status_callback=recorded.value("StatusCallback"),
            segments=sms_segments(body),
        )
        self.messages.append(message)
        self._amd_flow().spawn(self._message_life(message))
        created = format_datetime(datetime.now(UTC), usegmt=True)
        return JSONResponse(
            {
                "sid": message.sid,
                "account_sid": self.account_sid,
                "api_version": API_VERSION,
                "to": to,
                "from": from_,
                "body": body,
                "status": "queued",
                "direction": "outbound-api",
                "num_segments": str(message.segments),
                "num_media": "0",
                "error_code": None,
                "error_message": None,
                "price": None,
                "price_unit": "USD",
                "date_created": created,
                "date_updated": created,
                "date_sent": None,
                "messaging_service_sid": None,
                "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{message.sid}.json",
                "subresource_uris": {},
            },
            status_code=201,
        )

    async def _message_life(self, message: SimulatedMessage) -> None:
        landline = ISRAELI_LANDLINE.match(message.to) is not None
        final = "undelivered" if message.to in self.undeliverable or landline else "delivered"
        for status in ("sent", final):
            await asyncio.sleep(self.sms_callback_delay_s)
            message.status = status
            if not message.status_callback:
                continue
            params = {
                "AccountSid": self.account_sid,
                "ApiVersion": API_VERSION,
                "MessageSid": message.sid,
                "SmsSid": message.sid,
                "MessageStatus": status,
                "SmsStatus": status,
                "To": message.to,
                "From": message.from_,
            }
            if status == "undelivered":
                params["ErrorCode"] = CODE_SMS_LANDLINE if landline else "30003"
            if await self._amd_flow().post_signed(message.status_callback, params) is not None:
                message.callbacks.append(status)

    def _amd_flow(self) -> CallFlow:
        if self._on_demand_flow is None:
            self._on_demand_flow = CallFlow(
                account_sid=self.account_sid, auth_token=self.auth_token, behaviour=CallBehaviour()
            )
        return self._on_demand_flow

    async def _fetch(self, request: Request) -> JSONResponse:
        _, failure = await self._record(request)
        if failure is not None:
            return failure
        call = self.calls.get(request.path_params["call_sid"])
        if call is None:
            return _error(
                404, CODE_NOT_FOUND, f"The requested resource {request.url.path} was not found"
            )
        return JSONResponse(self._resource(call))

    def _resource(self, call: SimulatedCall) -> dict[str, Any]:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{call.sid}"
        created = format_datetime(call.created_at, usegmt=True)
        return {
            "sid": call.sid,
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "to": call.to,
            "to_formatted": call.to,
            "from": call.from_,
            "from_formatted": call.from_,
            "status": call.status,
            "direction": "outbound-api",
            "answered_by": call.events.answered_by if call.events is not None else None,
            "caller_name": None,
            "date_created": created,
            "date_updated": created,
            "start_time": None,
            "end_time": None,
            "duration": None,
            "price": None,
            "price_unit": "USD",
            "parent_call_sid": None,
            "phone_number_sid": None,
            "forwarded_from": None,
            "group_sid": None,
            "queue_time": "0",
            "trunk_sid": None,
            "annotation": None,
            "uri": uri + ".json",
            "subresource_uris": {
                name: f"{uri}/{name.title().replace('_', '')}.json"
                for name in (
                    "notifications",
                    "recordings",
                    "payments",
                    "events",
                    "siprec",
                    "streams",
                )
            },
        }


def _error(
    status: int,
    code: int,
    message: str,
    *,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "code": code,
        "message": message,
        "more_info": f"{ERROR_DOCS_URL}{code}",
        "status": status,
    }
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, headers=headers)


def loopback_socket() -> socket.socket:
    """A TCP socket bound to a free loopback port (its URL is known before serving)."""
    return _loopback_socket()


def _loopback_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: without it, uvloop serving a pre-bound socket
    # leaves Nagle on, and each response waits ~40 ms for the client's delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((LOOPBACK_HOST, 0))
    return sock


def _server(app: ASGIApp) -> uvicorn.Server:
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, ws="auto")
    return uvicorn.Server(config)


@contextlib.asynccontextmanager
async def serve_on_loopback(app: ASGIApp, sock: socket.socket | None = None) -> AsyncIterator[str]:
    """Run ``app`` with uvicorn on a free loopback port (or ``sock``) in this event loop;
    yield its base URL."""
    sock = sock or _loopback_socket()
    port = sock.getsockname()[1]
    server = _server(app)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(SERVER_START_TIMEOUT_S):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(SERVER_POLL_INTERVAL_S)
        yield f"http://{LOOPBACK_HOST}:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@contextlib.contextmanager
def serve_in_thread(app: ASGIApp) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free loopback port in a thread; yield its base URL."""
    sock = _loopback_socket()
    port = sock.getsockname()[1]
    server = _server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(SERVER_POLL_INTERVAL_S)
        if not server.started:
            raise RuntimeError("simulated server did not start")
        yield f"http://{LOOPBACK_HOST}:{port}"
    finally:
        server.should_exit = True
        thread.join(SERVER_START_TIMEOUT_S)
        sock.close()


def parse_mix(text: str) -> dict[str, float]:
    """``"human=6,busy=1,no-answer=1"`` → outcome weights (names as in ``OUTCOMES``)."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        mix[name.strip()] = float(weight or 1)
    return mix


def main(argv: list[str] | None = None) -> None:
    """Serve the simulator as a process (fault suites, the demo, load runs)."""
    import argparse

    parser = argparse.ArgumentParser(description="Twilio REST simulator with call callbacks")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--account-sid", required=True)
    parser.add_argument("--auth-token", required=True)
    parser.add_argument("--log", type=Path, help="JSONL log of creates, answers and ends")
    parser.add_argument("--mix", default="human=1", help="outcome weights, e.g. human=6,busy=1")
    parser.add_argument("--latency-s", type=float, default=0.0)
    parser.add_argument("--callback-delay-s", type=float, default=0.05)
    parser.add_argument("--ring-s", type=float, default=0.5)
    parser.add_argument("--talk-s", type=float, default=2.0)
    parser.add_argument("--loss", type=float, default=0.0)
    parser.add_argument("--duplicates", type=float, default=0.0)
    parser.add_argument("--out-of-order", action="store_true")
    parser.add_argument("--amd-delay-s", type=float, default=0.0, help="async AMD verdict delay")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    behaviour = CallBehaviour(
        outcomes=parse_mix(args.mix),
        rest_latency_s=args.latency_s,
        callback_delay_s=args.callback_delay_s,
        ring_s=args.ring_s,
        talk_s=args.talk_s,
        loss=args.loss,
        duplicates=args.duplicates,
        out_of_order=args.out_of_order,
        amd_delay_s=args.amd_delay_s,
        seed=args.seed,
    )
    sim = TwilioApiSimulator(
        account_sid=args.account_sid,
        auth_token=args.auth_token,
        behaviour=behaviour,
        log_path=args.log,
    )
    uvicorn.run(sim.app, host=LOOPBACK_HOST, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
