"""Campaign agent scripts: validated on save, loaded for conversations, on SQLite and Postgres."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from voicebot.brain.script import HUMAN_FOLLOWUP_PRICE, AgentScript
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
    """None for no campaign, the stored script as written (no built-in price borrowed), a
    script without product facts for a stale stored one."""
    created = await _campaign(client, {"agent_name": "מיכל", "objections": {"busy": "ברור."}})
    campaign_id = created.json()["id"]
    sessions = app.state.voicebot.sessions
    async with sessions() as session:
        assert await load_agent_script(session, 999) is None
        script = await load_agent_script(session, campaign_id)
        assert script is not None
        assert script.agent_name == "מיכל" and script.objections.busy == "ברור."
        assert script.objections.price is None and script.company is None
        stale = Campaign(name="ישן", agent_script={"meeting_length_min": 1})
        session.add(stale)
        await session.commit()
        assert await load_agent_script(session, stale.id) == AgentScript()
        empty = Campaign(name="ברירת מחדל", agent_script={})
        session.add(empty)
        await session.commit()
        assert await load_agent_script(session, empty.id) == AgentScript.default()


YOGA = {"agent_name": "מאיה", "company": "סטודיו שאנטי", "offer": "יש לנו שיעורי יוגה לצוותים."}


@pytest.mark.parametrize(
    "greeting", ["{agent.x}", "{hello:>1000000000000}", "{0}", "שלום {", "{__class__}", "{lead}"]
)
async def test_unsafe_greeting_template_is_422(client: httpx.AsyncClient, greeting: str) -> None:
    """Attribute access, format specs, positional fields, lone braces and unknown names are
    refused on save with a 422 naming the field, never a 500."""
    response = await _campaign(client, {"greeting": greeting})
    assert response.status_code == 422, response.text
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert fields == {"agent_script.greeting"}


async def test_company_placeholder_without_company_is_422(client: httpx.AsyncClient) -> None:
    """A greeting that says {company} in a script with no company is refused on save."""
    response = await _campaign(client, {"greeting": "{hello}, כאן {agent} מ{company}."})
    assert response.status_code == 422


async def test_yoga_script_price_question_gets_human_follow_up(client: httpx.AsyncClient) -> None:
    """A script with only name, company and offer answers a price question with a person
    following up, never the built-in product's price."""
    created = await _campaign(client, YOGA)
    assert created.status_code == 201, created.text
    reply = (
        await client.post(
            "/api/v1/conversation",
            json={"message": "כמה זה עולה?", "campaign_id": created.json()["id"]},
        )
    ).json()
    assert reply["intent"] == "price_question"
    assert HUMAN_FOLLOWUP_PRICE in reply["reply"]
    assert "מאה תשעים" not in reply["reply"] and "199" not in reply["reply"]


async def test_script_preview_speaks_the_campaigns_lines(client: httpx.AsyncClient) -> None:
    """The preview renders greeting, pitch, price and voicemail in spoken form from the
    campaign's own script; the built-in script's price is spelled out in words."""
    yoga = (await _campaign(client, YOGA)).json()["id"]
    preview = await client.get(
        f"/api/v1/campaigns/{yoga}/script/preview", params={"lead_name": "דנה"}
    )
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert body["script"]["version"] == 1 and body["script"]["company"] == "סטודיו שאנטי"
    spoken = body["spoken"]
    assert spoken["greeting"] == "היי דנה, כאן מאיה מסטודיו שאנטי. זה זמן טוב לדבר דקה?"
    assert "שיעורי יוגה לצוותים" in spoken["pitch"]
    assert spoken["price"] == HUMAN_FOLLOWUP_PRICE
    assert "סטודיו שאנטי" in spoken["voicemail"] and "ליד פלוס" not in spoken["voicemail"]

    builtin = (await _campaign(client, {})).json()["id"]
    spoken = (await client.get(f"/api/v1/campaigns/{builtin}/script/preview")).json()["spoken"]
    assert "מאה תשעים ותשעה שקלים" in spoken["price"]
    assert not any(ch.isdigit() for line in spoken.values() for ch in line)
    assert (await client.get("/api/v1/campaigns/4242/script/preview")).status_code == 404
