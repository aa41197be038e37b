"""Campaign agent scripts: validated on save, loaded for conversations, on SQLite and Postgres."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from voicebot.brain.script import AgentScript
from voicebot.db.models import Campaign
from voicebot.db.scripts import load_agent_script

OFFER = "אנחנו בונים לעסקים אתר הזמנות שמחובר ליומן, בלי דמי הקמה."


async def _campaign(client: httpx.AsyncClient, agent_script: dict[str, object]) -> httpx.Response:
    return await client.post(
        "/api/v1/campaigns", json={"name": "אביב", "agent_script": agent_script}
    )


async def test_invalid_agent_script_is_refused_with_fields(client: httpx.AsyncClient) -> None:
    """A question without '?', an unknown greeting placeholder and an unknown key are 422."""
    response = await _campaign(
        client,
        {
            "qualifying_questions": ["כמה עובדים יש"],
            "greeting": "שלום {customer}",
            "objections": {"price": ""},
            "mood": "cheerful",
        },
    )
    assert response.status_code == 422
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert fields == {
        "agent_script.qualifying_questions",
        "agent_script.greeting",
        "agent_script.objections.price",
        "agent_script.mood",
    }
    assert (await client.get("/api/v1/campaigns")).json()["items"] == []


async def test_partial_script_is_stored_and_spoken_in_conversations(
    client: httpx.AsyncClient,
) -> None:
    """Overrides on the default script are accepted and the conversation pitches that offer."""
    created = await _campaign(client, {"offer": OFFER, "qualifying_questions": []})
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    assert created.json()["agent_script"] == {"offer": OFFER, "qualifying_questions": []}
    response = await client.post(
        "/api/v1/conversation", json={"message": "כן, אפשר לדבר", "campaign_id": campaign_id}
    )
    assert response.status_code == 200
    assert OFFER in response.json()["reply"]
    default = await client.post("/api/v1/conversation", json={"message": "כן, אפשר לדבר"})
    assert OFFER not in default.json()["reply"]


async def test_unknown_campaign_is_404(client: httpx.AsyncClient) -> None:
    """A conversation naming a campaign that does not exist is refused."""
    response = await client.post(
        "/api/v1/conversation", json={"message": "שלום", "campaign_id": 4242}
    )
    assert response.status_code == 404


async def test_load_agent_script(client: httpx.AsyncClient, app: Starlette) -> None:
    """None for no campaign, the merged script for one, the default for a stale stored one."""
    created = await _campaign(client, {"agent_name": "מיכל", "objections": {"busy": "ברור."}})
    campaign_id = created.json()["id"]
    sessions = app.state.voicebot.sessions
    async with sessions() as session:
        assert await load_agent_script(session, 999) is None
        script = await load_agent_script(session, campaign_id)
        assert script is not None
        assert script.agent_name == "מיכל" and script.objections.busy == "ברור."
        assert script.objections.price == AgentScript.default().objections.price
        stale = Campaign(name="ישן", agent_script={"meeting_length_min": 1})
        session.add(stale)
        await session.commit()
        assert await load_agent_script(session, stale.id) == AgentScript.default()
