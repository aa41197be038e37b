"""What every Twilio webhook route shares: the signed form, and a call's lead and script."""

from __future__ import annotations

import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from voicebot.api.state import app_state
from voicebot.brain.base import LeadContext
from voicebot.brain.script import AgentScript
from voicebot.db.models import Call, Campaign, Lead
from voicebot.db.scripts import script_from_stored
from voicebot.errors import SignatureError
from voicebot.telephony.signature import verify_twilio_request

log = structlog.get_logger(__name__)


async def signed_form(request: Request) -> dict[str, str] | Response:
    """The webhook's form fields when Twilio's signature holds, else a 403 response."""
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
        return Response("forbidden", status_code=403)
    return params


async def lead_context(session: AsyncSession, call: Call) -> LeadContext | None:
    """What the brain knows about the call's lead (None for an unknown caller)."""
    if call.lead_id is None:
        return None
    lead = await session.get(Lead, call.lead_id)
    if lead is None:
        return None
    return LeadContext(lead_id=lead.id, name=lead.name, company=lead.company)


async def load_agent_script(session: AsyncSession, campaign_id: int | None) -> AgentScript | None:
    """The campaign's agent script; None (the default script) when it has none or it is invalid."""
    if campaign_id is None:
        return None
    campaign = await session.get(Campaign, campaign_id)
    if campaign is None or not campaign.agent_script:
        return None
    try:
        return script_from_stored(campaign.agent_script)  # overrides on the default script
    except ValidationError as exc:
        log.warning(
            "campaign.invalid_agent_script", campaign_id=campaign_id, errors=exc.error_count()
        )
        return None
