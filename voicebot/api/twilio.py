"""Twilio's edge: the voice webhook, status callbacks and the Media Stream websocket."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from voicebot.api.state import AppState, app_state
from voicebot.brain.base import ConversationState, LeadContext
from voicebot.call.session import CallSession, prepare_greeting
from voicebot.db.models import Call, CallStatus, Lead, TwilioEvent
from voicebot.db.types import utcnow
from voicebot.errors import ProviderError, SignatureError
from voicebot.telephony import events as ev
from voicebot.telephony.signature import verify_stream_handshake, verify_twilio_request
from voicebot.telephony.stream_token import issue_stream_token, verify_stream_token
from voicebot.telephony.twiml import connect_stream

log = structlog.get_logger(__name__)

# Twilio's status order; a later status never goes back to an earlier one.
STATUS_RANK = {
    CallStatus.QUEUED: 0,
    CallStatus.INITIATED: 1,
    CallStatus.RINGING: 2,
    CallStatus.IN_PROGRESS: 3,
    CallStatus.COMPLETED: 4,
    CallStatus.BUSY: 4,
    CallStatus.NO_ANSWER: 4,
    CallStatus.FAILED: 4,
    CallStatus.CANCELED: 4,
}
START_TIMEOUT_S = 10.0
GREETING_PREPARE_TIMEOUT_S = 3.0


async def _signed_form(request: Request) -> dict[str, str]:
    form = await request.form()
    params = {k: str(v) for k, v in form.items()}
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    verify_twilio_request(
        app_state(request).settings,
        url_path_and_query=path,
        form_params=params,
        signature_header=request.headers.get("x-twilio-signature"),
    )
    return params


async def voice(request: Request) -> Response:
    """Create or update the call row, answer with <Connect><Stream> and a stream token."""
    try:
        params = await _signed_form(request)
    except SignatureError as exc:
        log.warning("twilio.bad_signature", path=request.url.path, reason=exc.message)
        return Response("forbidden", status_code=403)
    state = app_state(request)
    call_sid = params.get("CallSid", "")
    if not call_sid:
        return Response("missing CallSid", status_code=400)
    async with state.sessions() as session:
        call = (await session.scalars(select(Call).where(Call.call_sid == call_sid))).first()
        lead: Lead | None = None
        if call is None:
            direction = "inbound" if params.get("Direction", "inbound") == "inbound" else "outbound"
            phone = params.get("From") if direction == "inbound" else params.get("To")
            if phone:
                lead = (await session.scalars(select(Lead).where(Lead.phone == phone))).first()
            call = Call(
                call_sid=call_sid,
                direction=direction,
                from_number=params.get("From"),
                to_number=params.get("To"),
                lead_id=lead.id if lead else None,
                status=CallStatus.IN_PROGRESS,
                started_at=utcnow(),
            )
            session.add(call)
        call.answered_at = call.answered_at or utcnow()
        if STATUS_RANK.get(CallStatus(call.status), 0) < STATUS_RANK[CallStatus.IN_PROGRESS]:
            call.status = CallStatus.IN_PROGRESS
        elif call.lead_id is not None:
            lead = await session.get(Lead, call.lead_id)
        await session.commit()
        call_id = call.id
    lead_ctx = None if lead is None else LeadContext(lead.id, lead.name, lead.company)
    try:
        async with asyncio.timeout(GREETING_PREPARE_TIMEOUT_S):
            await prepare_greeting(state.extras["call_services"], ConversationState(lead=lead_ctx))
    except (TimeoutError, ProviderError) as exc:
        log.warning("call.greeting_not_prepared", call_sid=call_sid, error=type(exc).__name__)
    token = issue_stream_token(
        state.settings.stream_secret,
        call_id=call_id,
        call_sid=call_sid,
        ttl_s=state.settings.stream_token_ttl_s,
    )
    twiml = connect_stream(
        state.settings.media_stream_url, {"call_id": str(call_id), "token": token}
    )
    return Response(twiml, media_type="application/xml")


async def status(request: Request) -> Response:
    """Record status transitions: monotonic, idempotent on Twilio's idempotency token."""
    try:
        params = await _signed_form(request)
    except SignatureError as exc:
        log.warning("twilio.bad_signature", path=request.url.path, reason=exc.message)
        return Response("forbidden", status_code=403)
    call_sid = params.get("CallSid", "")
    new_status = params.get("CallStatus", "")
    if new_status not in {s.value for s in CallStatus}:
        return Response("unknown CallStatus", status_code=400)
    state = app_state(request)
    token = request.headers.get("i-twilio-idempotency-token")
    async with state.sessions() as session:
        if token:
            session.add(TwilioEvent(token=token, kind="status"))
            try:
                await session.flush()
            except IntegrityError:
                return Response(status_code=204)
        call = (await session.scalars(select(Call).where(Call.call_sid == call_sid))).first()
        if call is None:
            log.warning("twilio.status_unknown_call", call_sid=call_sid)
            await session.commit()
            return Response(status_code=204)
        call.status_events = [*(call.status_events or []), new_status]
        if STATUS_RANK[CallStatus(new_status)] > STATUS_RANK.get(CallStatus(call.status), 0):
            call.status = new_status
            if STATUS_RANK[CallStatus(new_status)] == 4:
                call.ended_at = call.ended_at or utcnow()
            if duration := params.get("CallDuration"):
                call.duration_s = int(duration) if duration.isdigit() else call.duration_s
        if answered_by := params.get("AnsweredBy"):
            call.answered_by = answered_by
        await session.commit()
    return Response(status_code=204)


