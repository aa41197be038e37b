"""The SMS meeting confirmation: queued with the booking, sent once through Twilio
Messages, its delivery status recorded.

Booking a meeting adds an ``sms_messages`` row in the same transaction (unique per
meeting: at most one SMS per meeting, whatever retries or redeliveries happen). The
sender (in the dispatcher loop: a worker, or ``serve`` on the embedded default) claims
pending rows, checks do-not-call once more, and calls ``messages.create`` with a status
callback (``/twilio/sms-status?sms=ID``). The row is ``sending`` (committed) before the
request; a request whose answer was lost leaves it ``interrupted``, never sent twice.
A do-not-call number is never texted: the row is ``skipped``; so is a number that
``phonenumbers`` knows as a landline (Israeli 02/03/04/08/09: a business line, common
for B2B leads), which carriers drop after Twilio has billed it (error 30006).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

import phonenumbers
import structlog
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot.brain.script import AgentScript
from voicebot.config import Settings
from voicebot.db.models import Call, Campaign, DoNotCall, Lead, LeadStatus, Meeting, SmsMessage
from voicebot.db.scripts import script_or_neutral
from voicebot.db.types import utcnow
from voicebot.errors import TelephonyError

log = structlog.get_logger(__name__)

HEBREW_DAYS: Final = ("שני", "שלישי", "רביעי", "חמישי", "שישי", "שבת", "ראשון")
"""Day names by Python weekday (Monday = 0)."""
SEND_LEASE_S: Final = 60.0
CLAIM_BATCH: Final = 20
ERROR_MAX_CHARS: Final = 500
STATUS_RANK: Final = {
    "pending": 0,
    "sending": 1,
    "accepted": 2,
    "queued": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "read": 5,
}


def israeli_date(when: datetime) -> str:
    """``יום שלישי, 1.12.2026``: the day's name, then day.month.year."""
    return f"יום {HEBREW_DAYS[when.weekday()]}, {when.day}.{when.month}.{when.year}"


def israeli_time(when: datetime) -> str:
    """``10:30``: 24-hour clock."""
    return f"{when.hour:02d}:{when.minute:02d}"


def sms_enabled(settings: Settings) -> bool:
    return bool(
        settings.sms_confirmations
        and settings.twilio_account_sid
        and settings.twilio_auth_token
        and settings.twilio_from_number
    )


NOT_MOBILE: Final = "not a mobile number"


def textable(phone: str) -> bool:
    """False for a number known to be a landline (``FIXED_LINE``); True for mobiles, VoIP,
    numbers that may be either and numbers phonenumbers cannot place (Twilio judges)."""
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return True
    return phonenumbers.number_type(number) != phonenumbers.PhoneNumberType.FIXED_LINE


async def _blocked(session: AsyncSession, lead: Lead) -> bool:
    if lead.status == LeadStatus.DO_NOT_CALL:
        return True
    listed = await session.scalar(select(DoNotCall.id).where(DoNotCall.phone == lead.phone))
    return listed is not None


async def _script(session: AsyncSession, meeting: Meeting) -> AgentScript:
    call = await session.get(Call, meeting.call_id) if meeting.call_id is not None else None
    campaign = (
        await session.get(Campaign, call.campaign_id)
        if call is not None and call.campaign_id is not None
        else None
    )
    if campaign is not None and campaign.agent_script:
        return script_or_neutral(campaign.agent_script, campaign_id=campaign.id)
    return AgentScript.default()


async def queue_confirmation(
    session: AsyncSession, settings: Settings, meeting: Meeting
) -> SmsMessage | None:
    """Add the meeting's confirmation SMS to ``session`` (the caller commits); None when
    SMS is off. A do-not-call lead's row is ``skipped`` at once."""
    if not sms_enabled(settings):
        return None
    lead = await session.get(Lead, meeting.lead_id)
    if lead is None:
        return None
    local = meeting.start_at.astimezone(settings.tz)
    script = await _script(session, meeting)
    body = script.render_sms_confirmation(
        name=lead.name, date=israeli_date(local), time=israeli_time(local)
    )
    reason: str | None = None
    if await _blocked(session, lead):
        reason = "do not call"
    elif not textable(lead.phone):
        reason = NOT_MOBILE
    sms = SmsMessage(
        meeting_id=meeting.id,
        lead_id=lead.id,
        to_number=lead.phone,
        body=body,
        status="pending" if reason is None else "skipped",
        error=reason,
        status_events=[],
    )
    session.add(sms)
    return sms


