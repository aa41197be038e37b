"""Twilio's SMS status callback: ``POST /twilio/sms-status`` records each message status."""

from __future__ import annotations

from typing import Any

import structlog
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from voicebot.api.fields import Line
from voicebot.api.spec import FORM, Returns, operation
from voicebot.api.state import app_state
from voicebot.api.twilio_common import TwilioForm, signed_form
from voicebot.notify.sms import record_status

log = structlog.get_logger(__name__)

SMS_ID_MAX_DIGITS = 12


class SmsStatusForm(TwilioForm):
    """A message status callback."""

    MessageSid: Line = Field(min_length=1, max_length=64)
    MessageStatus: Line = Field(min_length=1, max_length=32)
    ErrorCode: str | None = Field(default=None, pattern=r"^[0-9]{0,9}$")


@operation(
    summary="SMS status callback (Twilio)",
    tags=("twilio",),
    description="Signed by Twilio. Records queued/sent/delivered/undelivered/failed of a "
    "meeting confirmation; never moves a status backwards.",
    body=SmsStatusForm,
    body_media_type=FORM,
    headers=(("X-Twilio-Signature", "Twilio's request signature"),),
    replies=(Returns(204),),
    errors=(403, 422),
    public=True,
)
async def sms_status(request: Request) -> Response:
    params = await signed_form(request, SmsStatusForm)
    if isinstance(params, Response):
        return params
    raw = request.query_params.get("sms", "")
    sms_id = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= SMS_ID_MAX_DIGITS else None
    async with app_state(request).sessions() as session:
        known = await record_status(
            session,
            sms_id=sms_id,
            message_sid=params["MessageSid"],
            status=params["MessageStatus"],
            error=params.get("ErrorCode") or None,
        )
        await session.commit()
    if not known:
        log.warning("twilio.sms_status_unknown", message_sid=params["MessageSid"])
    return Response(status_code=204)


routes: list[Any] = [Route("/twilio/sms-status", sms_status, methods=["POST"])]
