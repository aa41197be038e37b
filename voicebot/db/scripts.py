"""Agent scripts as stored with campaigns: overrides on the default script, validated.

A campaign's ``agent_script`` column holds only what differs from
:meth:`AgentScript.default` (``{}`` means the default); ``objections`` may be given in
part. :func:`script_from_stored` turns that into a whole validated script (the campaign
API calls it on save, so a bad script is refused, not found on the phone), and
:func:`load_agent_script` reads it for a call or a text conversation.
"""

from __future__ import annotations

from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.brain.script import AgentScript
from voicebot.db.models import Campaign

log = structlog.get_logger(__name__)


def script_from_stored(overrides: dict[str, Any]) -> AgentScript:
    """The default script with ``overrides`` applied; raises pydantic's ValidationError."""
    base = AgentScript.default().model_dump()
    merged = {**base, **overrides}
    objections = overrides.get("objections")
    if isinstance(objections, dict):
        merged["objections"] = {**base["objections"], **objections}
    return AgentScript.model_validate(merged)


async def load_agent_script(session: AsyncSession, campaign_id: int) -> AgentScript | None:
    """The campaign's script; None when no such campaign exists.

    A stored script that no longer validates (written before a rule existed) gives the
    default script and a warning, so the campaign's calls still go out.
    """
    campaign = await session.get(Campaign, campaign_id)
    if campaign is None:
        return None
    try:
        return script_from_stored(campaign.agent_script or {})
    except ValidationError as exc:
        log.warning(
            "campaign.agent_script_invalid", campaign_id=campaign_id, errors=exc.error_count()
        )
        return AgentScript.default()
