"""Twilio's edge: the voice webhook, status callbacks and the Media Stream websocket.

The voice webhook answers a machine with the voicemail message, and a person with a
Media Stream or, without our own STT, with ``<Gather>`` turns (:mod:`.twilio_gather`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from typing import Any, Final

import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random,
)

from voicebot.api import twilio_amd, twilio_audio, twilio_gather, twilio_sms
from voicebot.api.errors import error_response
from voicebot.api.phones import is_phone_address, normalize_phone
from voicebot.api.spec import FORM, Returns, operation
from voicebot.api.state import AppState, app_state
from voicebot.api.twilio_common import VoiceForm, lead_context, load_agent_script, signed_form
from voicebot.api.twilio_status import (
    ANSWERED_BY_MAX_CHARS,
    STATUS_RANK,
    status,
    webhook_call,
)
from voicebot.api.twilio_voicemail import (
    FAX_ANSWER,
    claim_voicemail,
    is_machine,
    voicemail_twiml,
)
from voicebot.api.websocket_protocol import DIRECT_RECEIVE_EXTENSION
from voicebot.brain.base import ConversationState, LeadContext
from voicebot.brain.script import AgentScript
from voicebot.brain.summary import CallFacts, rule_summary
from voicebot.call.handoff import StreamHandoff
from voicebot.call.registry import CallRegistry
from voicebot.call.services import CallServices
from voicebot.call.session import CallSession
from voicebot.call.speaker import prepare_greeting
from voicebot.db.locks import is_lock_conflict
from voicebot.db.models import (
    Call,
    CallOutcome,
    CallStatus,
    Campaign,
    Lead,
    LeadStatus,
)
from voicebot.db.outcomes import record_outcome
from voicebot.db.types import utcnow
from voicebot.errors import PeerGoneError, ProviderError, SignatureError
from voicebot.recordings.calls import recording_for, save_recording, start_recording
from voicebot.recordings.track import CallAudio
from voicebot.telephony import events as ev
from voicebot.telephony.signature import verify_stream_handshake
from voicebot.telephony.stream_token import (
    StreamClaims,
    issue_stream_token,
    verify_stream_token,
)
from voicebot.telephony.twiml import TWIML_CONTENT_TYPE, connect_stream, redirect
from voicebot.telephony.twiml import hangup as hangup_twiml
from voicebot.webhooks.events import EventType, call_started_data, emit

log = structlog.get_logger(__name__)

START_TIMEOUT_S = 10.0
GREETING_PREPARE_TIMEOUT_S = 3.0
# SQLite "database is locked" on the voice webhook: fresh transactions, within a bound
# well under Twilio's 15 s webhook timeout; then a 503 with Retry-After.
VOICE_DB_ATTEMPTS = 4
VOICE_DB_BUDGET_S = 8.0
VOICE_DB_RETRY_JITTER_S = 0.2
VOICE_RETRY_AFTER_S = 1
INBOUND_CONSENT = "inbound call"  # an unknown caller who phoned us


async def _upsert_call(
    session: AsyncSession, params: dict[str, str], attempt_param: str | None
) -> tuple[Call, bool, CallStatus | None]:
    """The call row for this webhook, moved to in-progress (pending in ``session``, not
    flushed), whether this is its first answer (not a retried webhook), and the status
    the row had when read (None for a new row): :func:`_write_answer` writes it only if
    that status still stands.

    A campaign call is found by the attempt id in the URL (its row was committed before
    the REST call); any other call by SID, added when new (an inbound call). Two webhooks
    inserting one SID at once: the loser's flush fails on the unique SID and its
    transaction is run again (:func:`_rerun`), finding the winner's row.
    """
    call_sid = params["CallSid"]
    now = utcnow()
    call = await webhook_call(session, call_sid, attempt_param)
    if call is None:
        direction = "inbound" if params.get("Direction", "inbound") == "inbound" else "outbound"
        phone = params.get("From") if direction == "inbound" else params.get("To")
        lead = None
        if phone:
            lead = (await session.scalars(select(Lead).where(Lead.phone == phone))).first()
        if lead is None and direction == "inbound" and phone:
            lead = await _inbound_lead(session, phone)
        call = Call(
            call_sid=call_sid,
            direction=direction,
            from_number=params.get("From"),
            to_number=params.get("To"),
            lead_id=lead.id if lead else None,
            status=CallStatus.IN_PROGRESS,
            started_at=now,
        )
        session.add(call)
    seen = None if call.id is None else CallStatus(call.status)
    first_answer = call.answered_at is None
    call.answered_at = call.answered_at or now
    if STATUS_RANK.get(CallStatus(call.status), 0) < STATUS_RANK[CallStatus.IN_PROGRESS]:
        call.status = CallStatus.IN_PROGRESS
    if answered_by := params.get("AnsweredBy"):
        call.answered_by = answered_by[:ANSWERED_BY_MAX_CHARS]
    return call, first_answer, seen


ANSWER_COLUMNS: Final = ("status", "answered_at", "answered_by")


async def _write_answer(
    session: AsyncSession, call: Call, seen: CallStatus, first_answer: bool
) -> None:
    """The existing call's answer (status, answered_at, answered_by) as one UPDATE that
    holds only if the row is still as read: on SQLite the read ran before the transaction
    began (at this first write), so a status callback may have ended the call since, and
    an unconditional UPDATE would move it back to in-progress. A row that moved raises
    StaleDataError and the transaction runs again (:func:`_rerun`) from a fresh read.
    Postgres's read locked the row (FOR UPDATE), so there the condition always holds."""
    values = {column: getattr(call, column) for column in ANSWER_COLUMNS}
    moved = Call.status != seen
    if first_answer:
        moved = moved | Call.answered_at.is_not(None)
    # Core on the session's connection: no autoflush of the ORM's own (unconditional) UPDATE.
    conn = await session.connection()
    result = await conn.execute(update(Call).where(Call.id == call.id, ~moved).values(**values))
    if result.rowcount != 1:
        raise StaleDataError(f"call {call.id} changed between the webhook's read and write")
    for column, value in values.items():
        set_committed_value(call, column, value)


