"""The console in real browsers, Chromium and Firefox ESR (:mod:`.browsers`): sign in,
create a recorded campaign with a script, upload a CSV, start it against the Twilio
simulator, watch the progress bar and the live-calls count move without a reload, open a
call's transcript with its latency bars and recording, and find the booked meeting on the
week calendar. Screenshots go to
``VOICEBOT_SCREENSHOTS``/<browser> (default ``screenshots/console/chromium`` and
``…/firefox``).

Every call is real past the dial: the Twilio simulator answers, fetches the TwiML and
opens its ``<Connect><Stream>`` Media Stream on the app's websocket (signed handshake,
20 ms μ-law frames in real time). On the first call answered, the demo's scripted caller
speaks espeak-ng Hebrew (recognised by the provider simulator as STT) until the rule
brain books a meeting and hangs up; the other callees hang up after the greeting. What
the browser shows (turns, latencies, outcome, meeting, recording) is what the call
pipeline stored.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import REQUIRE_SERVICES
from tests.integration.jobs.conftest import FROM_NUMBER, engine_factory  # noqa: F401 - fixture
from tests.integration.ui.browsers import Page, open_browser, until, wait_for, wait_url
from tests.integration.ui.conftest import API_KEY, SECRET
from voicebot.db.models import Call, CallTurn, Meeting
from voicebot.demo_caller import CALLER_PHRASES, talk_on
from voicebot.testing.hebrew_audio import synthesize_hebrew
from voicebot.testing.provider_sim import ProviderSim, SimConfig
from voicebot.testing.twilio_call_flow import CallBehaviour, CallEvents
from voicebot.testing.twilio_caller import SimulatedCall

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
WAIT_S = 30.0
CALLS_DONE_S = 180.0  # four real calls, one a whole conversation, on a loaded machine
GREETING_TIMEOUT_S = 60.0
RECORDING_POLLS = 40
RECORDING_POLL_S = 0.25
NONZERO = re.compile(r"^\s*[1-9][0-9]*\s*$")

pytestmark = [pytest.mark.slow, pytest.mark.integration]


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


@pytest.mark.parametrize("browser_name", ["chromium", "firefox"])
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_console_flow_in_browser(
    engine_factory: Any,  # noqa: F811 - the imported fixture
    browser_name: str,
    database_url: str,
    stt: tuple[ProviderSim, dict[str, bytes]],
    tmp_path: Path,
) -> None:
    """An operator runs a campaign from the console end to end, in Hebrew, right to left,
    and reads back a real call: its transcript, latency bars, recording and meeting."""
    shots = SHOTS / browser_name
    shots.mkdir(parents=True, exist_ok=True)
    csv_file = tmp_path / "לידים.csv"
    csv_file.write_text(CSV, encoding="utf-8")
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
    async with (
        open_browser(browser_name) as browser,
        engine_factory(behaviour, **settings) as engine,
    ):
        callees = Callees(engine.sessions, speech)
        behaviour.callee = callees
        base = str(engine.client.base_url).rstrip("/")
        page = await browser.new_page()

        # Sign in: the console sends a visitor without a session to the sign-in page.
        await page.goto(f"{base}/ui/campaigns/new")
        assert "/ui/sign-in" in await page.current_url()
        await page.fill("input[name=api_key]", API_KEY)
        await page.click("button[type=submit]")
        await wait_url(page, re.escape(f"{base}/ui/campaigns/new"), WAIT_S)

        # Create a recorded campaign with a script, a window open all week, slow pacing.
        await page.fill("input[name=name]", "מבצע חורף")
        await page.fill("input[name=script_company]", "ליד פלוס")
        await page.fill("textarea[name=script_offer]", "מערכת שעונה ללקוחות בטלפון ובוואטסאפ")
        await page.fill("input[name=window_start]", "00:00")
        await page.fill("input[name=window_end]", "24:00")
        for day in ("sun", "mon", "tue", "wed", "thu", "fri", "sat"):
            await page.check(f"input[name=day_{day}]")
        await page.select("select[name=calendar]", "none")
        await page.fill("input[name=max_concurrent_calls]", "2")
        await page.fill("input[name=calls_per_second]", "1")
        await page.fill("input[name=max_attempts]", "1")
        await page.check("input[name=consent_required]", on=False)
        await page.check("input[name=record]")
        await page.screenshot(shots / "01-new-campaign.png")
        await page.click("#create-campaign")
        campaign_url = await wait_url(page, re.escape(base) + r"/ui/campaigns/[0-9]+", WAIT_S)
        await wait_for(page, "#spoken-greeting", WAIT_S)
        assert "ליד פלוס" in (await page.text("#preview") or "")

        # Upload the CSV: the column mapping, then the per-row report.
        await page.upload("#csv-file", csv_file)
        await page.click("#csv-preview-button")
        await wait_for(page, "select[name='map:טלפון נייד']", WAIT_S)
        await page.click("#csv-import-button")
        await wait_for(page, "#added-count", WAIT_S)
        assert await page.text("#added-count") == "4"
        await page.screenshot(shots / "02-csv-report.png")

        # The overview in a second window, left alone: its live count must move by itself.
        overview = await browser.new_page()
        await overview.goto(f"{base}/ui/")
        await wait_for(overview, "#live-count", WAIT_S)
        await overview.script("window.__notReloaded = true")
        await page.goto(campaign_url)

        # Start: the form posts and comes back to the campaign page; from here no reloads.
        await page.script("window.__beforeStart = true")
        await page.click("#action-start")
        await until(lambda: page.script("window.__beforeStart === true"), _not, WAIT_S)
        await wait_url(page, re.escape(campaign_url), WAIT_S)
        await wait_for(page, ".progress", WAIT_S)
        await page.script("window.__notReloaded = true")
        await until(lambda: overview.text("#live-count"), _nonzero, WAIT_S)
        await overview.screenshot(shots / "03-overview-live.png")
        final = lambda: page.attribute(".progress", "data-final")  # noqa: E731
        await until(final, _nonzero, WAIT_S)
        await until(final, lambda v: v == "4", CALLS_DONE_S)
        await until(lambda: overview.text("#live-count"), lambda v: v == "0", WAIT_S)
        assert await page.script("window.__notReloaded === true")
        assert await overview.script("window.__notReloaded === true")
        await page.screenshot(shots / "04-campaign-done.png")
        assert not callees.errors, callees.errors
        assert len(engine.sim.calls) == 4
        assert all(c.from_ == FROM_NUMBER for c in engine.sim.calls.values())
        assert callees.talker is not None

        # The conversation the pipeline stored, as the call page shows it.
        call_id, meeting_day, caller_said = await _stored_call(engine, callees.talker)
        call_url = f"{base}/ui/calls/{call_id}"
        await page.goto(f"{base}/ui/calls")
        await page.click(f"a[href='/ui/calls/{call_id}']")
        await wait_url(page, re.escape(call_url), WAIT_S)
        await wait_for(page, ".transcript", WAIT_S)
        transcript = await page.text(".transcript") or ""
        assert all(words in transcript for words in caller_said), (caller_said, transcript)
        assert await page.count(".latency-bar .seg.llm") >= len(caller_said)
        assert await page.script("getComputedStyle(document.body).direction") == "rtl"
        # The recording is saved just after the call ends: the page shows the player then.
        player = await _recording_player(page, call_url)
        async with httpx.AsyncClient(cookies=await page.cookies()) as http:
            recording = await http.get(httpx.URL(base).join(player))
        assert recording.status_code == 200
        assert recording.headers["content-type"] == "audio/wav"
        assert recording.content[:4] == b"RIFF"
        await page.screenshot(shots / "05-call.png")

        # The week calendar holds the meeting, linked to its call.
        await page.goto(f"{base}/ui/meetings?week={meeting_day.isoformat()}")
        meeting = f"a.meeting[href='/ui/calls/{call_id}']"
        await wait_for(page, meeting, WAIT_S)
        await page.screenshot(shots / "06-meetings-week.png")
        await page.click(meeting)
        await wait_url(page, re.escape(call_url), WAIT_S)


def _not(value: Any) -> bool:
    return not value


def _nonzero(value: str | None) -> bool:
    return value is not None and bool(NONZERO.match(value))


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


async def _recording_player(page: Page, url: str) -> str:
    """The call page's audio player source, reloading until the recording is saved
    (it is written after the call ends, in the background)."""
    for _ in range(RECORDING_POLLS):
        src = await page.attribute("audio", "src")
        if src:
            return src
        await asyncio.sleep(RECORDING_POLL_S)
        await page.goto(url)
    raise AssertionError("the call page never showed a recording player")
