"""The relational schema: leads, do-not-call, campaigns, membership, calls, turns, meetings.

Enumerations are stored as short strings (portable across SQLite and Postgres and
cheap to extend); the allowed values live in the ``*Status`` classes below.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from voicebot.db.types import JSONType, UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class LeadStatus(StrEnum):
    NEW = "new"
    CONTACTED = "contacted"
    CALLBACK = "callback"
    MEETING_BOOKED = "meeting_booked"
    NOT_INTERESTED = "not_interested"
    DO_NOT_CALL = "do_not_call"
    WRONG_NUMBER = "wrong_number"
    UNREACHABLE = "unreachable"


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class MemberState(StrEnum):
    PENDING = "pending"
    DIALING = "dialing"
    IN_CALL = "in_call"
    RETRY = "retry"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


class CallStatus(StrEnum):
    QUEUED = "queued"
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    FAILED = "failed"
    CANCELED = "canceled"


class CallOutcome(StrEnum):
    MEETING_BOOKED = "meeting_booked"
    CALLBACK_SCHEDULED = "callback_scheduled"
    NOT_INTERESTED = "not_interested"
    DO_NOT_CALL = "do_not_call"
    TRANSFERRED = "transferred"
    WRONG_NUMBER = "wrong_number"
    NO_ANSWER = "no_answer"
    VOICEMAIL = "voicemail"
    FAILED = "failed"
    FAX = "fax"
    COMPLETED = "completed"
    TTS_UNAVAILABLE = "tts_unavailable"
    """Our fault: no voice could speak (TTS down, no fallback), the call was hung up
    at once; the lead is retried like an unanswered call."""


class AttemptStatus(StrEnum):
    """Where one dial attempt stands. ``claimed``, ``dialing`` and ``placed`` are live."""

    CLAIMED = "claimed"
    """Committed by a sweeper; the REST request is not sent yet."""
    DIALING = "dialing"
    """One dialer won the attempt and is sending (or sent) ``calls.create``."""
    PLACED = "placed"
    """Twilio created the call (the attempt has its SID)."""
    ENDED = "ended"
    """The call ended; the outcome is on the call row."""
    FAILED = "failed"
    """Twilio refused or failed the call; ``reason`` says why."""
    NOT_DIALED = "not_dialed"
    """Released before any REST request (pause, cancel, our own error): no call exists."""


LIVE_ATTEMPT_STATUSES = (AttemptStatus.CLAIMED, AttemptStatus.DIALING, AttemptStatus.PLACED)


class VoicemailAction(StrEnum):
    LEAVE_MESSAGE = "leave_message"
    HANG_UP = "hang_up"


class MeetingStatus(StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"
    COMPLETED = "completed"


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False
    )


class Lead(TimestampMixin, Base):
    __tablename__ = "leads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phone: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    name: Mapped[str | None] = mapped_column(String(200))
    company: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(32), default=LeadStatus.NEW, nullable=False)
    consent_source: Mapped[str | None] = mapped_column(String(200))
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list, nullable=False)
    notes: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    last_called_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    callback_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    timezone: Mapped[str | None] = mapped_column(String(64))
    """IANA zone overriding the one derived from the phone number (calling window)."""
    voicemail_left_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When a voicemail message was left (at most one per lead)."""
    custom_fields: Mapped[dict[str, str]] = mapped_column(
        JSONType, default=dict, nullable=False, server_default=text("'{}'")
    )
    """Imported CSV columns that map to no lead field: header → text."""

    __table_args__ = (Index("ix_leads_status", "status"),)


class DoNotCall(Base):
    __tablename__ = "do_not_call"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phone: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    reason: Mapped[str | None] = mapped_column(String(500))
    source: Mapped[str] = mapped_column(String(32), default="api", nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)