def status_url(settings: Settings, sms_id: int) -> str:
    return f"{settings.public_base_url}/twilio/sms-status?sms={sms_id}"


async def claim_pending(sessions: async_sessionmaker[AsyncSession]) -> list[int]:
    """Lease pending rows (``sending``, committed before any request); a ``sending`` row
    whose lease ran out lost its answer: ``interrupted``, never resent."""
    now = utcnow()
    async with sessions() as session:
        await session.execute(
            update(SmsMessage)
            .where(SmsMessage.status == "sending", SmsMessage.lease_until < now)
            .values(status="interrupted", error="no answer from Twilio; not resent")
            .execution_options(synchronize_session=False)
        )
        ids = list(
            (
                await session.scalars(
                    select(SmsMessage.id)
                    .where(SmsMessage.status == "pending")
                    .order_by(SmsMessage.id)
                    .limit(CLAIM_BATCH)
                    .with_for_update(skip_locked=True)
                )
            ).all()
        )
        if ids:
            await session.execute(
                update(SmsMessage)
                .where(SmsMessage.id.in_(ids), SmsMessage.status == "pending")
                .values(status="sending", lease_until=now + timedelta(seconds=SEND_LEASE_S))
                .execution_options(synchronize_session=False)
            )
        await session.commit()
    return ids


async def send_pending(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, texter: Any
) -> int:
    """Send every claimed confirmation; returns how many Twilio accepted."""
    sent = 0
    for sms_id in await claim_pending(sessions):
        async with sessions() as session:
            sms = await session.get(SmsMessage, sms_id)
            lead = await session.get(Lead, sms.lead_id) if sms and sms.lead_id else None
            if sms is None:
                continue
            if lead is not None and await _blocked(session, lead):
                sms.status, sms.error = "skipped", "do not call"
                await session.commit()
                continue
            to, body = sms.to_number, sms.body
        sid: str | None = None
        status, error = "queued", None
        try:
            sid, status = await texter.send_sms(
                to=to,
                from_=settings.twilio_from_number or "",
                body=body,
                status_callback=status_url(settings, sms_id),
            )
        except TelephonyError as exc:
            status, error = "failed", exc.message[:ERROR_MAX_CHARS]
        async with sessions() as session:
            sms = await session.get(SmsMessage, sms_id, with_for_update=True)
            if sms is None:
                continue
            sms.message_sid = sms.message_sid or sid
            if STATUS_RANK.get(status, 0) > STATUS_RANK.get(sms.status, 0):
                sms.status = status
            sms.error = error
            sms.lease_until = None
            await session.commit()
        log.info("sms.sent" if error is None else "sms.failed", sms_id=sms_id, error=error)
        sent += error is None
    return sent


async def record_status(
    session: AsyncSession, *, sms_id: int | None, message_sid: str, status: str, error: str | None
) -> bool:
    """Apply Twilio's status callback (never backwards); False for an unknown message."""
    conditions = [SmsMessage.message_sid == message_sid] if message_sid else []
    if sms_id is not None:
        conditions.append(SmsMessage.id == sms_id)
    if not conditions:
        return False
    sms = (
        await session.scalars(select(SmsMessage).where(or_(*conditions)).with_for_update())
    ).first()
    if sms is None:
        return False
    sms.message_sid = sms.message_sid or message_sid or None
    sms.status_events = [*(sms.status_events or []), status]
    if STATUS_RANK.get(status, 0) >= STATUS_RANK.get(sms.status, 0) and sms.status not in (
        "skipped",
        "interrupted",
    ):
        sms.status = status
    if error:
        sms.error = f"Twilio error {error}"[:ERROR_MAX_CHARS]
    return True


__all__ = ["queue_confirmation", "record_status", "send_pending"]
