"""How a call ends: its outcome, and the lead status that outcome implies.

One place decides both, so the call recorder (stream calls), the ``<Gather>`` route and
the Twilio status callback agree. A lead's status only moves to an equal or stronger one:
a later unanswered call never erases a booked meeting or a do-not-call request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.config import Settings
from voicebot.db.locks import lock_call_rows
from voicebot.db.models import (
    AttemptStatus,
    Call,
    CallOutcome,
    CallStatus,
    Campaign,
    CampaignAttempt,
    CampaignLead,
    CampaignStatus,
    Lead,
    LeadStatus,
    MemberState,
)
from voicebot.db.types import utcnow
from voicebot.webhooks.events import EventType, call_report, emit, webhook_url

log = structlog.get_logger(__name__)

# The brain's words for how a conversation ended (ConversationState.outcome).
BRAIN_OUTCOMES: Final[dict[str, CallOutcome]] = {
    "booked": CallOutcome.MEETING_BOOKED,
    "callback": CallOutcome.CALLBACK_SCHEDULED,
    "not_interested": CallOutcome.NOT_INTERESTED,
    "do_not_call": CallOutcome.DO_NOT_CALL,
    "wrong_number": CallOutcome.WRONG_NUMBER,
    "transferred": CallOutcome.TRANSFERRED,
    "no_answer": CallOutcome.NO_ANSWER,
    "voicemail": CallOutcome.VOICEMAIL,
    "failed": CallOutcome.FAILED,
    "tts_unavailable": CallOutcome.TTS_UNAVAILABLE,
}

# Final Twilio statuses of a call that never became a conversation.
STATUS_OUTCOMES: Final[dict[str, CallOutcome]] = {
    CallStatus.BUSY: CallOutcome.NO_ANSWER,
    CallStatus.NO_ANSWER: CallOutcome.NO_ANSWER,
    CallStatus.FAILED: CallOutcome.FAILED,
    CallStatus.CANCELED: CallOutcome.FAILED,
}

LEAD_STATUS_FOR: Final[dict[CallOutcome, LeadStatus]] = {
    CallOutcome.MEETING_BOOKED: LeadStatus.MEETING_BOOKED,
    CallOutcome.CALLBACK_SCHEDULED: LeadStatus.CALLBACK,
    CallOutcome.NOT_INTERESTED: LeadStatus.NOT_INTERESTED,
    CallOutcome.DO_NOT_CALL: LeadStatus.DO_NOT_CALL,
    CallOutcome.WRONG_NUMBER: LeadStatus.WRONG_NUMBER,
    CallOutcome.TRANSFERRED: LeadStatus.CONTACTED,
    CallOutcome.COMPLETED: LeadStatus.CONTACTED,
    CallOutcome.NO_ANSWER: LeadStatus.UNREACHABLE,
    CallOutcome.VOICEMAIL: LeadStatus.UNREACHABLE,
    CallOutcome.FAILED: LeadStatus.UNREACHABLE,
    CallOutcome.FAX: LeadStatus.UNREACHABLE,
    # Nothing was learnt about the lead: the call failed on our side.
    CallOutcome.TTS_UNAVAILABLE: LeadStatus.NEW,
}

# How much a status says about the lead; a status is replaced only by one of equal or
# higher rank. Callback and not-interested share a rank: the latest conversation wins.
LEAD_STATUS_RANK: Final[dict[LeadStatus, int]] = {
    LeadStatus.NEW: 0,
    LeadStatus.UNREACHABLE: 10,
    LeadStatus.CONTACTED: 20,
    LeadStatus.CALLBACK: 30,
    LeadStatus.NOT_INTERESTED: 30,
    LeadStatus.WRONG_NUMBER: 40,
    LeadStatus.MEETING_BOOKED: 50,
    LeadStatus.DO_NOT_CALL: 60,
}

_OUTCOME_VALUES: Final = frozenset(o.value for o in CallOutcome)

# Outcomes after which a campaign tries the lead again (up to its max_attempts).
UNREACHED: Final = frozenset({CallOutcome.NO_ANSWER, CallOutcome.VOICEMAIL, CallOutcome.FAILED})
# Outcomes a campaign retries with backoff (up to max_attempts); voicemail only when the
# campaign says so. A call we could not voice is our failure, never the lead's answer.
RETRIED: Final = frozenset({CallOutcome.NO_ANSWER, CallOutcome.TTS_UNAVAILABLE})
# A campaign member whose call is under way.
IN_FLIGHT: Final = frozenset({MemberState.DIALING, MemberState.IN_CALL})
LIVE_ATTEMPTS: Final = frozenset({"claimed", "dialing", "placed"})


@dataclass(frozen=True, slots=True)
class MemberRule:
    """What an outcome does to the campaign member whose call it ended, as data: read by
    :func:`_advance_member` and by the final-status statement
    (:mod:`voicebot.api.twilio_status_final`), so both apply one table."""

    at_callback: bool
    """Due again at the lead's ``callback_at``, when it has one (checked first)."""
    retried: bool
    """Retried after backoff until the campaign's ``max_attempts`` (then failed)."""
    retried_if_voicemail_retry: bool
    """Retried as above only when the campaign's ``voicemail_retry`` says so."""
    otherwise: MemberState
    """The member's final state when not retried: failed or done."""
    attempt_status: AttemptStatus
    """What a live attempt of the call becomes."""


