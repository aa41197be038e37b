"""Asynchronous answering-machine detection: ``POST /twilio/amd``.

Campaign calls are placed with ``MachineDetection=DetectMessageEnd`` and ``AsyncAmd``:
the voice webhook connects the stream at once, so a person hears the greeting without
waiting, and Twilio posts ``AnsweredBy`` here when it knows. ``human`` and ``unknown``
leave the call untouched. A machine (``machine_end_beep|silence|other``) gets outcome
``voicemail``; the agent stops (``clear``, when its stream runs in this process) and the
call's TwiML is replaced over REST by the script's voicemail message then ``<Hangup/>``
(campaign ``voicemail_action=leave_message``, once per lead) or the call is hung up. A
``fax`` is hung up with outcome ``fax`` (its member is never redialed).

A verdict for a call that already ended (the person hung up before AMD decided) is
noted (``answered_by`` when unset, the machine's outcome when the call has none) and
not acted on: no REST request, the lead's one voicemail message not spent.

The callback may reach any web instance: the verdict is committed (idempotent on the
call SID, through the ``twilio_events`` ledger) before any REST request; a redelivery
does nothing. A failed REST request is logged; Twilio's status callback still ends the
call and its outcome stays ``voicemail``/``fax``. With the database down, a machine or
fax verdict still stops the agent and hangs up (no message: once per lead cannot be
checked), and the answer is 503 (a retry, when Twilio is told to retry, records it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import structlog
from pydantic import Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from voicebot.api.errors import error_response
from voicebot.api.fields import Line
from voicebot.api.spec import FORM, Returns, operation
from voicebot.api.state import AppState, app_state
from voicebot.api.twilio_common import TwilioForm, lead_context, load_agent_script, signed_form
from voicebot.api.twilio_status import ANSWERED_BY_MAX_CHARS, first_delivery, webhook_call
from voicebot.api.twilio_voicemail import (
    FAX_ANSWER,
    MACHINE_ANSWERS,
    claim_voicemail,
    voicemail_twiml,
)
from voicebot.brain.base import ConversationState
from voicebot.brain.machine_speech import MachineKind
from voicebot.brain.script import AgentScript
from voicebot.brain.summary import CallFacts, rule_summary
from voicebot.call.registry import CallRegistry
from voicebot.call.services import CallServices
from voicebot.db.locks import lock_conflict_retrying
from voicebot.db.models import CallOutcome
from voicebot.db.outcomes import record_outcome
from voicebot.errors import TelephonyError

log = structlog.get_logger(__name__)

AMD_LEDGER_PREFIX: Final = "amd:"
"""Ledger token of a call's one machine verdict (AMD's or the transcript check's):
``amd:<CallSid>``."""
TRANSCRIPT_ANSWERS: Final[dict[MachineKind, str]] = {
    "voicemail": "machine_speech",
    "announcement": "machine_announcement",
    "unreachable": "machine_unreachable",
}
"""``answered_by`` stored when the transcript check, not AMD, found the machine."""
RETRY_AFTER_S: Final = 1


class AmdForm(TwilioForm):
    """Twilio's ``AsyncAmdStatusCallback``."""

    CallSid: Line = Field(min_length=1, max_length=64)
    AnsweredBy: Line = Field(min_length=1, max_length=64)
    MachineDetectionDuration: str | None = Field(
        default=None, pattern=r"^[0-9]{1,9}$", description="ms"
    )


@dataclass(frozen=True, slots=True)
class MachineVerdict:
    """What to do with a call that a machine answered (committed before acting)."""

    call_id: int | None
    fax: bool
    leave_message: bool
    script: AgentScript | None


UNRECORDED_HANG_UP: Final = MachineVerdict(
    call_id=None, fax=False, leave_message=False, script=None
)
"""A machine found while the database was down: hung up, nothing recorded."""


@operation(
    summary="Answering-machine result (Twilio)",
    tags=("twilio",),
    description="Signed by Twilio. AsyncAmdStatusCallback: a machine stops the agent and "
    "gets the voicemail message (or a hang-up), a fax is hung up; idempotent per call.",
    body=AmdForm,
    body_media_type=FORM,
    headers=(("X-Twilio-Signature", "Twilio's request signature"),),
    replies=(Returns(204),),
    errors=(403, 422, 503),
    public=True,
)
async def amd(request: Request) -> Response:
    """Record the verdict once; act on a machine or a fax (see the module docstring)."""
    params = await signed_form(request, AmdForm)
    if isinstance(params, Response):
        return params
    state = app_state(request)
    call_sid = params["CallSid"]
    answered_by = params["AnsweredBy"]
    try:
        verdict = await _record(state, params, request.query_params.get("attempt"))
    except SQLAlchemyError as exc:
        log.error("twilio.amd_db_unavailable", call_sid=call_sid, error=type(exc).__name__)
        if answered_by == FAX_ANSWER or answered_by in MACHINE_ANSWERS:
            # Twilio does not retry this callback by default: a machine left to the agent
            # would hear the whole pitch. Hung up unrecorded, as the transcript check does.
            await _act(state, call_sid, UNRECORDED_HANG_UP)
        response = error_response(503, "unavailable", "database busy; retry")
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response
    log.info("call.amd", call_sid=call_sid, answered_by=answered_by, acted=verdict is not None)
    if verdict is not None:
        await _act(state, call_sid, verdict)
    return Response(status_code=204)


