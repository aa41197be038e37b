"""What every Twilio webhook route shares: the signed, validated form, and a call's lead
and script.

Forms are checked after the signature: a field the databases cannot store (NUL, control
characters, an address longer than a SIP URI may be, an id past 32 bits) is a 422 in the
one error shape, never a 500. Recognised speech (``SpeechResult``) is Twilio's own
rendering of what the caller said, not input anyone typed: its control and format
characters become spaces (logged once) and the turn goes on. ``From``/``To`` may be
phone numbers, ``sip:`` URIs or ``client:`` identities.
"""

from __future__ import annotations

import unicodedata
from typing import ClassVar

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from voicebot.api.errors import error_response, validation_details
from voicebot.api.fields import Line, Text, unstorable_problem
from voicebot.api.state import app_state
from voicebot.brain.base import LeadContext
from voicebot.brain.script import AgentScript
from voicebot.db.models import Call, Campaign, Lead
from voicebot.db.models import CallStatus as CallStatusValue
from voicebot.db.scripts import script_or_neutral
from voicebot.errors import InvalidInputError, SignatureError
from voicebot.telephony.signature import verify_twilio_request

log = structlog.get_logger(__name__)

ADDRESS_MAX_CHARS = 255
"""Longest ``From``/``To`` we store (the calls columns' width): SIP URIs included."""
IDEMPOTENCY_TOKEN_MAX_CHARS = 128
"""Longest ``I-Twilio-Idempotency-Token`` (the twilio_events column's width)."""
IDEMPOTENCY_HEADER = "i-twilio-idempotency-token"


class TwilioForm(BaseModel):
    """The fields of a Twilio call webhook that we read; Twilio sends many more."""

    model_config = ConfigDict(extra="allow")
    SPOKEN_FIELDS: ClassVar[tuple[str, ...]] = ()
    """Fields holding recognised speech: cleaned of control characters, never refused."""
    CallSid: Line = Field(default="", max_length=64)
    AccountSid: Line | None = Field(default=None, max_length=64)
    From: Line | None = Field(
        default=None, max_length=ADDRESS_MAX_CHARS, description="E.164, sip: URI or client:"
    )
    To: Line | None = Field(default=None, max_length=ADDRESS_MAX_CHARS)
    Direction: Line | None = Field(default=None, max_length=32)
    AnsweredBy: Line | None = Field(default=None, max_length=64)


class VoiceForm(TwilioForm):
    """The voice webhook: a call was answered (or an inbound call arrived)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {"CallSid": "CA0123456789abcdef0123456789abcdef", "From": "+972544567890",
                 "To": "+97235551234", "Direction": "inbound"}
            ]
        },
    )  # fmt: skip
    CallSid: Line = Field(min_length=1, max_length=64)


class StatusForm(TwilioForm):
    """A status callback."""

    CallStatus: CallStatusValue
    CallDuration: str | None = Field(default=None, pattern=r"^[0-9]{1,9}$", description="s")


class GatherForm(TwilioForm):
    """A ``<Gather>`` result: speech, a key, or neither on silence."""

    SPOKEN_FIELDS: ClassVar[tuple[str, ...]] = ("SpeechResult", "UnstableSpeechResult")

    SpeechResult: Text | None = Field(default=None, max_length=4000)
    Digits: Line | None = Field(default=None, max_length=64)
    Confidence: Line | None = Field(default=None, max_length=32)


def _form_problem(params: dict[str, str], headers: dict[str, str]) -> list[dict[str, str]]:
    problems = [
        {"field": f"form.{name}", "message": problem}
        for name, value in params.items()
        if (problem := unstorable_problem(name) or unstorable_problem(value))
    ]
    token = headers.get(IDEMPOTENCY_HEADER)
    if token is not None and len(token) > IDEMPOTENCY_TOKEN_MAX_CHARS:
        problems.append(
            {
                "field": "header.I-Twilio-Idempotency-Token",
                "message": f"at most {IDEMPOTENCY_TOKEN_MAX_CHARS} characters",
            }
        )
    return problems


def _clean_spoken(params: dict[str, str], names: tuple[str, ...], *, path: str) -> None:
    """Replace control and format characters in the recognised-speech fields by spaces."""
    for name in names:
        value = params.get(name)
        if value is None or unstorable_problem(value) is None:
            continue
        cleaned = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in value)
        params[name] = " ".join(cleaned.split())
        log.info(
            "twilio.speech_cleaned",
            path=path,
            call_sid=params.get("CallSid"),
            field=name,
            removed_chars=sum(unicodedata.category(ch)[0] == "C" for ch in value),
        )


async def signed_form(
    request: Request, model: type[TwilioForm] = TwilioForm
) -> dict[str, str] | Response:
    """The webhook's form fields when Twilio's signature holds (else a 403 response),
    validated by ``model`` (else :class:`InvalidInputError`, a 422)."""
    form = await request.form()
    params = {k: str(v) for k, v in form.items()}
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    try:
        verify_twilio_request(
            app_state(request).settings,
            url_path_and_query=path,
            form_params=params,
            signature_header=request.headers.get("x-twilio-signature"),
        )
    except SignatureError as exc:
        log.warning("twilio.bad_signature", path=request.url.path, reason=exc.message)
        return error_response(403, exc.code, "bad Twilio signature")
    _clean_spoken(params, model.SPOKEN_FIELDS, path=request.url.path)
    if problems := _form_problem(params, dict(request.headers)):
        raise InvalidInputError("invalid webhook", details=problems)
    try:
        model.model_validate(params)
    except ValidationError as exc:
        raise InvalidInputError(
            "invalid webhook", details=validation_details(exc, prefix="form")
        ) from exc
    return params


async def lead_context(session: AsyncSession, call: Call) -> LeadContext | None:
    """What the brain knows about the call's lead (None for an unknown caller)."""
    if call.lead_id is None:
        return None
    lead = await session.get(Lead, call.lead_id)
    if lead is None:
        return None
    return LeadContext(lead_id=lead.id, name=lead.name, company=lead.company, phone=lead.phone)


async def load_agent_script(session: AsyncSession, campaign_id: int | None) -> AgentScript | None:
    """The campaign's agent script; None (the built-in script) when the call has no
    campaign or the campaign's script is empty; a stale invalid script speaks no product."""
    if campaign_id is None:
        return None
    campaign = await session.get(Campaign, campaign_id)
    if campaign is None or not campaign.agent_script:
        return None
    return script_or_neutral(campaign.agent_script, campaign_id=campaign_id)