async def _inbound_lead(session: AsyncSession, raw_phone: str) -> Lead | None:
    """A new lead for an unknown inbound caller, so the agent can book, call back or opt
    them out like anyone else; None for a withheld or invalid number, a SIP URI or a
    Twilio Client identity."""
    if not is_phone_address(raw_phone):
        return None
    try:
        phone = normalize_phone(raw_phone)
    except ValueError:
        return None
    lead = Lead(
        phone=phone, status=LeadStatus.NEW, consent_source=INBOUND_CONSENT, tags=["inbound"]
    )
    # In the webhook's transaction, not a savepoint: on SQLite a SAVEPOINT outside a
    # transaction opens one and its RELEASE commits it, so the lead stayed stored when
    # the call's write then failed. The same number calling twice at once: the loser's
    # flush fails on the unique phone and its transaction runs again (_rerun), finding
    # the winner's lead.
    session.add(lead)
    await session.flush()
    return lead


async def _campaign(session: AsyncSession, campaign_id: int | None) -> Campaign | None:
    return None if campaign_id is None else await session.get(Campaign, campaign_id)


def _sqlite_locked(exc: BaseException) -> bool:
    """SQLite's "database is locked": another connection held the write lock past the busy
    timeout, or this transaction's snapshot went stale before its first write (WAL's
    SQLITE_BUSY_SNAPSHOT, which the busy timeout does not wait out). Either way a fresh
    transaction succeeds once the other writer commits."""
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


def _rerun(exc: BaseException) -> bool:
    """A transaction worth running again: SQLite's locked database, Postgres's deadlock /
    serialization failure (:func:`voicebot.db.locks.is_lock_conflict`), a unique SID
    another webhook inserted first (the next run finds its row), or a call row that
    changed between the read and the write (:func:`_write_answer`)."""
    return (
        _sqlite_locked(exc)
        or is_lock_conflict(exc)
        or isinstance(exc, (IntegrityError, StaleDataError))
    )


