"""The console in a real Chromium: sign in, create a recorded campaign with a script,
upload a CSV, start it against the Twilio simulator, watch the progress bar and the
live-calls count move without a reload, open a call's transcript with its latency bars
and recording, and find the booked meeting on the week calendar. Screenshots go to
``VOICEBOT_SCREENSHOTS`` (default ``screenshots/console``).

Every call is real past the dial: the Twilio simulator answers, fetches the TwiML and
opens its ``<Connect><Stream>`` Media Stream on the app's websocket (signed handshake,
20 ms μ-law frames in real time). On the first call answered, the demo's scripted caller
speaks espeak-ng Hebrew (recognised by the provider simulator as STT) until the rule
brain books a meeting and hangs up; the other callees hang up after the greeting. What
the browser shows (turns, latencies, outcome, meeting, recording) is what the call
pipeline stored.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import REQUIRE_SERVICES, service_unavailable
from tests.integration.jobs.conftest import FROM_NUMBER, engine_factory  # noqa: F401 - fixture
from tests.integration.ui.conftest import API_KEY, SECRET
from voicebot.db.models import Call, CallTurn, Meeting
from voicebot.demo_caller import CALLER_PHRASES, talk_on
from voicebot.testing.hebrew_audio import synthesize_hebrew
from voicebot.testing.provider_sim import ProviderSim, SimConfig
from voicebot.testing.twilio_call_flow import CallBehaviour, CallEvents
from voicebot.testing.twilio_caller import SimulatedCall

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
AUDIO_CACHE = Path(".cache/hebrew_audio")
WAIT_MS = 30_000
CALLS_DONE_MS = 180_000  # four real calls, one a whole conversation, on a loaded machine
GREETING_TIMEOUT_S = 60.0
RECORDING_POLLS = 40
RECORDING_POLL_MS = 250
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


class Callees:
    """The people the campaign calls: the first to pick up talks until a meeting is
    booked (the demo's script); the others hang up once the greeting has played."""

    def __init__(self, engine_sessions: Any, speech: dict[str, bytes]) -> None:
        self.sessions = engine_sessions
        self.speech = speech
        self.talker: str | None = None
        self.lines: list[str] = []
        self.errors: list[Exception] = []

    async def __call__(self, call: CallEvents, stream: SimulatedCall) -> None:
        try:
            if self.talker is None:
                self.talker = call.sid
                await talk_on(stream, self.sessions, self.speech, self.lines.append)
            else:
                await stream.wait_until(
                    lambda: (
                        stream.ended or (bool(stream.metrics.marks) and not stream.playback.busy)
                    ),
                    GREETING_TIMEOUT_S,
                )
        except Exception as exc:  # seen by the test, not lost in the flow's task
            self.errors.append(exc)
            raise


@pytest.fixture
def _need_espeak() -> None:
    if shutil.which("espeak-ng") is None:
        if REQUIRE_SERVICES:
            pytest.fail("espeak-ng is not installed")
        pytest.skip("espeak-ng is not installed")


@pytest.fixture
async def stt(_need_espeak: None) -> AsyncIterator[tuple[ProviderSim, dict[str, bytes]]]:
    """The provider simulator as STT, knowing the scripted caller's phrases."""
    speech = {
        text: synthesize_hebrew(text, cache_dir=AUDIO_CACHE)
        for text in dict.fromkeys(CALLER_PHRASES)
    }
    async with ProviderSim(SimConfig(seed=1)) as sim:
        for text, pcm16 in speech.items():
            sim.register_phrase(text, pcm16)
        yield sim, speech


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_console_flow_in_chromium(
    engine_factory: Any,  # noqa: F811 - the imported fixture
    browser: Any,
    database_url: str,
    stt: tuple[ProviderSim, dict[str, bytes]],
    tmp_path: Path,
) -> None:
    """An operator runs a campaign from the console end to end, in Hebrew, right to left,
    and reads back a real call: its transcript, latency bars, recording and meeting."""
    from playwright.async_api import expect

    SHOTS.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before the servers
    sim, speech = stt
    behaviour = CallBehaviour(outcomes={"human": 1}, ring_s=0.3, seed=5)
    settings = {
        "api_key": API_KEY,
        "secret_key": SECRET,
        "stt_base_url": sim.base_url,
        "stt_api_key": "sim-key",
        "conversation_mode": "stream",
        "recording_dir": str(tmp_path / "recordings"),
        "tts_cache_dir": str(tmp_path / "tts"),
    }
    async with engine_factory(behaviour, **settings) as engine:
        callees = Callees(engine.sessions, speech)
        behaviour.callee = callees
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
        await page.check("input[name=record]")
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
            "data-final", "4", timeout=CALLS_DONE_MS
        )
        await expect(overview.locator("#live-count")).to_have_text("0", timeout=WAIT_MS)
        assert await page.evaluate("window.__notReloaded === true")
        assert await overview.evaluate("window.__notReloaded === true")
        await page.screenshot(path=str(SHOTS / "04-campaign-done.png"), full_page=True)
        assert not callees.errors, callees.errors
        assert len(engine.sim.calls) == 4
        assert all(c.from_ == FROM_NUMBER for c in engine.sim.calls.values())
        assert callees.talker is not None

        # The conversation the pipeline stored, as the call page shows it.
        call_id, meeting_day, caller_said = await _stored_call(engine, callees.talker)
        await page.goto(f"{base}/ui/calls")
        await page.click(f"a[href='/ui/calls/{call_id}']")
        await page.wait_for_selector(".transcript")
        transcript = await page.inner_text(".transcript")
        assert all(words in transcript for words in caller_said), (caller_said, transcript)
        assert await page.locator(".latency-bar .seg.llm").count() >= len(caller_said)
        direction = await page.evaluate("getComputedStyle(document.body).direction")
        assert direction == "rtl"
        # The recording is stored just after the call ends: the page shows the player then.
        player = await _recording_player(page, f"{base}/ui/calls/{call_id}")
        recording = await page.request.get(f"{base}{player}")
        assert recording.status == 200
        assert recording.headers["content-type"] == "audio/wav"
        assert (await recording.body())[:4] == b"RIFF"
        await page.screenshot(path=str(SHOTS / "05-call.png"), full_page=True)

        # The week calendar holds the meeting, linked to its call.
        await page.goto(f"{base}/ui/meetings?week={meeting_day.isoformat()}")
        meeting = page.locator(f"a.meeting[href='/ui/calls/{call_id}']")
        await meeting.wait_for()
        await page.screenshot(path=str(SHOTS / "06-meetings-week.png"), full_page=True)
        await meeting.click()
        await page.wait_for_url(f"{base}/ui/calls/{call_id}")
        await context.close()


