"""The console's pages on SQLite and Postgres: what an operator sees and can change."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from starlette.applications import Starlette

from tests.conftest import make_settings
from tests.integration.ui.conftest import API_KEY, SECRET, csrf_of, seed_call, sign_in
from voicebot.app import create_app
from voicebot.db.models import Call, CampaignLead, DoNotCall, Lead, WebhookDelivery

CSV = "שם,טלפון,עיר\nיוסי לוי,052-555-0101,חיפה\nרותי כץ,0525550102,אילת\nבלי טלפון,,\n"


async def test_calls_list_filters_and_call_page(
    keyed_app: Starlette, operator: httpx.AsyncClient
) -> None:
    """The calls list filters by outcome, campaign, lead and date; the call page shows the
    RTL transcript with the cut sentence marked, the latency bars, outcome and summary."""
    seeded = await seed_call(keyed_app)
    listed = await operator.get("/ui/calls")
    assert f'href="/ui/calls/{seeded["call_id"]}"' in listed.text
    assert "דנה כהן" in listed.text
    assert "נקבעה פגישה" in listed.text
    none = await operator.get("/ui/calls?outcome=no_answer")
    assert f'href="/ui/calls/{seeded["call_id"]}"' not in none.text
    by_campaign = await operator.get(f"/ui/calls?campaign={seeded['campaign_id']}")
    assert f'href="/ui/calls/{seeded["call_id"]}"' in by_campaign.text
    other_day = await operator.get("/ui/calls?date=2020-01-01")
    assert f'href="/ui/calls/{seeded["call_id"]}"' not in other_day.text
    by_lead = await operator.get(f"/ui/calls?lead={seeded['lead_id'] + 1}")
    assert f'href="/ui/calls/{seeded["call_id"]}"' not in by_lead.text
    page = await operator.get(f"/ui/calls/{seeded['call_id']}")
    assert page.status_code == 200
    html = page.text
    assert '<html lang="he" dir="rtl">' in html
    assert "היי דנה, כאן נועה" in html
    assert 'class="turn agent cut"' in html and "נקטע" in html
    assert html.count('class="latency-bar"') == 1  # the greeting has no stages
    for stage, width in (("endpoint", "35.0"), ("stt", "9.0"), ("llm", "21.0"), ("tts", "8.5")):
        assert f'class="seg {stage}" style="width: {width}%"' in html
    assert "נקבעה פגישת היכרות ליום חמישי" in html
    assert "<audio" not in html  # no recording stored
    async with keyed_app.state.voicebot.sessions() as session:
        call = await session.get(Call, seeded["call_id"])
        assert call is not None
        call.recording_key = f"calls/{call.id}.wav"
        await session.commit()
    recorded = await operator.get(f"/ui/calls/{seeded['call_id']}")
    assert f'<audio controls preload="none" src="/ui/calls/{seeded["call_id"]}/recording">' in (
        recorded.text
    )
    assert (await operator.get("/ui/calls/999999")).status_code == 404


async def test_overview_and_live_fragment(
    keyed_app: Starlette, operator: httpx.AsyncClient
) -> None:
    """The overview shows today's outcomes, meetings, latency percentiles and health."""
    await seed_call(keyed_app)
    page = await operator.get("/ui/")
    assert page.status_code == 200
    assert "נקבעה פגישה" in page.text
    assert 'id="meetings-week"' in page.text
    assert "p95" in page.text and "זיהוי דיבור" in page.text
    assert "broker" in page.text
    live = await operator.get("/ui/live", headers={"HX-Request": "true"})
    assert 'id="live-count">0<' in live.text


async def test_meetings_week_calendar(keyed_app: Starlette, operator: httpx.AsyncClient) -> None:
    """The week starts on Sunday, shades business hours, marks Shabbat and holidays and
    links each meeting to its call."""
    seeded = await seed_call(keyed_app)
    tz = keyed_app.state.voicebot.settings.tz
    day = seeded["meeting_at"].astimezone(tz).date()
    page = await operator.get(f"/ui/meetings?week={day.isoformat()}")
    html = page.text
    assert f'href="/ui/calls/{seeded["call_id"]}"' in html
    assert html.index("ראשון") < html.index("שני") < html.index("שבת")
    assert "closed-name" in html and 'class="business"' in html
    yom_kippur = await operator.get("/ui/meetings?week=2026-09-21")
    assert "כיפור" in yom_kippur.text
    assert "21.09.2026" in yom_kippur.text


async def test_leads_search_history_and_dnc_toggle(
    keyed_app: Starlette, operator: httpx.AsyncClient
) -> None:
    """Leads are found by name and by phone digits; the lead page lists its calls; the
    do-not-call toggle lists and unlists the number."""
    seeded = await seed_call(keyed_app)
    assert "דנה כהן" in (await operator.get("/ui/leads?q=דנה")).text
    assert "דנה כהן" in (await operator.get("/ui/leads?q=052-555-0001")).text
    assert "דנה כהן" not in (await operator.get("/ui/leads?q=יוסי")).text
    page = await operator.get(f"/ui/leads/{seeded['lead_id']}")
    assert f'href="/ui/calls/{seeded["call_id"]}"' in page.text
    token = csrf_of(page.text)
    on = await operator.post(
        f"/ui/leads/{seeded['lead_id']}/dnc", data={"dnc": "on", "csrf_token": token}
    )
    assert on.status_code == 303
    sessions = keyed_app.state.voicebot.sessions
    async with sessions() as session:
        lead = await session.get(Lead, seeded["lead_id"])
        assert lead is not None and lead.status == "do_not_call"
        assert await session.scalar(select(DoNotCall.id).where(DoNotCall.phone == lead.phone))
    assert "ברשימת אל-תתקשרו" in (await operator.get(f"/ui/leads/{seeded['lead_id']}")).text
    await operator.post(
        f"/ui/leads/{seeded['lead_id']}/dnc", data={"dnc": "off", "csrf_token": token}
    )
    async with sessions() as session:
        lead = await session.get(Lead, seeded["lead_id"])
        assert lead is not None and lead.status == "new"
        assert not await session.scalar(select(DoNotCall.id).where(DoNotCall.phone == lead.phone))


