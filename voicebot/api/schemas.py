"""Request and response models of the REST API (pydantic), validated at the edge.

Request models use the storable field types of :mod:`voicebot.api.fields`; response
models document what the handlers answer (the contract test holds them to it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator, model_validator

from voicebot.api.fields import Id, Line, Text, When
from voicebot.api.phones import normalize_phone
from voicebot.scheduling import (
    format_blocked_dates,
    format_window_days,
    parse_blocked_dates,
    parse_calendar,
    parse_window_days,
)

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50
MAX_TAGS = 50
MAX_TAG_CHARS = 100
MAX_ADD_LEAD_IDS = 10_000
"""Ids in one add-leads request (Postgres binds at most 32,767 parameters per statement)."""
MAX_QUERY_CHARS = 200

PHONE_EXAMPLE = "054-456-7890"
WINDOW_END_PATTERN = r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$"
"""HH:MM, or 24:00 for the end of the day (see voicebot.scheduling.validation.END_OF_DAY)."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Query(BaseModel):
    """Query strings: unknown names are ignored, values validated."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, populate_by_name=True)


class Page(Query):
    limit: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    offset: int = Field(default=0, ge=0, le=1_000_000_000)


class LeadIn(Strict):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "phone": PHONE_EXAMPLE,
                    "name": "דנה כהן",
                    "company": "כהן ובניו",
                    "consent_source": "website form",
                    "consent_at": "2026-01-05T10:00:00+02:00",
                    "tags": ["vip"],
                }
            ]
        },
    )
    phone: Line = Field(max_length=40)
    name: Line | None = Field(default=None, max_length=200)
    company: Line | None = Field(default=None, max_length=200)
    email: EmailStr | None = None
    consent_source: Line | None = Field(default=None, max_length=200)
    consent_at: When | None = None
    tags: list[Line] = Field(default_factory=list, max_length=MAX_TAGS)
    notes: Text | None = Field(default=None, max_length=5000)

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str) -> str:
        return normalize_phone(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        if any(len(tag) > MAX_TAG_CHARS for tag in value):
            raise ValueError(f"a tag has at most {MAX_TAG_CHARS} characters")
        return value


class LeadPatch(Strict):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"status": "callback", "notes": "לחזור אחרי החגים"}]},
    )
    phone: Line | None = Field(default=None, max_length=40)
    name: Line | None = Field(default=None, max_length=200)
    company: Line | None = Field(default=None, max_length=200)
    email: EmailStr | None = None
    status: Line | None = Field(default=None, max_length=32)
    consent_source: Line | None = Field(default=None, max_length=200)
    consent_at: When | None = None
    tags: list[Line] | None = Field(default=None, max_length=MAX_TAGS)
    notes: Text | None = Field(default=None, max_length=5000)

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        return None if value is None else normalize_phone(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(len(tag) > MAX_TAG_CHARS for tag in value):
            raise ValueError(f"a tag has at most {MAX_TAG_CHARS} characters")
        return value


class LeadQuery(Page):
    status: Line | None = Field(default=None, max_length=32, description="lead status")
    tag: Line | None = Field(default=None, max_length=MAX_TAG_CHARS)
    company: Line | None = Field(default=None, max_length=200)
    q: Line | None = Field(default=None, max_length=MAX_QUERY_CHARS, description="name contains")


class LeadPath(BaseModel):
    lead_id: Id


class LeadOut(BaseModel):
    id: int
    phone: str
    name: str | None
    company: str | None
    email: str | None
    status: str
    consent_source: str | None
    consent_at: str | None
    tags: list[str]
    notes: str | None
    attempts: int
    custom_fields: dict[str, str] = Field(description="imported CSV columns of no lead field")
    created_at: str | None
    updated_at: str | None


class LeadPage(BaseModel):
    items: list[LeadOut]
    total: int
    limit: int
    offset: int


class ImportRowError(BaseModel):
    row: int
    errors: list[dict[str, Any]]


class ImportRowWarning(BaseModel):
    row: int
    warnings: list[dict[str, Any]]


class ImportReport(BaseModel):
    created: int
    failed: int
    warned: int
    errors: list[ImportRowError]
    warnings: list[ImportRowWarning]
    encoding: str = Field(description="detected text encoding, e.g. utf-8-sig, cp1255, utf-16")
    delimiter: str
    columns: dict[str, str] = Field(description="header → lead field, or 'custom'")


class MeetingIn(Strict):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [{"lead_id": 1, "start": "2026-12-01T10:00:00+02:00", "duration_min": 30}]
        },
    )
    lead_id: Id
    start: When
    duration_min: int | None = Field(default=None, ge=5, le=480)
    notes: Text | None = Field(default=None, max_length=5000)
    call_id: Id | None = None


class MeetingQuery(Page):
    start: When | None = Field(default=None, alias="from", description="ISO 8601 with offset")
    end: When | None = Field(default=None, alias="to", description="ISO 8601 with offset")
    status: Line | None = Field(default=None, max_length=16)
    lead_id: Id | None = None

    @field_validator("start", "end", mode="before")
    @classmethod
    def _plus(cls, value: Any) -> Any:
        # A '+' in an unencoded query string arrives as a space.
        return value.replace(" ", "+") if isinstance(value, str) else value

    @model_validator(mode="after")
    def _ordered(self) -> MeetingQuery:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("'to' must be after 'from'")
        return self


class MeetingPath(BaseModel):
    meeting_id: Id


class MeetingOut(BaseModel):
    id: int
    lead_id: int
    call_id: int | None
    start: str | None
    end: str | None
    duration_min: int
    status: str
    notes: str | None
    created_at: str | None


class MeetingPage(BaseModel):
    items: list[MeetingOut]
    limit: int
    offset: int


class DncIn(Strict):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"phone": PHONE_EXAMPLE, "reason": "asked on a call"}]},
    )
    phone: Line = Field(max_length=40)
    reason: Text | None = Field(default=None, max_length=500)

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str) -> str:
        return normalize_phone(value)


class DncPath(BaseModel):
    phone: Line = Field(max_length=40, description="any form; normalized to E.164")


class DncOut(BaseModel):
    id: int
    phone: str
    reason: str | None
    source: str
    created_at: str | None


class DncPage(BaseModel):
    items: list[DncOut]
    limit: int
    offset: int


class CallQuery(Page):
    lead_id: Id | None = None
    campaign_id: Id | None = None
    status: Line | None = Field(default=None, max_length=16)


class CallPath(BaseModel):
    call_id: Id


class TurnOut(BaseModel):
    seq: int
    role: str
    text: str
    interrupted: bool
    intent: str | None
    latency: dict[str, Any] | None
    created_at: str | None


class CallOut(BaseModel):
    id: int
    call_sid: str | None
    lead_id: int | None
    campaign_id: int | None
    direction: str
    status: str
    started_at: str | None
    answered_at: str | None
    ended_at: str | None
    duration_s: int | None
    outcome: str | None
    answered_by: str | None
    summary: str | None
    recording_url: str | None = None


class CallDetail(CallOut):
    turns: list[TurnOut]


class CallPage(BaseModel):
    items: list[CallOut]
    limit: int
    offset: int


class CampaignIn(Strict):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {"name": "מבצע חורף", "max_concurrent_calls": 5, "window_start": "09:00",
                 "window_end": "19:00", "calendar": "IL"}
            ]
        },
    )  # fmt: skip
    name: Line = Field(min_length=1, max_length=200)
    agent_script: dict[str, Any] = Field(
        default_factory=dict,
        description="the agent script, schema AgentScript (version 1; see "
        "GET /campaigns/{id}/script/preview); {} is the built-in script",
    )
    max_concurrent_calls: int = Field(default=5, ge=1, le=500)
    calls_per_second: float = Field(default=1.0, gt=0, le=100)
    """Dials per second (a float: 0.05 = 3 per minute); Twilio's account default is 1."""
    max_attempts: int = Field(default=3, ge=1, le=20)
    retry_base_min: int = Field(default=30, ge=1, le=10080)
    retry_max_min: int = Field(default=240, ge=1, le=43200)
    window_start: str = Field(default="09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    window_end: str = Field(default="20:00", pattern=WINDOW_END_PATTERN)
    window_days: Line = Field(default="sun,mon,tue,wed,thu,fri", max_length=64)
    timezone: Line = Field(default="Asia/Jerusalem", max_length=64)
    calendar: Line = Field(default="IL", max_length=8)
    blocked_dates: list[Line] = Field(default_factory=list, max_length=366)
    consent_required: bool = True
    voicemail_action: Literal["leave_message", "hang_up"] = "leave_message"
    voicemail_retry: bool = True
    webhook_url: Line | None = Field(
        default=None,
        max_length=2000,
        pattern=r"^https?://[^\s]+$",
        description="where this campaign's events are POSTed (else WEBHOOK_URL)",
    )
    record: bool = Field(
        default=False, description="keep a stereo WAV of each call (caller left, agent right)"
    )
    eligibility_url: Line | None = Field(
        default=None,
        max_length=2000,
        pattern=r"^https?://[^\s]+$",
        description="POSTed each lead before its dial (signed like webhooks); "
        '{"eligible": false, "reason": ...}, an error or 2 s without an answer skips it',
    )
    webhook_secret: Line | None = Field(
        default=None,
        min_length=16,
        max_length=200,
        description="HMAC-SHA256 key of Voicebot-Signature (else WEBHOOK_SECRET); write-only",
    )

    @field_validator("window_days")
    @classmethod
    def _days(cls, value: str) -> str:
        return format_window_days(parse_window_days(value))

    @field_validator("calendar")
    @classmethod
    def _calendar(cls, value: str) -> str:
        return parse_calendar(value)

    @field_validator("blocked_dates")
    @classmethod
    def _blocked(cls, value: list[str]) -> list[str]:
        return format_blocked_dates(parse_blocked_dates(value))


class CampaignPatch(Strict):
    """A partial edit of a campaign: only the fields given change.

    The merged campaign is validated as a whole, exactly like a create (window order,
    zone, retry back-off, agent script). A draft or paused campaign takes any field; a
    running one only the fields the engine reads afresh on every sweep
    (:data:`RUNNING_EDITABLE_FIELDS`); a completed or cancelled one none.
    """

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [{"calls_per_second": 0.5, "max_concurrent_calls": 3},
                         {"window_start": "10:00", "window_end": "18:00",
                          "blocked_dates": ["2027-04-22"]}]
        },
    )  # fmt: skip
    name: Line | None = Field(default=None, min_length=1, max_length=200)
    agent_script: dict[str, Any] | None = Field(
        default=None, description="the whole agent script, replacing the stored one"
    )
    max_concurrent_calls: int | None = Field(default=None, ge=1, le=500)
    calls_per_second: float | None = Field(default=None, gt=0, le=100)
    max_attempts: int | None = Field(default=None, ge=1, le=20)
    retry_base_min: int | None = Field(default=None, ge=1, le=10080)
    retry_max_min: int | None = Field(default=None, ge=1, le=43200)
    window_start: str | None = Field(default=None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    window_end: str | None = Field(default=None, pattern=WINDOW_END_PATTERN)
    window_days: Line | None = Field(default=None, max_length=64)
    timezone: Line | None = Field(default=None, max_length=64)
    calendar: Line | None = Field(default=None, max_length=8)
    blocked_dates: list[Line] | None = Field(default=None, max_length=366)
    consent_required: bool | None = None
    voicemail_action: Literal["leave_message", "hang_up"] | None = None
    voicemail_retry: bool | None = None
    webhook_url: Line | None = Field(
        default=None,
        max_length=2000,
        pattern=r"^https?://[^\s]+$",
        description="where this campaign's events are POSTed; null clears it (WEBHOOK_URL then)",
    )
    webhook_secret: Line | None = Field(
        default=None,
        min_length=16,
        max_length=200,
        description="the HMAC key of this campaign's webhooks; null clears it",
    )
    eligibility_url: Line | None = Field(
        default=None,
        max_length=2000,
        pattern=r"^https?://[^\s]+$",
        description="the pre-dial eligibility hook; null clears it",
    )
    record: bool | None = None


CLEARABLE_FIELDS = frozenset({"webhook_url", "webhook_secret", "eligibility_url"})
"""Optional fields an edit may set to null (the create's default), to stop using them."""

RUNNING_EDITABLE_FIELDS = frozenset(
    {
        "name",
        "max_concurrent_calls",
        "calls_per_second",
        "max_attempts",
        "retry_base_min",
        "retry_max_min",
        "blocked_dates",
        "webhook_url",
        "webhook_secret",
        "eligibility_url",
    }
)
"""Fields a running campaign may change: the sweeper, the dialer and the webhook
dispatcher read them afresh on every pass or event, and none alters a call already placed
or the meaning of one already counted."""


class AddLeadsIn(Strict):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"lead_ids": [1, 2, 3]}, {"tag": "vip"}]},
    )
    lead_ids: list[Id] | None = Field(default=None, max_length=MAX_ADD_LEAD_IDS)
    status: Line | None = Field(default=None, max_length=32)
    tag: Line | None = Field(default=None, max_length=MAX_TAG_CHARS)


