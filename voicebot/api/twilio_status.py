"""Twilio's status callbacks: monotonic, idempotent, and the outcome of calls that never talked.

Status callbacks may reach any web instance, so everything here goes through the
database and the turn-state store, never in-process memory.
"""

from __future__ import annotations

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from voicebot.api import twilio_gather
from voicebot.api.spec import FORM, Returns, operation
from voicebot.api.state import app_state
from voicebot.api.twilio_common import StatusForm, lead_context, signed_form
from voicebot.brain.base import ConversationState
from voicebot.brain.summary import CallFacts, rule_summary
from voicebot.db.models import Call, CallStatus, TwilioEvent
from voicebot.db.outcomes import STATUS_OUTCOMES, record_outcome
from voicebot.db.types import utcnow

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
FINAL_RANK = 4
ANSWERED_BY_MAX_CHARS = 32


@operation(
    summary="Status callback (Twilio)",
    tags=("twilio",),
    description="Signed by Twilio. Monotonic and idempotent on I-Twilio-Idempotency-Token.",
    body=StatusForm,
    body_media_type=FORM,
    headers=(
        ("X-Twilio-Signature", "Twilio's request signature"),
        ("I-Twilio-Idempotency-Token", "at most 128 characters"),
    ),
    replies=(Returns(204),),
    errors=(403, 422),
    public=True,
)
async def status(request: Request) -> Response:
    """Record status transitions: monotonic, idempotent on Twilio's idempotency token.

    A call that ends without a conversation (busy, no answer, failed, canceled) gets its
    outcome here; a ``<Gather>`` call whose caller hung up mid-conversation is finished.
    """
    params = await signed_form(request, StatusForm)
    if isinstance(params, Response):
        return params
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
            if STATUS_RANK[CallStatus(new_status)] == FINAL_RANK:
                call.ended_at = call.ended_at or utcnow()
            if duration := params.get("CallDuration"):
                call.duration_s = int(duration) if duration.isdigit() else call.duration_s
        if answered_by := params.get("AnsweredBy"):
            call.answered_by = answered_by[:ANSWERED_BY_MAX_CHARS]
        if call.outcome is None and new_status in STATUS_OUTCOMES:
            outcome = STATUS_OUTCOMES[new_status]
            await record_outcome(session, call, outcome)
            facts = CallFacts(outcome, state.settings.tz)
            lead = await lead_context(session, call)
            call.summary = call.summary or rule_summary(ConversationState(lead=lead), facts)
        hung_up = call.outcome is None and new_status == CallStatus.COMPLETED
        call_id = call.id
        await session.commit()
    if hung_up:
        finish = BackgroundTask(
            twilio_gather.finish_after_hangup,
            state.extras["call_services"],
            call_id=call_id,
            call_sid=call_sid,
        )
        return Response(status_code=204, background=finish)
    return Response(status_code=204)