async def _record_answer(
    state: AppState, params: dict[str, str], attempt_param: str | None, *, fax: bool
) -> tuple[int, LeadContext | None, AgentScript | None, bool, bool]:
    """The voice webhook's one transaction: the call row (and a machine's outcome); returns
    (call id, lead, script, leave a voicemail message, the campaign records calls). On
    SQLite a locked database, on Postgres a deadlock or serialization failure, and on both
    a call SID another webhook inserted first are retried in a fresh transaction,
    ``VOICE_DB_ATTEMPTS`` times within ``VOICE_DB_BUDGET_S``; raises SQLAlchemyError when
    the database stays unavailable."""
    machine = fax or is_machine(params.get("AnsweredBy"))
    retrying = AsyncRetrying(
        retry=retry_if_exception(_rerun),
        stop=stop_after_attempt(VOICE_DB_ATTEMPTS) | stop_after_delay(VOICE_DB_BUDGET_S),
        wait=wait_random(0, VOICE_DB_RETRY_JITTER_S),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            async with state.sessions() as session:
                call, first_answer, seen = await _upsert_call(session, params, attempt_param)
                # Reads before the first write: SQLite's driver begins the transaction at
                # its first write, so the write lock is held from the flush to the COMMIT
                # (two trips to its thread), not across these reads too.
                with session.no_autoflush:
                    lead = await lead_context(session, call)
                    # Held here: the session's identity map is weak, and the event below
                    # reads the campaign's webhook URL after the flush.
                    campaign = await _campaign(session, call.campaign_id)
                    script = await load_agent_script(session, call.campaign_id)
                if seen is not None:
                    await _write_answer(session, call, seen, first_answer)
                await session.flush()
                leave_message = False
                if first_answer:
                    await emit(
                        session,
                        state.settings,
                        EventType.CALL_STARTED,
                        call_started_data(call),
                        campaign_id=call.campaign_id,
                    )
                if machine:
                    outcome = CallOutcome.FAX if fax else CallOutcome.VOICEMAIL
                    leave_message = not fax and await claim_voicemail(session, call)
                    facts = CallFacts(outcome, state.settings.tz)
                    summary = rule_summary(ConversationState(lead=lead), facts)
                    call.summary = call.summary or summary
                    await record_outcome(session, call, outcome, settings=state.settings)
                await session.commit()
                records = campaign is not None and campaign.record
                del campaign
                return call.id, lead, script, leave_message, records
    raise AssertionError("unreachable: tenacity re-raises the last error")


@operation(
    summary="Voice webhook (Twilio)",
    tags=("twilio",),
    description="Signed by Twilio (X-Twilio-Signature). Answers a machine with the voicemail "
    "message, a person with <Connect><Stream> (the Media Stream websocket /twilio/media) "
    "or with the first <Gather> turn.",
    body=VoiceForm,
    body_media_type=FORM,
    headers=(("X-Twilio-Signature", "Twilio's request signature"),),
    replies=(Returns(200, media_type=TWIML_CONTENT_TYPE, description="TwiML"),),
    errors=(403, 422, 503),
    public=True,
)
async def voice(request: Request) -> Response:
    """Create or update the call row; answer a machine with the voicemail message, a person
    with <Connect><Stream> and a stream token, or with the first <Gather> turn."""
    params = await signed_form(request, VoiceForm)
    if isinstance(params, Response):
        return params
    state = app_state(request)
    services: CallServices = state.extras["call_services"]
    call_sid = params["CallSid"]
    if (redirect := _redirect_if_refused(request, state, call_sid)) is not None:
        return redirect
    answered_by = params.get("AnsweredBy")
    fax = answered_by == FAX_ANSWER
    machine = fax or is_machine(answered_by)
    try:
        answer = await _record_answer(state, params, request.query_params.get("attempt"), fax=fax)
    except SQLAlchemyError as exc:
        # Twilio plays its fallback URL (or retries) on a 5xx; a 503 says "busy, not broken".
        log.error("call.webhook_db_unavailable", call_sid=call_sid, error=type(exc).__name__)
        response = error_response(503, "unavailable", "database busy; retry")
        response.headers["Retry-After"] = str(VOICE_RETRY_AFTER_S)
        return response
    call_id, lead, script, leave_message, records = answer
    if machine:
        log.info("call.machine", call_sid=call_sid, call_id=call_id, message=leave_message)
        if not leave_message:
            return _twiml(hangup_twiml())
        return _twiml(await voicemail_twiml(services, script))
    if twilio_gather.uses_gather(services):
        try:
            twiml = await twilio_gather.start_gather_call(
                services, call_id=call_id, call_sid=call_sid, lead=lead, script=script
            )
        except (SQLAlchemyError, OSError, TimeoutError, ProviderError) as exc:
            # The database may fail after the call row was written (the greeting's turn).
            log.error("call.gather_greeting_failed", call_sid=call_sid, error=type(exc).__name__)
            return error_response(503, "unavailable", "greeting unavailable")
        return _twiml(twiml)
    try:
        async with asyncio.timeout(GREETING_PREPARE_TIMEOUT_S):
            await prepare_greeting(services, ConversationState(lead=lead), script=script)
    except (TimeoutError, ProviderError) as exc:
        log.warning("call.greeting_not_prepared", call_sid=call_sid, error=type(exc).__name__)
    token = issue_stream_token(
        state.settings.stream_secret,
        call_id=call_id,
        call_sid=call_sid,
        ttl_s=state.settings.stream_token_ttl_s,
    )
    registry: CallRegistry = state.extras["call_registry"]
    registry.handoffs.put(call_sid, StreamHandoff(call_id, lead, script, records))
    return _twiml(
        connect_stream(state.settings.media_stream_url, {"call_id": str(call_id), "token": token})
    )


def _redirect_if_refused(request: Request, state: AppState, call_sid: str) -> Response | None:
    """A draining or full process sends Twilio back to the load balancer (PUBLIC_BASE_URL,
    same path and query) so another instance answers; None when this one takes the call."""
    registry: CallRegistry = state.extras["call_registry"]
    reason = registry.admit(call_sid)
    if reason is None:
        return None
    url = state.settings.public_base_url + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    log.info("call.redirected", call_sid=call_sid, reason=reason)
    return _twiml(redirect(url))


def _twiml(document: str) -> Response:
    return Response(document, media_type=TWIML_CONTENT_TYPE)


class _SkippedFrames:
    """Frames a stream could not use: each kind is logged once per call, all are counted."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def skip(self, exc: ev.MalformedEventError, bound: Any) -> None:
        reason = exc.reason
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if self.counts[reason] == 1:
            bound.warning("twilio.frame_skipped", reason=reason, error=exc.message[:200])


async def _receive_event(websocket: WebSocket) -> ev.InboundEvent:
    """The next frame as an event; raises WebSocketDisconnect when the peer closed, and
    MalformedEventError for a frame that is not a Media Streams message (binary, oversized,
    not JSON, unknown event)."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    return ev.parse_frame(message.get("text"), message.get("bytes"))


async def media(websocket: WebSocket) -> None:
    """The Media Stream: signed handshake, `connected`, `start` (token checked, call claimed
    by this stream), then the call session."""
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
    skipped = _SkippedFrames()
    handoffs = state.extras["call_registry"].handoffs
    claim: asyncio.Task[None] | None = None
    try:
        start = await asyncio.wait_for(_await_start(websocket, skipped), timeout=START_TIMEOUT_S)
        claims = verify_stream_token(
            state.settings.verifying_secrets(), start.custom_parameters.get("token", "")
        )
        if claims.call_sid != start.call_sid:
            raise SignatureError("stream token is for another call")
        handoff = handoffs.take(claims.call_id, claims.call_sid)
        if handoff is not None:
            # The webhook's hand-over: the greeting starts now, the claim runs beside it
            # (the session holds the caller's audio and every write until it holds).
            context = (
                handoff.lead,
                handoff.script,
                start_recording(handoff.records, state.settings),
            )
            claim = _claim_beside(state, claims.call_id, start.stream_sid)
        elif handoffs.held(claims.call_id):
            raise SignatureError("stream token already used (the call has a stream)")
        else:
            context = await _claimed_call_context(
                state, claims.call_id, claims.call_sid, start.stream_sid
            )
    except WebSocketDisconnect:
        log.info("twilio.stream_closed_before_start")
        return
    except (SignatureError, TimeoutError) as exc:
        reason = exc.message if isinstance(exc, SignatureError) else type(exc).__name__
        log.warning("twilio.stream_rejected", reason=reason)
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close(code=1008)
        return
    if claim is None:
        await _run_session(websocket, state, start, claims, context, skipped)
        return
    # No await since take(): no other stream of this process got between it and the hold.
    with handoffs.hold(claims.call_id, claims.call_sid):
        await _run_session(websocket, state, start, claims, context, skipped, claim)


ENDED_STATUSES: Final = (
    CallStatus.COMPLETED,
    CallStatus.BUSY,
    CallStatus.NO_ANSWER,
    CallStatus.FAILED,
    CallStatus.CANCELED,
)
"""A call Twilio already reported over: no stream may claim it (a token replayed after a
call that ended before its stream started)."""
DB_UNAVAILABLE: Final = (SQLAlchemyError, OSError, TimeoutError)
"""A database that fails or cannot be reached: asyncpg raises ConnectionRefusedError and
TimeoutError on connect unwrapped by SQLAlchemy."""

CallContext = tuple[LeadContext | None, AgentScript | None, CallAudio | None]
"""The call's lead, campaign script and recording tracks, read at the stream's start."""


async def _claimed_call_context(
    state: AppState, call_id: int, call_sid: str, stream_sid: str
) -> CallContext:
    """Claim the call for this stream and read its context at the same time: the
    greeting waits for both, not for one after the other. A refused claim
    (SignatureError) lets the read finish and drops it: a query cancelled in flight
    costs its pooled connection, and asyncpg's cancel request on it leaves a future
    nobody retrieves (logged by asyncio as an error; MagicStack/asyncpg#1310)."""
    context = asyncio.create_task(_call_context(state, call_id, call_sid))
    try:
        await _claim_call(state, call_id, stream_sid)
    except SignatureError:
        await context  # never raises: a failed read is (None, None, None)
        raise
    except BaseException:
        context.cancel()  # the stream is going away (shutdown, the socket's task)
        with contextlib.suppress(asyncio.CancelledError):
            await context
        raise
    return await context


def _claim_beside(state: AppState, call_id: int, stream_sid: str) -> asyncio.Task[None]:
    """The call's claim as a task of its own, run beside the session that started on a
    hand-over; its refusal is read by the session (:meth:`CallSession.stream_claimed`)."""
    claim = asyncio.create_task(_claim_call(state, call_id, stream_sid))
    # A session that ended first never reads the outcome: retrieve it (no "never retrieved").
    claim.add_done_callback(lambda task: task.cancelled() or task.exception())
    return claim


async def _claim_call(state: AppState, call_id: int, stream_sid: str) -> None:
    """Bind the call to this stream, once: a token replayed on a second socket (during the
    call or after it) finds the call claimed, and a start after Twilio reported the call
    over finds it ended; both raise SignatureError."""
    try:
        async with state.autocommit() as db:
            # One autocommit statement: on SQLite the write lock is not held while the
            # loop gets round to a COMMIT (turn writes and other claims wait on it).
            conn = await db.connection()
            result = await conn.execute(
                update(Call)
                .where(
                    Call.id == call_id,
                    Call.stream_sid.is_(None),
                    Call.status.not_in(ENDED_STATUSES),
                )
                .values(stream_sid=stream_sid, stream_started_at=utcnow())
            )
    except DB_UNAVAILABLE as exc:
        # The database is down: the token still proves the call; the call goes on unclaimed.
        log.error("twilio.stream_claim_failed", call_id=call_id, error=type(exc).__name__)
        return
    if getattr(result, "rowcount", 0) != 1:
        raise SignatureError("stream token already used (the call has a stream or ended)")


async def _call_context(state: AppState, call_id: int, call_sid: str) -> CallContext:
    """The call's lead, campaign script and recording tracks (its campaign records);
    (None, None, None) when the database fails at the stream's start: like the claim,
    the call goes on (the default script, no lead, not recorded)."""
    try:
        async with state.autocommit() as db:
            # One statement loads the call, its lead and campaign; the reads below find
            # them in the session (three statements took 12 trips to SQLite's thread).
            row = (
                await db.execute(
                    select(Call, Lead, Campaign)
                    .outerjoin(Lead, Lead.id == Call.lead_id)
                    .outerjoin(Campaign, Campaign.id == Call.campaign_id)
                    .where(Call.id == call_id)
                )
            ).first()
            if row is None:
                return None, None, None
            call = row[0]
            return (
                await lead_context(db, call),
                await load_agent_script(db, call.campaign_id),
                await recording_for(db, call, state.settings),
            )
    except DB_UNAVAILABLE as exc:
        log.error(
            "call.context_unavailable", call_sid=call_sid, call_id=call_id, error=str(exc)[:200]
        )
        return None, None, None


async def _saved_conversation(state: AppState, call_sid: str) -> ConversationState:
    """The call's saved conversation (a stream restarted for the same call), else a new
    one; a saved state this code cannot read (another release wrote it) starts afresh."""
    loaded = await state.store.load(call_sid)
    if not loaded:
        return ConversationState()
    try:
        return ConversationState.from_dict(loaded)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        log.error("call.saved_state_unreadable", call_sid=call_sid, error=repr(exc)[:200])
        return ConversationState()


async def _await_start(websocket: WebSocket, skipped: _SkippedFrames) -> ev.Start:
    while True:
        try:
            event = await _receive_event(websocket)
        except ev.MalformedEventError as exc:
            skipped.skip(exc, log)
            continue
        if isinstance(event, ev.Start):
            return event


async def _run_session(
    websocket: WebSocket,
    state: AppState,
    start: ev.Start,
    claims: StreamClaims,
    context: CallContext,
    skipped: _SkippedFrames,
    claim: asyncio.Task[None] | None = None,
) -> None:
    """The call's session on this stream; ``claim`` is the claim still running beside it
    (a hand-over), None when the call was claimed before."""
    call_id, call_sid = claims.call_id, claims.call_sid
    services = state.extras["call_services"]
    timeout_s = state.settings.ws_send_timeout_s
    stream_sid = start.stream_sid

    # Sends are bounded by the session's SendGuard (one watchdog per call, not a timer
    # per frame), so they go straight to the socket here. A socket the peer already
    # closed (Starlette's WebSocketDisconnect, or RuntimeError once the close went out)
    # is PeerGoneError to the session: the caller went away, the call ends quietly.
    async def send(text: str) -> None:
        try:
            await websocket.send_text(text)
        except (WebSocketDisconnect, RuntimeError) as exc:
            raise PeerGoneError(f"the websocket is closed ({type(exc).__name__})") from exc

    lead, script, audio = context

    async def send_media(payload: bytes) -> None:
        if audio is not None:
            audio.on_agent(payload)
        await send(ev.media_message(stream_sid, payload))

    async def send_mark(name: str) -> None:
        await send(ev.mark_message(stream_sid, name))

    async def send_clear() -> None:
        if audio is not None:
            audio.on_clear()
        await send(ev.clear_message(stream_sid))

    conversation = await _saved_conversation(state, call_sid)
    conversation.lead = conversation.lead or lead
    session = CallSession(
        services=services,
        call_id=call_id,
        call_sid=call_sid,
        state=conversation,
        send_media=send_media,
        send_mark=send_mark,
        send_clear=send_clear,
        script=script,
        claim=claim,
    )
    bound = log.bind(call_sid=call_sid, call_id=call_id)

    def take_directly(text: str) -> bool:
        """A text message straight from the socket's read callback (no queue, no task
        switch: 50 a second per call): media and marks are taken here; anything else
        (keys, stop, junk) is left to the loop below (False). Once the session has ended,
        every message is taken and dropped; a fault here ends the call (it must not reach
        the protocol, which would hand the frame to the loop below a second time). While
        the loop is busy with a message (a key being acted on), those behind it wait for
        it in the queue."""
        if session.ended.is_set():
            return True
        if loop_busy:
            return False
        try:
            event = ev.parse_frame(text, None)
        except ev.MalformedEventError:
            return False
        try:
            if isinstance(event, ev.Media):
                if audio is not None:
                    audio.on_caller(event.payload)
                session.on_media_nowait(event.payload)
                return True
            if isinstance(event, ev.Mark):
                session.on_mark(event.name)
                return True
        except Exception:
            session.on_receive_failed()
            return True
        return False

    loop_busy = False  # receive() is handling a message: take_directly declines

    async def receive() -> None:
        nonlocal loop_busy
        # The caller's audio, marks and keys wait for the claim (a refused stream hears
        # nothing of the caller, and the session ends itself).
        if not await session.stream_claimed():
            return
        set_receiver = websocket.scope.get("extensions", {}).get(DIRECT_RECEIVE_EXTENSION)
        try:
            if set_receiver is not None:
                # The read callback runs outside this task: it takes frames in the call's
                # context (what it starts logs as the call, like the rest of the path).
                context = contextvars.copy_context()
                set_receiver(lambda text: context.run(take_directly, text))
            while True:
                loop_busy = False
                try:
                    event = await _receive_event(websocket)
                except ev.MalformedEventError as exc:
                    skipped.skip(exc, bound)
                    continue
                loop_busy = True
                if isinstance(event, ev.Media):
                    if audio is not None:
                        audio.on_caller(event.payload)
                    await session.on_media(event.payload)
                elif isinstance(event, ev.Mark):
                    session.on_mark(event.name)
                elif isinstance(event, ev.Dtmf):
                    await session.on_dtmf(event.digit)
                elif isinstance(event, ev.Stop):
                    break
        except WebSocketDisconnect:
            pass
        except (TimeoutError, OSError, RuntimeError):
            raise  # the transport failed (see below), not the call
        except Exception:
            session.on_receive_failed()
        finally:
            if set_receiver is not None:
                set_receiver(None)  # an ended session hears nothing more
            session.on_stop()

    registry: CallRegistry = state.extras["call_registry"]
    closed = False
    receiver: asyncio.Task[None] | None = None

    async def close() -> None:
        """End the stream as soon as the call is over (before its summary and outcome are
        stored): the caller is not held on an open line by the bookkeeping."""
        nonlocal closed
        if closed:
            return
        closed = True
        if receiver is not None:
            receiver.cancel()
        # A stalled peer would block the close frame too: bounded like any send.
        with contextlib.suppress(RuntimeError, WebSocketDisconnect, TimeoutError):
            async with asyncio.timeout(timeout_s):
                # The reason (how the call ended) is for the peer's logs; Twilio ignores it.
                await websocket.close(code=session.close_code, reason=session.end_reason or "")
        bound.info("call.ended", reason=session.end_reason)

    try:
        # The receive path starts work too (a reply speculated at a pause): it logs as the call.
        with session.log_context():
            async with asyncio.TaskGroup() as tg:
                receiver = tg.create_task(receive())
                with registry.track(session):
                    await session.run(on_ended=close)
                receiver.cancel()
    except* (TimeoutError, OSError, RuntimeError) as group:
        bound.warning("call.transport_failed", errors=[type(e).__name__ for e in group.exceptions])
    if skipped.counts:
        bound.info("call.frames_skipped", counts=skipped.counts)
    await close()
    if audio is not None and not session.refused:
        await save_recording(state, call_id, audio)


routes: list[Any] = [
    Route("/twilio/voice", voice, methods=["POST"]),
    Route("/twilio/status", status, methods=["POST"]),
    WebSocketRoute("/twilio/media", media),
    *twilio_amd.routes,
    *twilio_sms.routes,
    *twilio_gather.routes,
    *twilio_audio.routes,
]