async def test_campaign_create_edit_preview_csv_and_actions(
    keyed_app: Starlette, operator: httpx.AsyncClient
) -> None:
    """A campaign made from the form, its script previewed as spoken, a CSV previewed with
    its column mapping and imported with a per-row report; a bad form is answered with
    the fields to fix; start without Twilio names what is missing."""
    form = await operator.get("/ui/campaigns/new")
    token = csrf_of(form.text)
    body = {
        "csrf_token": token,
        "name": "מבצע אביב",
        "script_company": "ליד פלוס",
        "script_offer": "מערכת שעונה ללקוחות בטלפון",
        "window_start": "09:00",
        "window_end": "18:00",
        "days_present": "1",
        "day_sun": "1",
        "day_mon": "1",
        "calendar": "IL",
        "timezone": "Asia/Jerusalem",
        "max_concurrent_calls": "3",
        "calls_per_second": "0.5",
        "max_attempts": "2",
        "consent_present": "1",
    }
    bad = await operator.post("/ui/campaigns/new", data={**body, "window_end": "25:00"})
    assert bad.status_code == 422
    assert "window_end" in bad.text
    made = await operator.post("/ui/campaigns/new", data=body)
    assert made.status_code == 303
    url = made.headers["location"]
    campaign_id = int(url.rsplit("/", 1)[1])
    page = await operator.get(url)
    assert "מבצע אביב" in page.text and 'id="progress-box"' in page.text
    preview = await operator.get(f"{url}/preview")
    assert "ליד פלוס" in preview.text
    files = {"file": ("leads.csv", CSV.encode("utf-8"), "text/csv")}
    mapping = await operator.post(f"{url}/csv/preview", data={"csrf_token": token}, files=files)
    assert mapping.status_code == 200
    assert 'name="map:טלפון"' in mapping.text and "יוסי לוי" in mapping.text
    imported = await operator.post(
        f"{url}/csv/import",
        data={"csrf_token": token, "map:עיר": "notes"},
        files={"file": ("leads.csv", CSV.encode("utf-8"), "text/csv")},
    )
    assert imported.status_code == 200, imported.text
    assert 'id="added-count">2<' in imported.text
    assert 'נכשלו: <strong class="num">1<' in imported.text
    async with keyed_app.state.voicebot.sessions() as session:
        members = (
            await session.scalars(
                select(CampaignLead).where(CampaignLead.campaign_id == campaign_id)
            )
        ).all()
        assert len(members) == 2
        notes = (await session.scalars(select(Lead.notes).order_by(Lead.id))).all()
        assert "חיפה" in notes
    edited = await operator.post(url, data={**body, "name": "מבצע אביב 2"})
    assert edited.status_code == 303
    assert "מבצע אביב 2" in (await operator.get("/ui/campaigns")).text
    started = await operator.post(f"{url}/start", data={"csrf_token": token})
    assert started.status_code == 409
    assert "TWILIO_ACCOUNT_SID" in started.text
    cancelled = await operator.post(f"{url}/cancel", data={"csrf_token": token})
    assert cancelled.status_code == 303
    assert "בוטל" in (await operator.get(url)).text
    ended = await operator.post(url, data={**body, "name": "אחרי ביטול"})
    assert ended.status_code == 409  # the API's edit rules: an ended campaign is not edited
    assert "אחרי ביטול" not in (await operator.get("/ui/campaigns")).text
    progress = await operator.get("/ui/campaigns/progress")
    assert 'aria-valuemax="2"' in progress.text


async def test_recording_served_through_the_api_handler(
    keyed_app: Starlette, operator: httpx.AsyncClient
) -> None:
    """The console's recording URL answers with the API's recording route (404 while the API
    has none), behind the session instead of the API key."""
    seeded = await seed_call(keyed_app)
    response = await operator.get(f"/ui/calls/{seeded['call_id']}/recording")
    api = await operator.get(
        f"/api/v1/calls/{seeded['call_id']}/recording",
        headers={"Authorization": "Bearer " + API_KEY},
    )
    assert response.status_code == (404 if api.status_code == 404 else api.status_code)


async def test_dnc_toggle_reports_lead_opted_out(database_url: str) -> None:
    """The console is a door onto the do-not-call list like the API and a call: the
    ``lead.opted_out`` webhook event is recorded with it (it was not: the console's toggle
    passed no settings, so the CRM never heard of the opt-out)."""
    settings = make_settings(
        database_url=database_url,
        api_key=API_KEY,
        secret_key=SECRET,
        webhook_url="http://127.0.0.1:9/crm-hooks",
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        seeded = await seed_call(application)
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            signed = await sign_in(http)
            assert signed.status_code == 303, signed.text
            page = await http.get(f"/ui/leads/{seeded['lead_id']}")
            on = await http.post(
                f"/ui/leads/{seeded['lead_id']}/dnc",
                data={"dnc": "on", "csrf_token": csrf_of(page.text)},
            )
            assert on.status_code == 303, on.text
        async with application.state.voicebot.sessions() as session:
            events = (
                await session.scalars(
                    select(WebhookDelivery).where(WebhookDelivery.event_type == "lead.opted_out")
                )
            ).all()
    assert len(events) == 1
    assert events[0].payload["data"]["source"] == "console"
