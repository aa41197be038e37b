"""Calls without our own speech recognition: Twilio recognises Hebrew in ``<Gather>`` turns.

When no STT provider is configured (or ``CONVERSATION_MODE=gather``), the voice webhook
greets with :func:`start_gather_call` and every caller turn arrives as a signed
``POST /twilio/gather`` carrying ``SpeechResult`` or ``Digits`` (or neither, on silence).
Each turn runs the same brain as a Media Streams call over the conversation state kept
in the turn-state store under the call SID, stores the turns, and answers with the next
``<Gather>``, or with the last words and ``<Hangup/>`` or ``<Dial>``. A call that ends
here, or whose caller simply hangs up, is finished like a stream call: outcome, lead
status and summary.

Failure: the brain failing to answer a turn (its model, its database query, the turn's
time bound) is logged once (``call.gather_turn_failed``, with the call) and answered with
the technical-problem apology inside the next ``<Gather>``; the call goes on. A turn
that cannot read its call from the database is answered with the error goodbye ("נחזור
אליך בהקדם") and ``<Hangup/>`` (``call.gather_db_unavailable``), unless the turn is an
opt-out (key 9 or the words): that is kept by the caller's number from Twilio's form
(written, else in the opt-out outbox) and answered with the removal goodbye.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from voicebot.api.body import parse_query
from voicebot.api.errors import error_response
from voicebot.api.fields import Id
from voicebot.api.phones import normalize_phone
from voicebot.api.spec import FORM, Returns, operation
from voicebot.api.state import app_state
from voicebot.api.twilio_audio import prepare_speech
from voicebot.api.twilio_common import GatherForm, lead_context, load_agent_script, signed_form
from voicebot.brain.base import Brain, ConversationState, LeadContext, Reply
from voicebot.brain.intents import detect_intent
from voicebot.brain.phrases import DNC_BYE
from voicebot.brain.rules import DTMF_INTENTS
from voicebot.brain.script import AgentScript
from voicebot.call.recognition import caller_words
from voicebot.call.recorder import CallRecorder, TurnTimings
from voicebot.call.services import CallServices
from voicebot.call.speaker import ERROR_GOODBYE_TEXT, SYSTEM_APOLOGY_TEXT
from voicebot.call.turns import BRAIN_IO_ERRORS, HOLD_INTENT, HOLD_SILENCE_FACTOR
from voicebot.db.booking_tools import DbBookingTools
from voicebot.db.models import Call, CallTurn
from voicebot.db.optouts import durable_opt_out
from voicebot.db.types import utcnow
from voicebot.errors import ProviderError
from voicebot.store.optout_outbox import OptOut
from voicebot.telephony.twiml import (
    DEFAULT_GATHER_TIMEOUT_S,
    TWIML_CONTENT_TYPE,
    gather_turn,
    speak_then_dial,
    speak_then_hangup,
)

log = structlog.get_logger(__name__)

GATHER_PATH = "/twilio/gather"
TURN_TIMEOUT_S = 8.0
"""Bound on the brain's answer to one turn (Twilio gives a webhook 15 s in all)."""
TURN_SAVE_WAIT_S = 3.0
"""How long a turn's answer waits for its turns to be stored; past it the writer goes on
retrying in the background and Twilio gets its answer inside the 15 s."""
MODE_KEY = "mode"
GATHER_MODE = "gather"
SILENCES_KEY = "gather_silences"
"""Empty results in a row, kept beside the conversation state (the brain's silence count)."""


@dataclass(frozen=True, slots=True)
class GatherInput:
    """What Twilio posts to a ``<Gather>`` action."""

    call_sid: str
    speech: str
    digits: str
    confidence: float | None
    caller_phone: str | None = None
    """The other party's number in E.164 (``To`` on an outbound call, ``From`` on an
    inbound one); None when Twilio posted no phone number."""

    @classmethod
    def from_form(cls, params: dict[str, str]) -> GatherInput:
        try:
            confidence: float | None = float(params.get("Confidence", ""))
        except ValueError:
            confidence = None
        inbound = params.get("Direction", "inbound") == "inbound"
        try:  # a sip:/client: address or junk is no number to put on do-not-call
            phone: str | None = normalize_phone(params.get("From" if inbound else "To", ""))
        except ValueError:
            phone = None
        return cls(
            call_sid=params.get("CallSid", ""),
            speech=caller_words(params.get("SpeechResult", "")),
            digits=params.get("Digits", "").strip(),
            confidence=confidence,
            caller_phone=phone,
        )


def uses_gather(services: CallServices) -> bool:
    """Whether calls converse in ``<Gather>`` turns rather than over a Media Stream."""
    return services.settings.resolved_conversation_mode == "gather"