class Campaign(TimestampMixin, Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    status: Mapped[str] = mapped_column(String(16), default=CampaignStatus.DRAFT, nullable=False)
    agent_script: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    max_concurrent_calls: Mapped[int] = mapped_column(Integer, default=5, nullable=False)
    calls_per_second: Mapped[float] = mapped_column(Float, default=1.0, nullable=False)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3, nullable=False)
    retry_base_min: Mapped[int] = mapped_column(Integer, default=30, nullable=False)
    retry_max_min: Mapped[int] = mapped_column(Integer, default=240, nullable=False)
    window_start: Mapped[str] = mapped_column(String(5), default="09:00", nullable=False)
    window_end: Mapped[str] = mapped_column(String(5), default="19:00", nullable=False)
    window_days: Mapped[str] = mapped_column(
        String(32), default="sun,mon,tue,wed,thu", nullable=False
    )
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Jerusalem", nullable=False)
    calendar: Mapped[str] = mapped_column(String(8), default="IL", nullable=False)
    blocked_dates: Mapped[list[str]] = mapped_column(JSONType, default=list, nullable=False)
    consent_required: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    voicemail_action: Mapped[str] = mapped_column(
        String(16), default=VoicemailAction.LEAVE_MESSAGE, nullable=False
    )
    voicemail_retry: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    """Where this campaign's events go (else the global WEBHOOK_URL)."""
    webhook_secret: Mapped[str | None] = mapped_column(String(200))
    """HMAC key of this campaign's webhook signatures (else WEBHOOK_SECRET); never served."""
    eligibility_url: Mapped[str | None] = mapped_column(String(2000))
    """Asked before each dial whether the lead may be called (signed like webhooks)."""
    record: Mapped[bool] = mapped_column(
        Boolean, default=False, nullable=False, server_default=text("false")
    )
    """Keep a stereo recording of each call (caller left, agent right)."""
    status_reason: Mapped[str | None] = mapped_column(String(500))
    """Why the engine paused or stopped the campaign (shown in its stats)."""
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    """The sweeper handling the campaign now (one at a time), until ``lease_until``."""
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    members: Mapped[list[CampaignLead]] = relationship(back_populates="campaign")


class CampaignLead(TimestampMixin, Base):
    __tablename__ = "campaign_leads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False
    )
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), nullable=False)
    state: Mapped[str] = mapped_column(String(16), default=MemberState.PENDING, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_outcome: Mapped[str | None] = mapped_column(String(32))

    campaign: Mapped[Campaign] = relationship(back_populates="members")

    __table_args__ = (
        UniqueConstraint("campaign_id", "lead_id", name="uq_campaign_leads_campaign_lead"),
        Index("ix_campaign_leads_due", "campaign_id", "state", "next_attempt_at"),
    )


class CampaignAttempt(TimestampMixin, Base):
    """One dial of one campaign member: committed before its REST request.

    ``(member_id, attempt_no)`` and ``idempotency_key`` are unique, and a lead has at most
    one live attempt across all campaigns (a partial unique index), so no lead is ever in
    two calls at once and no attempt is dialed twice.
    """

    __tablename__ = "campaign_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False
    )
    member_id: Mapped[int] = mapped_column(
        ForeignKey("campaign_leads.id", ondelete="CASCADE"), nullable=False
    )
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), nullable=False)
    attempt_no: Mapped[int] = mapped_column(Integer, nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default=AttemptStatus.CLAIMED, nullable=False)
    reason: Mapped[str | None] = mapped_column(String(500))
    """Why it failed: Twilio's error code and message, or our own reason."""
    twilio_error_code: Mapped[int | None] = mapped_column(Integer)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    call_sid: Mapped[str | None] = mapped_column(String(64))
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    dialing_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    placed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("member_id", "attempt_no", name="uq_campaign_attempts_member_no"),
        Index(
            "uq_campaign_attempts_live_lead",
            "lead_id",
            unique=True,
            postgresql_where=text("status IN ('claimed', 'dialing', 'placed')"),
            sqlite_where=text("status IN ('claimed', 'dialing', 'placed')"),
        ),
        Index("ix_campaign_attempts_campaign_status", "campaign_id", "status"),
        Index("ix_campaign_attempts_call_sid", "call_sid"),
        Index("ix_campaign_attempts_call_id", "call_id"),
    )


