"""Agent scripts as stored with campaigns: the whole script, validated.

A campaign's ``agent_script`` column holds the script as the operator wrote it
(:class:`~voicebot.brain.script.AgentScript`, schema version 1; a stored script without
``version`` is version 1). ``{}`` means the built-in script. A script that gives some
fields is taken as it is: the fields it leaves out are never filled from the built-in
product (the agent says a person will follow up instead). :func:`script_from_stored`
validates (the campaign API calls it on save, so a bad script is refused, not found on
the phone), and :func:`load_agent_script` reads it for a call or a text conversation.
"""

from __future__ import annotations

from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.brain.script import AgentScript
from voicebot.db.models import Campaign

log = structlog.get_logger(__name__)


def script_from_stored(stored: dict[str, Any]) -> AgentScript:
    """The script ``stored`` describes (``{}``: the built-in one); raises pydantic's
    ValidationError."""
    if not stored:
        return AgentScript.default()
    return AgentScript.model_validate(stored)


def script_or_neutral(stored: dict[str, Any], *, campaign_id: int) -> AgentScript:
    """Like :func:`script_from_stored`, but a stored script that no longer validates
    (written before a rule existed) gives a script with no product facts and a warning,
    so the campaign's calls still go out and never speak another product."""
    try:
        return script_from_stored(stored)
    except ValidationError as exc:
        log.warning(
            "campaign.agent_script_invalid", campaign_id=campaign_id, errors=exc.error_count()
        )
        return AgentScript()


async def load_agent_script(session: AsyncSession, campaign_id: int) -> AgentScript | None:
    """The campaign's script; None when no such campaign exists."""
    campaign = await session.get(Campaign, campaign_id)
    if campaign is None:
        return None
    return script_or_neutral(campaign.agent_script or {}, campaign_id=campaign_id)