def action_url(services: CallServices, call_id: int) -> str:
    return f"{services.settings.public_base_url}{GATHER_PATH}?call_id={call_id}"


def _brain(
    services: CallServices,
    call_id: int,
    call_sid: str,
    lead: LeadContext | None,
    script: AgentScript | None,
) -> Brain:
    tools = DbBookingTools(
        settings=services.settings,
        sessions=services.sessions,
        lead_id=None if lead is None else lead.lead_id,
        call_id=call_id,
        call_sid=call_sid,
        phone=None if lead is None else lead.phone,
        optouts=services.optouts,
    )
    return services.brain_factory(tools, script=script)


async def _last_seq(session: AsyncSession, call_id: int) -> int:
    seq = await session.scalar(select(func.max(CallTurn.seq)).where(CallTurn.call_id == call_id))
    return int(seq or 0)


async def _save(
    services: CallServices, call_sid: str, state: ConversationState, silences: int
) -> None:
    data = {**state.to_dict(), MODE_KEY: GATHER_MODE, SILENCES_KEY: silences}
    await services.store.save(call_sid, data, ttl_s=services.settings.turn_state_ttl_s)


async def start_gather_call(
    services: CallServices,
    *,
    call_id: int,
    call_sid: str,
    lead: LeadContext | None,
    script: AgentScript | None,
) -> str:
    """The voice webhook's answer in gather mode: the greeting inside the first ``<Gather>``."""
    state = ConversationState(lead=lead)
    timings = TurnTimings(started_at=time.monotonic())
    async with asyncio.timeout(TURN_TIMEOUT_S):
        reply = await _brain(services, call_id, call_sid, lead, script).greet(state)
    timings.brain_done_at = time.monotonic()
    async with services.sessions() as session:
        last_seq = await _last_seq(session, call_id)
    recorder = CallRecorder(services, call_id=call_id, call_sid=call_sid, last_seq=last_seq)
    recorder.agent_turn(reply, timings, interrupted=False)
    await recorder.flush()
    await recorder.drain(TURN_SAVE_WAIT_S)
    await _save(services, call_sid, state, silences=0)
    speech = await prepare_speech(services, reply.text)
    return gather_turn(action_url(services, call_id), speech)


def asks_removal(services: CallServices, turn: GatherInput) -> bool:
    """Whether this turn is the caller's opt-out: key 9, or words the brain reads as one."""
    if turn.digits:
        return DTMF_INTENTS.get(turn.digits[0]) == "remove_me"
    if not turn.speech:
        return False
    settings = services.settings
    now = datetime.now(settings.tz)
    return detect_intent(turn.speech, now=now, tz=settings.tz).intent == "remove_me"


async def _opt_out_without_call(services: CallServices, turn: GatherInput) -> bool:
    """Keep an opt-out heard while the call's row is out of reach, by the caller's number
    (Twilio's form); True when it was written or kept in the outbox."""
    if turn.caller_phone is None or not asks_removal(services, turn):
        return False
    entry = OptOut(
        phone=turn.caller_phone,
        lead_id=None,
        source="call",
        requested_at=utcnow(),
        call_sid=turn.call_sid,
    )
    try:
        await durable_opt_out(services.sessions, services.settings, entry, outbox=services.optouts)
    except BRAIN_IO_ERRORS as exc:  # no outbox in this process: nowhere left to keep it
        log.error("optout.lost", call_sid=turn.call_sid, db_error=type(exc).__name__)
        return False
    return True


class GatherQuery(BaseModel):
    call_id: Id