async def _stored_call(engine: Any, call_sid: str) -> tuple[int, Any, list[str]]:
    """The talked call's id, its meeting's local day, and what the caller was heard to say
    (its stored user turns), read from the database the pipeline wrote."""
    async with engine.sessions() as session:
        call = (await session.scalars(select(Call).where(Call.call_sid == call_sid))).one()
        said = (
            await session.scalars(
                select(CallTurn.text)
                .where(CallTurn.call_id == call.id, CallTurn.role == "user")
                .order_by(CallTurn.seq)
            )
        ).all()
        meeting = (await session.scalars(select(Meeting).where(Meeting.call_id == call.id))).one()
    assert call.outcome == "meeting_booked", call.outcome
    assert said, "no caller turn was stored"
    return call.id, meeting.start_at.astimezone(engine.settings.tz).date(), list(said)


async def _recording_player(page: Any, url: str) -> str:
    """The call page's audio player source, reloading until the recording is saved
    (it is written after the call ends, in the background)."""
    player = page.locator("audio")
    for _ in range(RECORDING_POLLS):
        if await player.count():
            return str(await player.first.get_attribute("src"))
        await page.wait_for_timeout(RECORDING_POLL_MS)
        await page.goto(url)
    raise AssertionError("the call page never showed a recording player")
