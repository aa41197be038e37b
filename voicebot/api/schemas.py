"""Request and response models of the REST API (pydantic), validated at the edge."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field, field_validator

from voicebot.api.phones import normalize_phone

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class LeadIn(Strict):
    phone: str
    name: str | None = Field(default=None, max_length=200)
    company: str | None = Field(default=None, max_length=200)
    email: EmailStr | None = None
    consent_source: str | None = Field(default=None, max_length=200)
    consent_at: AwareDatetime | None = None
    tags: list[str] = Field(default_factory=list, max_length=50)
    notes: str | None = Field(default=None, max_length=5000)

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str) -> str:
        return normalize_phone(value)


class LeadPatch(Strict):
    phone: str | None = None
    name: str | None = Field(default=None, max_length=200)
    company: str | None = Field(default=None, max_length=200)
    email: EmailStr | None = None
    status: str | None = None
    consent_source: str | None = Field(default=None, max_length=200)
    consent_at: AwareDatetime | None = None
    tags: list[str] | None = None
    notes: str | None = Field(default=None, max_length=5000)

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        return None if value is None else normalize_phone(value)


class MeetingIn(Strict):
    lead_id: int
    start: AwareDatetime
    duration_min: int | None = Field(default=None, ge=5, le=480)
    notes: str | None = Field(default=None, max_length=5000)
    call_id: int | None = None


class DncIn(Strict):
    phone: str
    reason: str | None = Field(default=None, max_length=500)

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str) -> str:
        return normalize_phone(value)


class CampaignIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    agent_script: dict[str, Any] = Field(default_factory=dict)
    max_concurrent_calls: int = Field(default=5, ge=1, le=500)
    calls_per_second: float = Field(default=1.0, gt=0, le=100)
    """Dials per second (a float: 0.05 = 3 per minute); Twilio's account default is 1."""
    max_attempts: int = Field(default=3, ge=1, le=20)
    retry_base_min: int = Field(default=30, ge=1, le=10080)
    retry_max_min: int = Field(default=240, ge=1, le=43200)
    window_start: str = Field(default="09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    window_end: str = Field(default="20:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    window_days: str = "sun,mon,tue,wed,thu,fri"
    timezone: str = "Asia/Jerusalem"
    calendar: Literal["IL", "none"] = "IL"
    blocked_dates: list[date] = Field(default_factory=list, max_length=1000)
    consent_required: bool = True
    voicemail_action: Literal["leave_message", "hang_up"] = "leave_message"
    voicemail_retry: bool = True


class AddLeadsIn(Strict):
    lead_ids: list[int] | None = None
    status: str | None = None
    tag: str | None = None


def iso(value: datetime | None, tz: Any = None) -> str | None:
    if value is None:
        return None
    return (value.astimezone(tz) if tz is not None else value).isoformat()