class Call(TimestampMixin, Base):
    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    direction: Mapped[str] = mapped_column(String(16), default="outbound", nullable=False)
    status: Mapped[str] = mapped_column(String(16), default=CallStatus.QUEUED, nullable=False)
    from_number: Mapped[str | None] = mapped_column(String(255))  # E.164, sip: or client:
    to_number: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    duration_s: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str | None] = mapped_column(String(32))
    answered_by: Mapped[str | None] = mapped_column(String(32))
    summary: Mapped[str | None] = mapped_column(Text)
    status_events: Mapped[list[str]] = mapped_column(JSONType, default=list, nullable=False)
    # The Media Stream that claimed this call (first websocket ``start`` with a valid token);
    # a second socket presenting the same token finds it set and is refused.
    stream_sid: Mapped[str | None] = mapped_column(String(64))
    stream_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    recording_key: Mapped[str | None] = mapped_column(String(300))
    """The recording's name in the recording store (None: not recorded, or deleted)."""
    recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    turns: Mapped[list[CallTurn]] = relationship(
        back_populates="call", order_by="CallTurn.seq", cascade="all, delete-orphan"
    )

    __table_args__ = (
        Index("ix_calls_lead_id", "lead_id"),
        Index("ix_calls_campaign", "campaign_id"),
        # The console (migration 0006): by date, the live ones, a campaign's newest first.
        Index("ix_calls_created_at", "created_at"),
        Index(
            "ix_calls_live",
            "id",
            postgresql_where=text("ended_at IS NULL"),
            sqlite_where=text("ended_at IS NULL"),
        ),
        Index("ix_calls_campaign_id_id", "campaign_id", "id"),
    )


class CallTurn(Base):
    __tablename__ = "call_turns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    interrupted: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    intent: Mapped[str | None] = mapped_column(String(32))
    latency: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)

    call: Mapped[Call] = relationship(back_populates="turns")

    __table_args__ = (
        UniqueConstraint("call_id", "seq", name="uq_call_turns_call_seq"),
        Index("ix_call_turns_created_at", "created_at"),
    )


class Meeting(TimestampMixin, Base):
    __tablename__ = "meetings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), nullable=False)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    duration_min: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default=MeetingStatus.SCHEDULED, nullable=False)
    notes: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_meetings_active_range", "status", "start_at", "end_at"),
        Index("ix_meetings_call_id", "call_id"),
    )


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    """Due at ``next_attempt_at``."""
    SENDING = "sending"
    """Claimed by a dispatcher until ``lease_until`` (then due again)."""
    DELIVERED = "delivered"
    FAILED = "failed"
    """Refused until its ``expires_at``: no more attempts (a replay starts again)."""


class WebhookDelivery(TimestampMixin, Base):
    """One outbound webhook event to one URL, and how its delivery went (the log)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    event_type: Mapped[str] = mapped_column(String(32), nullable=False)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    url: Mapped[str] = mapped_column(String(2000), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)


class SmsMessage(TimestampMixin, Base):
    """One SMS (a meeting confirmation): at most one per meeting, enforced here."""

    __tablename__ = "sms_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int | None] = mapped_column(
        ForeignKey("meetings.id", ondelete="SET NULL"), unique=True
    )
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"))
    to_number: Mapped[str] = mapped_column(String(20), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="pending", nullable=False)
    """pending → sending → (Twilio's) queued, sent, delivered | undelivered, failed;
    skipped (do-not-call) or interrupted (a send whose answer was lost: never resent)."""
    message_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    error: Mapped[str | None] = mapped_column(String(500))
    status_events: Mapped[list[str]] = mapped_column(JSONType, default=list, nullable=False)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_sms_messages_status", "status"),)


class TwilioEvent(Base):
    """Idempotency ledger of Twilio webhooks (``I-Twilio-Idempotency-Token``)."""

    __tablename__ = "twilio_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
