"""The Hebrew meeting confirmation: the date and time written the Israeli way."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from voicebot.brain.script import AgentScript
from voicebot.notify.sms import israeli_date, israeli_time

TZ = ZoneInfo("Asia/Jerusalem")


def test_date_is_day_name_then_day_dot_month_dot_year() -> None:
    """Wednesday 11 March 2026 at 09:05 is 'יום רביעי, 11.3.2026' and '09:05'."""
    when = datetime(2026, 3, 11, 9, 5, tzinfo=TZ)
    assert (israeli_date(when), israeli_time(when)) == ("יום רביעי, 11.3.2026", "09:05")


def test_default_text_names_the_lead_and_the_company() -> None:
    """The built-in template greets the lead by name and signs with agent and company."""
    text = AgentScript.default().render_sms_confirmation(
        name="יעל", date="יום רביעי, 11.3.2026", time="10:00"
    )
    assert (
        text
        == "שלום יעל, נקבעה לנו פגישה ליום רביעי, 11.3.2026 בשעה 10:00. מחכים לשיחה! נועה, ליד פלוס"
    )


def test_without_a_name_there_is_no_gap() -> None:
    """No lead name: 'שלום,' with no stray space."""
    text = AgentScript.default().render_sms_confirmation(name=None, date="d", time="t")
    assert text.startswith("שלום, נקבעה")


def test_campaign_template_is_used() -> None:
    """A script's own sms_confirmation template is filled with the same fields."""
    script = AgentScript(sms_confirmation="{name}: {date} {time}")
    assert script.render_sms_confirmation(name="דנה", date="D", time="T") == "דנה: D T"