class CampaignPath(BaseModel):
    campaign_id: Id


class CampaignActionPath(BaseModel):
    campaign_id: Id
    action: Literal["start", "pause", "resume", "cancel"]


class CampaignOut(BaseModel):
    id: int
    name: str
    status: str
    agent_script: dict[str, Any] | None
    max_concurrent_calls: int
    calls_per_second: float
    max_attempts: int
    retry_base_min: int
    retry_max_min: int
    window_start: str
    window_end: str
    window_days: str
    timezone: str
    calendar: str
    blocked_dates: list[str]
    consent_required: bool
    voicemail_action: str
    voicemail_retry: bool
    webhook_url: str | None = None
    webhook_secret_set: bool = False
    record: bool = False
    eligibility_url: str | None = None
    status_reason: str | None
    started_at: str | None
    finished_at: str | None
    created_at: str | None


class CampaignPage(BaseModel):
    items: list[CampaignOut]
    limit: int
    offset: int


class AddLeadsOut(BaseModel):
    added: int
    already_member: int
    skipped: list[int]


class CampaignStatsOut(BaseModel):
    campaign_id: int
    status: str
    status_reason: str | None
    """Why the engine paused the campaign (our side's failure), if it did."""
    total: int
    states: dict[str, int]
    due: int
    in_flight: int
    attempts: dict[str, int]


