"""The console in a real Chromium: sign in, create a campaign with a script, upload a CSV,
start it against the Twilio simulator, watch the progress bar and the live-calls count
move without a reload, open a call's transcript with its latency bars, and find the
booked meeting on the week calendar. Screenshots go to ``VOICEBOT_SCREENSHOTS``
(default ``screenshots/console``).

The Twilio simulator answers each call and fetches its TwiML (the app stores the greeting
turn) but does not speak, so the rest of one call's conversation (caller and agent turns,
one cut, outcome, summary and meeting) is stored the way the call pipeline stores it
before the call page is opened.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.conftest import service_unavailable
from tests.integration.jobs.conftest import FROM_NUMBER, engine_factory  # noqa: F401 - fixture
from tests.integration.ui.conftest import API_KEY, SECRET
from voicebot.db.models import Call, CallTurn, Lead, Meeting
from voicebot.db.types import utcnow
from voicebot.testing.twilio_call_flow import CallBehaviour

CHROMIUM = os.environ.get("VOICEBOT_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("VOICEBOT_SCREENSHOTS", "screenshots/console"))
CSV = (
    "שם מלא,טלפון נייד,חברה\n"
    "דנה כהן,052-555-1001,כהן ובניו\n"
    "יוסי לוי,052-555-1002,לוי שיווק\n"
    "רותי כץ,052-555-1003,\n"
    "משה פרץ,052-555-1004,פרץ הובלות\n"
    "אין מספר,,\n"
)
LATENCY = {"endpoint": 700, "stt": 210, "llm_first_token": 380, "tts_first_byte": 160,
           "first_frame": 20, "total": 1470}  # fmt: skip
WAIT_MS = 30_000
NONZERO = re.compile(r"^\s*[1-9][0-9]*\s*$")

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Chromium from the system package (no browser download); fails under
    VOICEBOT_REQUIRE_SERVICES=1 when it or Playwright is missing."""
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:
        service_unavailable("playwright", exc)
    if shutil.which(CHROMIUM) is None:
        service_unavailable("chromium", FileNotFoundError(CHROMIUM))
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield launched
        finally:
            await launched.close()