def member_rule(outcome: CallOutcome) -> MemberRule:
    """The rule of ``outcome`` (see :func:`_advance_member`)."""
    return MemberRule(
        at_callback=outcome == CallOutcome.CALLBACK_SCHEDULED,
        retried=outcome in RETRIED,
        retried_if_voicemail_retry=outcome == CallOutcome.VOICEMAIL,
        otherwise=(
            MemberState.FAILED
            if outcome in (CallOutcome.FAILED, CallOutcome.FAX) or outcome in RETRIED
            else MemberState.DONE
        ),
        attempt_status=(
            AttemptStatus.FAILED if outcome == CallOutcome.FAILED else AttemptStatus.ENDED
        ),
    )


def call_outcome(value: str | None) -> CallOutcome:
    """The stored outcome for a brain outcome word (or an outcome value); COMPLETED otherwise."""
    if value is None:
        return CallOutcome.COMPLETED
    if value in _OUTCOME_VALUES:
        return CallOutcome(value)
    return BRAIN_OUTCOMES.get(value, CallOutcome.COMPLETED)


def next_lead_status(current: str, outcome: CallOutcome) -> LeadStatus:
    """The lead's status after a call with ``outcome``: never weaker than ``current``."""
    proposed = LEAD_STATUS_FOR[outcome]
    try:
        now = LeadStatus(current)
    except ValueError:
        return proposed
    if LEAD_STATUS_RANK[proposed] >= LEAD_STATUS_RANK[now]:
        return proposed
    return now


async def record_outcome(
    session: AsyncSession,
    call: Call,
    outcome: CallOutcome,
    *,
    attempt: CampaignAttempt | None = None,
    settings: Settings | None = None,
) -> bool:
    """Give ``call`` its outcome and move its lead's status; the caller commits.

    A call keeps the first outcome it gets: returns False (and changes nothing) when
    ``call`` already has one. ``attempt``: the call's attempt when the caller has it loaded
    (saves looking it up by ``call_id``). With ``settings`` the ``call.completed`` webhook
    event (the end-of-call report) is recorded in the same transaction. On Postgres the
    call's attempt, call, member and lead are locked first, in that order (see
    :mod:`voicebot.db.locks`), unless the transaction already holds them; the caller's
    pending changes are not flushed before those locks.
    """
    if call.outcome is not None:
        return False
    # Before the first write: the rows this settles, in the one lock order (db.locks).
    await lock_call_rows(session, call.id)
    call.outcome = outcome
    # The report (two SELECTs and a flush) is built only when it goes somewhere.
    if settings is not None and await webhook_url(session, settings, call.campaign_id):
        await session.flush()
        report = await call_report(session, settings, call)
        await emit(
            session, settings, EventType.CALL_COMPLETED, report, campaign_id=call.campaign_id
        )
    if call.lead_id is not None:
        lead = await session.get(Lead, call.lead_id)
        if lead is not None:
            status = next_lead_status(lead.status, outcome)
            if status != lead.status:
                log.info(
                    "lead.status_changed",
                    lead_id=lead.id,
                    call_id=call.id,
                    old=lead.status,
                    new=str(status),
                )
                lead.status = status
    if call.campaign_id is not None and call.lead_id is not None:
        await _advance_member(session, call, outcome, attempt)
    return True