class DeadLetterQuery(Page):
    actor: Line | None = Field(default=None, max_length=200, description="only this actor's")


class DeadLetterOut(BaseModel):  # type: ignore[no-redef]
    # pydantic.mypy's generated __init__ takes **kwargs: the field of that name clashes.
    message_id: str
    queue: str
    actor: str
    args: list[Any]
    kwargs: dict[str, Any]
    error: str
    traceback: str
    retries: int
    failed_at: str


class DeadLetterPage(BaseModel):
    items: list[DeadLetterOut]
    total: int
    limit: int
    offset: int
    broker: str


class HealthOut(BaseModel):
    status: str


class ReadyOut(BaseModel):
    status: str
    checks: dict[str, str]
    failing: list[str] | None = None
    # Each AI stage's last outcome: "ok", "off", "unchecked", "error: …" or "fatal: …".
    providers: dict[str, str] | None = None
    # What serves calls: {"brain": "llm"|"rules", "stt": backend|"off", "tts": backend|"off"}.
    mode: dict[str, str] | None = None


class InfoOut(BaseModel):
    version: str
    config: dict[str, Any]
    features: dict[str, Any]


def iso(value: datetime | None, tz: Any = None) -> str | None:
    if value is None:
        return None
    return (value.astimezone(tz) if tz is not None else value).isoformat()