async def _store_conversation(engine: Any) -> tuple[int, Any]:
    """Turns (one cut), outcome, summary and a meeting for one answered call."""
    tz = engine.settings.tz
    async with engine.sessions() as session:
        call = (
            await session.scalars(
                select(Call).where(Call.answered_at.is_not(None)).order_by(Call.id)
            )
        ).first()
        assert call is not None, "no call was answered"
        lead = await session.get(Lead, call.lead_id)
        assert lead is not None
        # The greeting the app itself stored when the call was answered comes first.
        last = await session.scalar(
            select(func.max(CallTurn.seq)).where(CallTurn.call_id == call.id)
        )
        seq = int(last or 0)
        session.add_all(
            [
                CallTurn(call_id=call.id, seq=seq + 1, role="user", text="כן, אפשר לדבר עכשיו"),
                CallTurn(call_id=call.id, seq=seq + 2, role="assistant",
                         text="מעולה, בקצרה: יש לנו מערכת שעונה", interrupted=True,
                         latency=LATENCY),
                CallTurn(call_id=call.id, seq=seq + 3, role="user", text="רגע, כמה זה עולה?"),
                CallTurn(call_id=call.id, seq=seq + 4, role="assistant",
                         text="יש מקום מחר בעשר בבוקר. מתאים?", latency=LATENCY),
            ]
        )  # fmt: skip
        local_now = utcnow().astimezone(tz)
        start = local_now.replace(hour=10, minute=0, second=0, microsecond=0) + timedelta(days=1)
        session.add(
            Meeting(
                lead_id=lead.id,
                call_id=call.id,
                start_at=start,
                end_at=start + timedelta(minutes=30),
                duration_min=30,
            )
        )
        call.outcome = "meeting_booked"
        call.summary = "נקבעה שיחת היכרות למחר בעשר"
        await session.commit()
        return call.id, start.date()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_console_flow_in_chromium(
    engine_factory: Any,  # noqa: F811 - the imported fixture
    browser: Any,
    database_url: str,
) -> None:
    """An operator runs a campaign from the console end to end, in Hebrew, right to left."""
    from playwright.async_api import expect

    SHOTS.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before the servers
    behaviour = CallBehaviour(outcomes={"human": 1}, ring_s=0.3, talk_s=4.0, seed=5)
    async with engine_factory(behaviour, api_key=API_KEY, secret_key=SECRET) as engine:
        base = str(engine.client.base_url).rstrip("/")
        context = await browser.new_context(locale="he-IL", viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        page.set_default_timeout(WAIT_MS)

        # Sign in: the console sends a visitor without a session to the sign-in page.
        await page.goto(f"{base}/ui/campaigns/new")
        assert "/ui/sign-in" in page.url
        await page.fill("input[name=api_key]", API_KEY)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{base}/ui/campaigns/new")

        # Create a campaign with a script, a window open all week and slow pacing.
        await page.fill("input[name=name]", "מבצע חורף")
        await page.fill("input[name=script_company]", "ליד פלוס")
        await page.fill("textarea[name=script_offer]", "מערכת שעונה ללקוחות בטלפון ובוואטסאפ")
        await page.fill("input[name=window_start]", "00:00")
        await page.fill("input[name=window_end]", "23:59")
        for day in ("sun", "mon", "tue", "wed", "thu", "fri", "sat"):
            await page.check(f"input[name=day_{day}]")
        await page.select_option("select[name=calendar]", "none")
        await page.fill("input[name=max_concurrent_calls]", "2")
        await page.fill("input[name=calls_per_second]", "1")
        await page.fill("input[name=max_attempts]", "1")
        await page.uncheck("input[name=consent_required]")
        await page.screenshot(path=str(SHOTS / "01-new-campaign.png"), full_page=True)
        await page.click("#create-campaign")
        await page.wait_for_url("**/ui/campaigns/*")
        campaign_url = page.url
        await page.wait_for_selector("#spoken-greeting")
        assert "ליד פלוס" in await page.inner_text("#preview")

        # Upload the CSV: the column mapping, then the per-row report.
        await page.set_input_files(
            "#csv-file",
            files=[{"name": "לידים.csv", "mimeType": "text/csv", "buffer": CSV.encode()}],
        )
        await page.click("#csv-preview-button")
        await page.wait_for_selector("select[name='map:טלפון נייד']")
        await page.click("#csv-import-button")
        await page.wait_for_selector("#added-count")
        assert await page.inner_text("#added-count") == "4"
        await page.screenshot(path=str(SHOTS / "02-csv-report.png"), full_page=True)

        # The overview in a second tab, left alone: its live count must move by itself.
        overview = await context.new_page()
        overview.set_default_timeout(WAIT_MS)
        await overview.goto(f"{base}/ui/")
        await overview.wait_for_selector("#live-count")
        await overview.evaluate("window.__notReloaded = true")
        await page.goto(campaign_url)
        await page.evaluate("window.__notReloaded = true")

        # Start: the form posts and comes back to the campaign page; from here no reloads.
        await page.click("#action-start")
        await page.wait_for_url(campaign_url)
        await page.evaluate("window.__notReloaded = true")
        # expect() polls from Playwright's side: a wait_for_function predicate is evaluated
        # inside the page, which the console's CSP (script-src 'self', no eval) refuses.
        await expect(overview.locator("#live-count")).to_have_text(NONZERO, timeout=WAIT_MS)
        await overview.screenshot(path=str(SHOTS / "03-overview-live.png"), full_page=True)
        await expect(page.locator(".progress")).to_have_attribute(
            "data-final", NONZERO, timeout=WAIT_MS
        )
        await expect(page.locator(".progress")).to_have_attribute(
            "data-final", "4", timeout=WAIT_MS
        )
        await expect(overview.locator("#live-count")).to_have_text("0", timeout=WAIT_MS)
        assert await page.evaluate("window.__notReloaded === true")
        assert await overview.evaluate("window.__notReloaded === true")
        await page.screenshot(path=str(SHOTS / "04-campaign-done.png"), full_page=True)
        assert len(engine.sim.calls) == 4
        assert all(c.from_ == FROM_NUMBER for c in engine.sim.calls.values())

        # One call's conversation as the pipeline stores it; the call page shows it.
        call_id, meeting_day = await _store_conversation(engine)
        await page.goto(f"{base}/ui/calls")
        await page.click(f"a[href='/ui/calls/{call_id}']")
        await page.wait_for_selector(".transcript")
        assert await page.locator(".turn.cut").count() == 1
        assert await page.locator(".latency-bar .seg.llm").count() >= 2
        assert "כן, אפשר לדבר עכשיו" in await page.inner_text(".transcript")
        direction = await page.evaluate("getComputedStyle(document.body).direction")
        assert direction == "rtl"
        await page.screenshot(path=str(SHOTS / "05-call.png"), full_page=True)

        # The week calendar holds the meeting, linked to its call.
        await page.goto(f"{base}/ui/meetings?week={meeting_day.isoformat()}")
        meeting = page.locator(f"a.meeting[href='/ui/calls/{call_id}']")
        await meeting.wait_for()
        await page.screenshot(path=str(SHOTS / "06-meetings-week.png"), full_page=True)
        await meeting.click()
        await page.wait_for_url(f"{base}/ui/calls/{call_id}")
        await context.close()
