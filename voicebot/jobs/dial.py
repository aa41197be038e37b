"""Dialing one claimed attempt: pace, win the attempt, place the call, record the answer.

The attempt row was committed by the claim. Here one dialer wins it with a
compare-and-set (``claimed`` → ``dialing``, only while the campaign is running), so
a second dialer, a paused campaign or a redelivered job never sends a second request.
The REST call carries the attempt id in the voice and status-callback URLs, so every
webhook finds its row even when it arrives before this code has stored the SID.

Failure: an error that says the lead's number is bad fails the attempt with Twilio's
code and message (the lead's outcome); any other refusal (our credentials, throttling,
503, connection refused) gives the attempt back untouched and reports ``our_failure`` so
the sweeper can pause the campaign; an answer that never came (read timeout, connection
dropped after sending) or Twilio's own server error (the call may exist all the same)
leaves the attempt ``dialing`` for the reconciler to settle from Twilio's record. The
lead's calling window is checked again at the send: pacing may hold a claim past its end.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Protocol

import requests
import structlog
from sqlalchemy import and_, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from twilio.base.exceptions import TwilioException

from voicebot.config import Settings
from voicebot.db.models import (
    AttemptStatus,
    Call,
    CallOutcome,
    CallStatus,
    Campaign,
    CampaignAttempt,
    CampaignLead,
    CampaignStatus,
    DoNotCall,
    Lead,
    MemberState,
)
from voicebot.db.outcomes import record_outcome
from voicebot.db.types import utcnow
from voicebot.errors import TelephonyError
from voicebot.jobs.claims import (
    BLOCKED_LEAD_STATUSES,
    NEVER_OPEN_RECHECK,
    campaign_window,
    give_back,
    next_open_for,
)
from voicebot.jobs.pacing import Pacer, PacingUnavailableError
from voicebot.telephony.rest import HTTP_SERVER_ERROR_MIN, sent_before_failing
from voicebot.webhooks.eligibility import check_eligibility

log = structlog.get_logger(__name__)

LEAD_ERROR_CODES = frozenset({21211, 21214, 21216, 21217, 13223, 13224, 13225, 13226})
"""Twilio error codes that are about the callee's number, not about us."""
OUR_FAILURE_RETRY_AFTER = timedelta(seconds=30)


class DialOutcome(StrEnum):
    PLACED = "placed"
    LOST_RACE = "lost_race"
    """Another dialer won the attempt, or the campaign is no longer running."""
    LEAD_FAILED = "lead_failed"
    OUTSIDE_WINDOW = "outside_window"
    """The lead's calling window closed between the claim and the send: given back."""
    DO_NOT_CALL = "do_not_call"
    """The number went on do-not-call between the claim and the send: given back (the
    next claim skips the member)."""
    SKIPPED = "skipped"
    """The eligibility webhook said no (or failed): no call, the member is skipped."""
    OUR_FAILURE = "our_failure"
    UNKNOWN = "unknown"
    """The request may have reached Twilio; the reconciler asks Twilio."""


@dataclass(frozen=True, slots=True)
class DialResult:
    outcome: DialOutcome
    reason: str | None = None
    auth_failed: bool = False
    server_error: bool = False
    """Twilio answered a 5xx: settled like an unanswered request, counted like a refusal."""


class CallPlacer(Protocol):
    async def create_call(
        self,
        *,
        to: str,
        from_: str,
        url: str,
        status_callback: str,
        machine_detection: bool = False,
        async_amd_callback: str | None = None,
        wait_for_message_end: bool = False,
        before_send: Callable[[], object] | None = None,
    ) -> str: ...

    async def hangup(self, call_sid: str) -> None: ...


def voice_url(settings: Settings, attempt_id: int) -> str:
    return f"{settings.public_base_url}/twilio/voice?attempt={attempt_id}"


def status_url(settings: Settings, attempt_id: int) -> str:
    return f"{settings.public_base_url}/twilio/status?attempt={attempt_id}"


def amd_url(settings: Settings, attempt_id: int) -> str:
    return f"{settings.public_base_url}/twilio/amd?attempt={attempt_id}"