@operation(
    summary="<Gather> turn (Twilio)",
    tags=("twilio",),
    description="Signed by Twilio. One caller turn in (speech, a key or silence), the "
    "agent's answer as TwiML out.",
    query=GatherQuery,
    body=GatherForm,
    body_media_type=FORM,
    headers=(("X-Twilio-Signature", "Twilio's request signature"),),
    replies=(Returns(200, media_type=TWIML_CONTENT_TYPE, description="TwiML"),),
    errors=(403, 404, 422),
    public=True,
)
async def gather(request: Request) -> Response:
    """One caller turn: speech, a key, or silence in; the agent's answer as TwiML out."""
    params = await signed_form(request, GatherForm)
    if isinstance(params, Response):
        return params
    call_id = parse_query(request, GatherQuery).call_id
    turn = GatherInput.from_form(params)
    state = app_state(request)
    services: CallServices = state.extras["call_services"]
    try:
        async with state.sessions() as session:
            call = await session.get(Call, call_id)
            if call is None or call.call_sid != turn.call_sid:
                return error_response(404, "not_found", "unknown call")
            script = await load_agent_script(session, call.campaign_id)
            lead = await lead_context(session, call)
            last_seq = await _last_seq(session, call_id)
    except BRAIN_IO_ERRORS as exc:
        # No call, lead or script to converse with: the caller hears why before the line
        # ends, in Hebrew (a 5xx here is read out by Twilio in English). An opt-out heard
        # in this turn is still kept (written, else in the outbox) and answered as one.
        opted_out = await _opt_out_without_call(services, turn)
        log.warning(
            "call.gather_db_unavailable",
            call_sid=turn.call_sid,
            call_id=call_id,
            error=type(exc).__name__,
            opted_out=opted_out,
        )
        speech = await prepare_speech(services, DNC_BYE if opted_out else ERROR_GOODBYE_TEXT)
        return Response(speak_then_hangup(speech), media_type=TWIML_CONTENT_TYPE)
    bound = log.bind(call_sid=turn.call_sid, call_id=call_id, lead_id=lead and lead.lead_id)
    stored = await services.store.load(turn.call_sid)
    if stored is None:
        bound.warning("call.gather_state_missing")
    conversation = ConversationState.from_dict(stored) if stored else ConversationState(lead=lead)
    conversation.lead = conversation.lead or lead
    silences = int((stored or {}).get(SILENCES_KEY, 0))
    recorder = CallRecorder(services, call_id=call_id, call_sid=turn.call_sid, last_seq=last_seq)
    timings = TurnTimings(started_at=time.monotonic())
    brain = _brain(services, call_id, turn.call_sid, conversation.lead, script)
    now = datetime.now(services.settings.tz)
    try:
        async with asyncio.timeout(TURN_TIMEOUT_S):
            if turn.digits:
                silences = 0
                reply = await brain.on_dtmf(conversation, turn.digits[0], now=now)
            elif turn.speech:
                silences = 0
                recorder.user_turn(turn.speech)
                reply = await brain.respond(conversation, turn.speech, now=now)
            else:
                silences += 1
                reply = await brain.on_silence(conversation, count=silences, now=now)
    except (ProviderError, *BRAIN_IO_ERRORS) as exc:
        # Twilio recognised the words; our side failed to act on them (a model, the
        # database, a stalled query): the caller is told so and the call goes on, rather
        # than a 5xx that Twilio reads out in English before hanging up.
        bound.warning("call.gather_turn_failed", error=type(exc).__name__)
        intent = "database_error" if isinstance(exc, SQLAlchemyError) else "provider_error"
        reply = Reply(SYSTEM_APOLOGY_TEXT, intent, (), end_call=False, transfer=False)
    timings.brain_done_at = time.monotonic()
    recorder.agent_turn(reply, timings, interrupted=False)
    await recorder.flush()
    await recorder.drain(TURN_SAVE_WAIT_S)
    await _save(services, turn.call_sid, conversation, silences)
    services.metrics.turns.inc()
    speech = await prepare_speech(services, reply.text)
    bound.info(
        "call.gather_turn",
        intent=reply.intent,
        confidence=turn.confidence,
        brain_ms=round((timings.brain_done_at - timings.started_at) * 1000, 1),
    )
    if not (reply.end_call or reply.transfer):
        # "רגע": the caller is looking something up; Twilio waits longer before a silence.
        wait_s = DEFAULT_GATHER_TIMEOUT_S * (
            HOLD_SILENCE_FACTOR if reply.intent == HOLD_INTENT else 1
        )
        twiml = gather_turn(action_url(services, call_id), speech, timeout_s=wait_s)
        return Response(twiml, media_type=TWIML_CONTENT_TYPE)
    number = services.settings.transfer_number
    if reply.transfer and number:
        twiml = speak_then_dial(speech, number)
    else:
        if reply.transfer:
            bound.warning("call.transfer_without_number")
        twiml = speak_then_hangup(speech)
    # Outcome, lead status and summary are written after Twilio has its answer.
    finish = BackgroundTask(recorder.finish, conversation)
    return Response(twiml, media_type=TWIML_CONTENT_TYPE, background=finish)


async def finish_after_hangup(services: CallServices, *, call_id: int, call_sid: str) -> bool:
    """Finish a gather call whose caller hung up mid-conversation; False if it was not one."""
    stored = await services.store.load(call_sid)
    if stored is None or stored.get(MODE_KEY) != GATHER_MODE:
        return False
    recorder = CallRecorder(services, call_id=call_id, call_sid=call_sid)
    await recorder.finish(ConversationState.from_dict(stored))
    return True


routes: list[Any] = [Route(GATHER_PATH, gather, methods=["POST"])]