async def _advance_member(
    session: AsyncSession, call: Call, outcome: CallOutcome, known: CampaignAttempt | None
) -> None:
    """Settle the call's attempt and free the campaign slot it held, by outcome:

    no answer / busy, or a call we could not voice (``tts_unavailable``): a retry after
    exponential backoff (``retry_base_min`` doubling up to
    ``retry_max_min``) until ``max_attempts``; failed (a bad number): no retry; voicemail:
    a retry only when the campaign says ``voicemail_retry``; fax: never again; a callback
    at the time the lead asked for; anything else: done. A cancelled campaign retries
    nobody: its member is skipped instead.
    """
    rule = member_rule(outcome)
    attempt = known if known is not None and known.call_id == call.id else None
    if attempt is None:
        attempt = (
            await session.scalars(select(CampaignAttempt).where(CampaignAttempt.call_id == call.id))
        ).first()
    if attempt is not None and attempt.status in LIVE_ATTEMPTS:
        attempt.status = rule.attempt_status
        attempt.ended_at = utcnow()
        if attempt.call_sid is None:
            attempt.call_sid = call.call_sid
    member = await session.get(CampaignLead, attempt.member_id) if attempt is not None else None
    if member is None or (member.campaign_id, member.lead_id) != (call.campaign_id, call.lead_id):
        member = (
            await session.scalars(
                select(CampaignLead).where(
                    CampaignLead.campaign_id == call.campaign_id,
                    CampaignLead.lead_id == call.lead_id,
                )
            )
        ).first()
    if member is None or member.state not in IN_FLIGHT:
        return  # the dialer settles members whose call never started
    campaign = await session.get(Campaign, call.campaign_id)
    lead = await session.get(Lead, call.lead_id)
    member.last_outcome = outcome
    retry = rule.retried or (
        rule.retried_if_voicemail_retry and campaign is not None and campaign.voicemail_retry
    )
    if rule.at_callback and lead is not None and lead.callback_at:
        member.state, member.next_attempt_at = MemberState.RETRY, lead.callback_at
    elif retry and campaign is not None:
        if member.attempts >= campaign.max_attempts:
            member.state = MemberState.FAILED
        else:
            member.state = MemberState.RETRY
            member.next_attempt_at = utcnow() + retry_delay(
                member.attempts, base_min=campaign.retry_base_min, max_min=campaign.retry_max_min
            )
    else:
        member.state = rule.otherwise
    cancelled = campaign is not None and campaign.status == CampaignStatus.CANCELLED
    if member.state == MemberState.RETRY and cancelled:
        member.state = MemberState.SKIPPED  # no sweep will ever dial it: final now
    log.info(
        "campaign.member_settled",
        campaign_id=call.campaign_id,
        lead_id=call.lead_id,
        outcome=str(outcome),
        state=str(member.state),
    )


def retry_delay(attempts_made: int, *, base_min: int, max_min: int) -> timedelta:
    """Backoff before the next attempt: ``base_min`` · 2^(attempts_made − 1), capped."""
    exponent = max(0, attempts_made - 1)
    return timedelta(minutes=min(max_min, base_min * (2 ** min(exponent, 20))))