async def media(websocket: WebSocket) -> None:
    """The Media Stream: `connected`, `start` (token checked), then the call session."""
    state = app_state(websocket)
    try:
        verify_stream_handshake(
            state.settings, signature_header=websocket.headers.get("x-twilio-signature")
        )
    except SignatureError as exc:
        log.warning("twilio.bad_handshake_signature", reason=exc.message)
        await websocket.close(code=1008)
        return
    await websocket.accept()
    try:
        start = await asyncio.wait_for(_await_start(websocket), timeout=START_TIMEOUT_S)
        claims = verify_stream_token(
            state.settings.stream_secret, start.custom_parameters.get("token", "")
        )
    except WebSocketDisconnect:
        log.info("twilio.stream_closed_before_start")
        return
    except (SignatureError, TimeoutError) as exc:
        log.warning("twilio.stream_rejected", reason=type(exc).__name__)
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close(code=1008)
        return
    await _run_session(websocket, state, start, claims.call_id, claims.call_sid)


async def _await_start(websocket: WebSocket) -> ev.Start:
    while True:
        text = await websocket.receive_text()
        try:
            event = ev.parse_event(text)
        except ev.MalformedEventError:
            continue
        if isinstance(event, ev.Start):
            return event


async def _run_session(
    websocket: WebSocket, state: AppState, start: ev.Start, call_id: int, call_sid: str
) -> None:
    services = state.extras["call_services"]
    timeout_s = state.settings.ws_send_timeout_s
    stream_sid = start.stream_sid

    async def send(text: str) -> None:
        async with asyncio.timeout(timeout_s):
            await websocket.send_text(text)

    async def send_media(payload: bytes) -> None:
        await send(ev.media_message(stream_sid, payload))

    async def send_mark(name: str) -> None:
        await send(ev.mark_message(stream_sid, name))

    async def send_clear() -> None:
        await send(ev.clear_message(stream_sid))

    loaded = await state.store.load(call_sid)
    conversation = ConversationState.from_dict(loaded) if loaded else ConversationState()
    if conversation.lead is None:
        conversation.lead = await _lead_context(state, call_id)
    session = CallSession(
        services=services,
        call_id=call_id,
        call_sid=call_sid,
        state=conversation,
        send_media=send_media,
        send_mark=send_mark,
        send_clear=send_clear,
    )
    bound = log.bind(call_sid=call_sid, call_id=call_id)
    malformed = 0

    async def receive() -> None:
        nonlocal malformed
        try:
            while True:
                text = await websocket.receive_text()
                try:
                    event = ev.parse_event(text)
                except ev.MalformedEventError as exc:
                    malformed += 1
                    if malformed == 1:
                        bound.warning("twilio.malformed_event", error=str(exc)[:200])
                    continue
                if isinstance(event, ev.Media):
                    await session.on_media(event.payload)
                elif isinstance(event, ev.Mark):
                    session.on_mark(event.name)
                elif isinstance(event, ev.Dtmf):
                    session.on_dtmf(event.digit)
                elif isinstance(event, ev.Stop):
                    break
        except WebSocketDisconnect:
            pass
        finally:
            session.on_stop()

    try:
        async with asyncio.TaskGroup() as tg:
            receiver = tg.create_task(receive())
            await session.run()
            receiver.cancel()
    except* (TimeoutError, OSError, RuntimeError) as group:
        bound.warning("call.transport_failed", errors=[type(e).__name__ for e in group.exceptions])
    if malformed:
        bound.info("call.malformed_events", count=malformed)
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await websocket.close()
    bound.info("call.ended")


async def _lead_context(state: AppState, call_id: int) -> LeadContext | None:
    async with state.sessions() as session:
        call = await session.get(Call, call_id)
        if call is None or call.lead_id is None:
            return None
        lead = await session.get(Lead, call.lead_id)
        if lead is None:
            return None
        return LeadContext(lead_id=lead.id, name=lead.name, company=lead.company)


routes: list[Any] = [
    Route("/twilio/voice", voice, methods=["POST"]),
    Route("/twilio/status", status, methods=["POST"]),
    WebSocketRoute("/twilio/media", media),
]