async def transcript_machine(state: AppState, call_sid: str, kind: MachineKind) -> bool:
    """The live call's first words were a recording (:mod:`voicebot.brain.machine_speech`):
    act exactly as on AMD's machine verdict, under the same ledger token, so AMD and this
    check act once between them. A disconnected number (``unreachable``) is hung up with
    outcome ``failed`` (its lead ``unreachable``, never redialed); an announcement is hung
    up with outcome ``voicemail``, no message. True when this call acted."""
    answered_by = TRANSCRIPT_ANSWERS[kind]
    params = {"CallSid": call_sid, "AnsweredBy": answered_by}
    outcome = CallOutcome.FAILED if kind == "unreachable" else CallOutcome.VOICEMAIL
    try:
        verdict = await _record(
            state, params, None, outcome=outcome, leave_message=kind == "voicemail"
        )
    except SQLAlchemyError as exc:
        # The verdict cannot be recorded, so "once per lead" cannot be checked: no message.
        # But a machine must not be left on a silent line until max duration: hang up.
        log.error(
            "twilio.machine_speech_db_unavailable", call_sid=call_sid, error=type(exc).__name__
        )
        await _act(state, call_sid, UNRECORDED_HANG_UP)
        return True
    log.info("call.machine_speech", call_sid=call_sid, kind=kind, acted=verdict is not None)
    if verdict is None:
        return False
    await _act(state, call_sid, verdict)
    return True


async def _record(
    state: AppState,
    params: dict[str, str],
    attempt_param: str | None,
    *,
    outcome: CallOutcome | None = None,
    leave_message: bool = True,
) -> MachineVerdict | None:
    """Store ``AnsweredBy`` and a machine's outcome in one transaction; the verdict to act
    on, or None (a person, unknown, a redelivery, an unknown call). ``outcome`` overrides
    the one ``AnsweredBy`` implies; ``leave_message=False`` never leaves the message.
    A transaction aborted by a deadlock or serialization failure is run again
    (:func:`voicebot.db.locks.lock_conflict_retrying`); other database errors go up."""
    async for run in lock_conflict_retrying():
        with run:
            return await _record_once(
                state, params, attempt_param, outcome=outcome, leave_message=leave_message
            )
    raise AssertionError("unreachable: tenacity re-raises the last error")


async def _record_once(
    state: AppState,
    params: dict[str, str],
    attempt_param: str | None,
    *,
    outcome: CallOutcome | None,
    leave_message: bool,
) -> MachineVerdict | None:
    """One run of :func:`_record`'s transaction."""
    call_sid, answered_by = params["CallSid"], params["AnsweredBy"]
    fax = answered_by == FAX_ANSWER
    machine = fax or answered_by in MACHINE_ANSWERS or outcome is not None
    async with state.sessions() as session:
        # Only a machine verdict takes the call's one token: AMD's "human" must not stop
        # the transcript check from catching a mailbox that AMD missed.
        token = AMD_LEDGER_PREFIX + call_sid
        if machine and not await first_delivery(session, token, kind="amd"):
            return None
        call = await webhook_call(session, call_sid, attempt_param)
        if call is None:
            # Nothing to act on, and the call's one token must stay free: a verdict before
            # the call's row exists would otherwise stop the transcript check from acting.
            log.warning("twilio.amd_unknown_call", call_sid=call_sid)
            await session.rollback()
            return None
        # A verdict after the call ended (hung up before AMD decided) is only noted: no
        # action, and the lead's one voicemail message is not spent on a finished call.
        ended = call.ended_at is not None or call.outcome is not None
        if (machine and not ended) or call.answered_by is None:
            call.answered_by = answered_by[:ANSWERED_BY_MAX_CHARS]
        verdict = None
        if machine:
            outcome = outcome or (CallOutcome.FAX if fax else CallOutcome.VOICEMAIL)
            leave = not ended and not fax and leave_message and await claim_voicemail(session, call)
            script = await load_agent_script(session, call.campaign_id) if leave else None
            lead = await lead_context(session, call)
            facts = CallFacts(outcome, state.settings.tz)
            call.summary = call.summary or rule_summary(ConversationState(lead=lead), facts)
            await record_outcome(session, call, outcome, settings=state.settings)
            if ended:
                log.info("twilio.amd_after_end", call_sid=call_sid, answered_by=answered_by)
            else:
                verdict = MachineVerdict(call.id, fax, leave, script)
        await session.commit()
        return verdict


async def _act(state: AppState, call_sid: str, verdict: MachineVerdict) -> None:
    """Silence the agent (when its stream is here), then leave the message or hang up."""
    registry: CallRegistry = state.extras["call_registry"]
    services: CallServices = state.extras["call_services"]
    local: Any = registry.find(call_sid)
    if local is not None and hasattr(local, "stop_for_machine"):
        await local.stop_for_machine()
    dialer = services.dialer
    if dialer is None:
        log.warning("twilio.amd_no_dialer", call_sid=call_sid)
        return
    try:
        if verdict.leave_message:
            document = await voicemail_twiml(services, verdict.script)
            await dialer.play_then_hang_up(call_sid, document)
        else:
            await dialer.hangup(call_sid)
    except TelephonyError as exc:
        log.error("twilio.amd_action_failed", call_sid=call_sid, error=exc.message)


routes: list[Any] = [Route("/twilio/amd", amd, methods=["POST"])]
