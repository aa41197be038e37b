"""The console's message catalogue and Israeli formats."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from voicebot.db.models import CallOutcome, CampaignStatus, LeadStatus
from voicebot.ui import messages
from voicebot.ui.pages_calls import LATENCY_STAGES
from voicebot.ui.pages_campaigns import ACTIONS, SPOKEN_LINES
from voicebot.ui.render import duration, il_date, il_datetime

UI = Path(messages.__file__).parent
MESSAGE_ID = re.compile(r"""\bt\(\s*["']([a-z_]+\.[a-z_.0-9]*)["']""")


def test_every_message_id_used_is_in_the_hebrew_catalogue() -> None:
    """A page never shows a raw message id: each literal id in the templates and pages,
    and each outcome, lead status and campaign status, has a Hebrew text."""
    used = set()
    for path in [*UI.glob("templates/*.html"), *UI.glob("*.py")]:
        used.update(MESSAGE_ID.findall(path.read_text(encoding="utf-8")))
    used = {i for i in used if not i.endswith(".")}  # prefixes of ids built in the template
    used.update(f"outcome.{o}" for o in ("", *(o.value for o in CallOutcome)))
    used.update(f"campaign.{action}" for action in ACTIONS)
    used.update(f"campaign.spoken.{line}" for line in SPOKEN_LINES)
    used.update(f"latency.{stage}" for stage in (*LATENCY_STAGES, "total"))
    used.update(f"day.{n}" for n in range(7))
    used.update(f"lead_status.{s.value}" for s in LeadStatus)
    used.update(f"status.{s.value}" for s in CampaignStatus)
    assert len(used) > 50
    assert sorted(used - set(messages.HE)) == []


def test_missing_translation_falls_back_to_hebrew_then_the_id() -> None:
    """A second language may be partial: missing ids read in Hebrew, unknown ids as themselves."""
    assert messages.translate("en", "nav.calls") == "Calls"
    assert messages.translate("en", "call.cut") == "נקטע"
    assert messages.translate("he", "no.such.id") == "no.such.id"
    assert messages.translate("he", "leads.total", total=3) == "3 לידים"


def test_israeli_dates_and_times_in_the_time_zone() -> None:
    """Dates are day.month.year and times 24-hour, in TIMEZONE (here the evening UTC is
    already the next day in Israel)."""
    tz = ZoneInfo("Asia/Jerusalem")
    assert il_datetime(datetime(2026, 11, 29, 22, 30, tzinfo=UTC), tz) == "30.11.2026 00:30"
    assert il_date(date(2026, 3, 5), tz) == "05.03.2026"
    assert il_date(None, tz) == "—"
    assert duration(187) == "3:07"
