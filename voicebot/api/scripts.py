"""A campaign's agent script as it will be heard: ``GET /campaigns/{id}/script/preview``.

Owns the preview route: the greeting, the pitch, the price answer and the voicemail
message rendered from the campaign's script exactly as a call speaks them (the script's
templates filled, then :func:`~voicebot.brain.speech_text.to_spoken`), beside the
resolved script itself (schema :class:`~voicebot.brain.script.AgentScript`), so an
operator sees what a left-out field turns into before a campaign dials anyone.
"""

from __future__ import annotations

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voicebot.api.body import parse_path, parse_query
from voicebot.api.fields import Line
from voicebot.api.schemas import CampaignPath, Query
from voicebot.api.spec import Returns, operation
from voicebot.api.state import app_state
from voicebot.brain import phrases as say
from voicebot.brain.script import AgentScript
from voicebot.brain.speech_text import to_spoken
from voicebot.db.models import Campaign
from voicebot.db.scripts import script_or_neutral
from voicebot.errors import NotFoundError

MAX_LEAD_NAME_CHARS = 200


class PreviewQuery(Query):
    lead_name: Line | None = Field(
        default=None,
        max_length=MAX_LEAD_NAME_CHARS,
        description="greet this name as a lead would be greeted (default: no name)",
    )


class SpokenLines(BaseModel):
    """Each line as the TTS receives it (numbers, prices and times in words)."""

    greeting: str
    pitch: str
    price: str
    voicemail: str


class ScriptPreview(BaseModel):
    campaign_id: int
    script: AgentScript = Field(description="the script the campaign's calls speak")
    spoken: SpokenLines


def preview_lines(script: AgentScript, lead_name: str | None = None) -> SpokenLines:
    """The lines a call with ``script`` speaks, in their spoken form."""
    return SpokenLines(
        greeting=to_spoken(script.render_greeting(lead_name)),
        pitch=to_spoken(say.pitch(script)),
        price=to_spoken(script.price_answer()),
        voicemail=to_spoken(script.render_voicemail(lead_name)),
    )


@operation(
    summary="Preview a campaign's script as it will be spoken",
    tags=("campaigns",),
    description="Greeting, pitch, price answer and voicemail rendered from the campaign's "
    "agent script and written for the ear, as the TTS receives them. A field the script "
    "leaves out shows what the agent says instead (a person will follow up).",
    path=CampaignPath,
    query=PreviewQuery,
    replies=(Returns(200, ScriptPreview),),
    errors=(404, 422),
)
async def preview_script(request: Request) -> Response:
    campaign_id = parse_path(request, CampaignPath).campaign_id
    lead_name = parse_query(request, PreviewQuery).lead_name
    async with app_state(request).sessions() as session:
        campaign = await session.get(Campaign, campaign_id)
        if campaign is None:
            raise NotFoundError(f"campaign {campaign_id} not found")
        stored = dict(campaign.agent_script or {})
    script = script_or_neutral(stored, campaign_id=campaign_id)
    preview = ScriptPreview(
        campaign_id=campaign_id, script=script, spoken=preview_lines(script, lead_name)
    )
    return JSONResponse(preview.model_dump(mode="json"))


routes = [
    Route("/campaigns/{campaign_id:int}/script/preview", preview_script, methods=["GET"]),
]