async def win_attempt(session: AsyncSession, attempt_id: int) -> bool:
    """``claimed`` → ``dialing`` while the campaign runs; True for the one winner. Commits."""
    running = exists().where(
        and_(Campaign.id == CampaignAttempt.campaign_id, Campaign.status == CampaignStatus.RUNNING)
    )
    result = await session.execute(
        update(CampaignAttempt)
        .where(CampaignAttempt.id == attempt_id, CampaignAttempt.status == AttemptStatus.CLAIMED)
        .where(running)
        .values(status=AttemptStatus.DIALING, dialing_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    return bool(getattr(result, "rowcount", 0))


async def dial_attempt(
    *,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    placer: CallPlacer,
    pacer: Pacer,
    attempt_id: int,
    campaign_id: int,
    campaign_cps: float,
) -> DialResult:
    """Pace, win and place one claimed attempt (see the module docstring for failures)."""
    await pacer.wait_for_slot(campaign_id, campaign_cps)
    async with sessions() as session:
        if not await win_attempt(session, attempt_id):
            return DialResult(DialOutcome.LOST_RACE)
        attempt = await session.get(CampaignAttempt, attempt_id)
        lead = await session.get(Lead, attempt.lead_id) if attempt is not None else None
        if attempt is None or lead is None:  # deleted under us (cascade): nothing to dial
            return DialResult(DialOutcome.LOST_RACE)
        if await _blocked(session, lead):
            await give_back(session, attempt, status=AttemptStatus.NOT_DIALED, reason="do not call")
            await session.commit()
            return DialResult(DialOutcome.DO_NOT_CALL)
        if not await _window_open(session, attempt, lead):
            return DialResult(DialOutcome.OUTSIDE_WINDOW)
        phone = lead.phone
        campaign = await session.get(Campaign, campaign_id)
        ask = campaign.eligibility_url if campaign is not None else None
        secret = (campaign.webhook_secret if campaign is not None else None) or (
            settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        )
        lead_json = {"lead_id": lead.id, "phone": lead.phone, "name": lead.name}
        lead_json |= {"company": lead.company, "status": lead.status}
    if ask:
        verdict = await check_eligibility(ask, secret, campaign_id=campaign_id, lead=lead_json)
        if not verdict.eligible:
            return await _skip_ineligible(sessions, attempt_id, verdict.reason or "not eligible")
    try:
        sid = await placer.create_call(
            to=phone,
            from_=settings.twilio_from_number or "",
            url=voice_url(settings, attempt_id),
            status_callback=status_url(settings, attempt_id),
            # Asynchronous detection: the stream starts at once (a person hears the
            # greeting without waiting for AMD); /twilio/amd gets AnsweredBy after a
            # machine's beep (leave a message or hang up) or at once for a fax.
            machine_detection=True,
            wait_for_message_end=True,
            async_amd_callback=amd_url(settings, attempt_id),
            before_send=functools.partial(pacer.gate, campaign_id, campaign_cps),
        )
    except TelephonyError as exc:
        return await _refused(sessions, attempt_id, exc)
    except PacingUnavailableError:
        async with sessions() as session:  # won but not sent: back to claimed, adopted later
            await session.execute(
                update(CampaignAttempt)
                .where(
                    CampaignAttempt.id == attempt_id,
                    CampaignAttempt.status == AttemptStatus.DIALING,
                )
                .values(status=AttemptStatus.CLAIMED, dialing_at=None)
                .execution_options(synchronize_session=False)
            )
            await session.commit()
        raise
    async with sessions() as session:
        await record_sid(session, attempt_id, sid)
        campaign = await session.get(Campaign, campaign_id)
        cancelled = campaign is not None and campaign.status == CampaignStatus.CANCELLED
        await session.commit()
    if cancelled:
        await placer.hangup(sid)
    return DialResult(DialOutcome.PLACED)


async def _skip_ineligible(
    sessions: async_sessionmaker[AsyncSession], attempt_id: int, reason: str
) -> DialResult:
    """The eligibility webhook said no (or did not say yes): no call; the member is
    ``skipped`` with outcome ``skipped`` and the reason on the attempt."""
    async with sessions() as session:
        attempt = await session.get(CampaignAttempt, attempt_id, with_for_update=True)
        if attempt is None:
            return DialResult(DialOutcome.LOST_RACE)
        await give_back(session, attempt, status=AttemptStatus.NOT_DIALED, reason=reason)
        member = await session.get(CampaignLead, attempt.member_id)
        if member is not None:
            member.state, member.last_outcome = MemberState.SKIPPED, "skipped"
        call = await session.get(Call, attempt.call_id) if attempt.call_id else None
        if call is not None and call.outcome is None:
            call.outcome, call.summary = "skipped", reason
        await session.commit()
    log.info("campaign.lead_ineligible", attempt_id=attempt_id, reason=reason)
    return DialResult(DialOutcome.SKIPPED, reason)


async def _blocked(session: AsyncSession, lead: Lead) -> bool:
    """Whether the lead may no longer be called (do-not-call list or status), checked
    again at the send: the list may have changed since the claim."""
    if lead.status in BLOCKED_LEAD_STATUSES:
        return True
    listed = await session.scalar(select(DoNotCall.id).where(DoNotCall.phone == lead.phone))
    return listed is not None


async def _window_open(session: AsyncSession, attempt: CampaignAttempt, lead: Lead) -> bool:
    """Whether the lead's calling window is open now, at the send (the claim checked it,
    but pacing may have held the attempt past the window's end). When closed, the won
    attempt is given back, its member due at the next opening; commits then."""
    campaign = await session.get(Campaign, attempt.campaign_id)
    if campaign is None:
        return True
    now = utcnow()
    opens = next_open_for(campaign_window(campaign), lead, campaign, now)
    if opens is not None and opens <= now:
        return True
    await give_back(
        session,
        attempt,
        status=AttemptStatus.NOT_DIALED,
        reason="outside the calling window",
        retry_at=opens or now + NEVER_OPEN_RECHECK,
    )
    await session.commit()
    log.info("campaign.dial_outside_window", attempt_id=attempt.id, opens_at=str(opens))
    return False


async def record_sid(session: AsyncSession, attempt_id: int, sid: str) -> None:
    """Store the SID on the attempt and its call, whichever of us and the webhooks is first;
    the caller commits."""
    attempt = await session.get(CampaignAttempt, attempt_id, with_for_update=True)
    if attempt is None:
        return
    call = await session.get(Call, attempt.call_id) if attempt.call_id is not None else None
    note_sid(attempt, call, sid)


def note_sid(attempt: CampaignAttempt, call: Call | None, sid: str) -> None:
    """Store the SID on a loaded (locked) attempt and its call (no SQL; the caller
    flushes): the first SID wins, a dialing attempt is placed, a queued call initiated."""
    attempt.call_sid = attempt.call_sid or sid
    if attempt.status == AttemptStatus.DIALING:
        attempt.status, attempt.placed_at = AttemptStatus.PLACED, utcnow()
    if call is not None and call.call_sid is None:
        call.call_sid = sid
        call.started_at = call.started_at or utcnow()
        if call.status == CallStatus.QUEUED:
            call.status = CallStatus.INITIATED


def _ambiguous(exc: TelephonyError) -> bool:
    """True when the request may have been processed: no answer came back (a read timeout,
    the connection dropped after the request was sent), or Twilio's own server error
    (500, 502, 504: the call may exist all the same; 503 says it was not processed)."""
    cause = exc.__cause__
    if isinstance(cause, TwilioException):
        status = getattr(cause, "status", None)
        return isinstance(status, int) and status >= HTTP_SERVER_ERROR_MIN and status != 503
    if isinstance(cause, requests.ConnectionError) and sent_before_failing(cause):
        return True
    refused = isinstance(cause, requests.ConnectionError)
    return not refused or isinstance(cause, requests.ReadTimeout)


async def _refused(
    sessions: async_sessionmaker[AsyncSession], attempt_id: int, exc: TelephonyError
) -> DialResult:
    code = exc.details.get("twilio_code") if isinstance(exc.details, dict) else None
    status = exc.details.get("status") if isinstance(exc.details, dict) else None
    reason = exc.message[:500]
    if _ambiguous(exc):
        log.warning("campaign.dial_unanswered", attempt_id=attempt_id, error=reason)
        server_error = isinstance(status, int) and status >= HTTP_SERVER_ERROR_MIN
        return DialResult(DialOutcome.UNKNOWN, reason, server_error=server_error)
    async with sessions() as session:
        attempt = await session.get(CampaignAttempt, attempt_id, with_for_update=True)
        if attempt is None:
            return DialResult(DialOutcome.LOST_RACE)
        if code in LEAD_ERROR_CODES:
            attempt.status, attempt.reason = AttemptStatus.FAILED, reason
            attempt.twilio_error_code, attempt.ended_at = code, utcnow()
            call = await session.get(Call, attempt.call_id) if attempt.call_id else None
            if call is not None:
                call.status, call.ended_at = CallStatus.FAILED, utcnow()
                await record_outcome(session, call, CallOutcome.FAILED)
            await session.commit()
            log.info("campaign.dial_rejected_number", attempt_id=attempt_id, code=code)
            return DialResult(DialOutcome.LEAD_FAILED, reason)
        attempt.twilio_error_code = code
        await give_back(
            session,
            attempt,
            status=AttemptStatus.FAILED,
            reason=reason,
            retry_at=utcnow() + OUR_FAILURE_RETRY_AFTER,
        )
        await session.commit()
    log.warning("campaign.dial_failed_our_side", attempt_id=attempt_id, error=reason)
    return DialResult(DialOutcome.OUR_FAILURE, reason, auth_failed=status in (401, 403))


async def attempt_for_call(session: AsyncSession, call_id: int) -> CampaignAttempt | None:
    """The attempt that placed call ``call_id`` (None for calls outside campaigns)."""
    found: CampaignAttempt | None = (
        await session.scalars(select(CampaignAttempt).where(CampaignAttempt.call_id == call_id))
    ).first()
    return found
