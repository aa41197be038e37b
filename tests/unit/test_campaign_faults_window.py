"""The fault suite's dials_outside_window count checks each dial against the callee's
own calling window (it counted nothing while every lead shared one always-open window)."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "campaign_faults.py"


def _faults() -> ModuleType:
    spec = importlib.util.spec_from_file_location("campaign_faults", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("campaign_faults", module)
    spec.loader.exec_module(module)
    return module


def test_a_paris_lead_dialed_before_its_own_opening_is_counted() -> None:
    """With the suite's window, an Israeli lead dialed now is inside; a Paris lead dialed
    now is outside (its window opens at the next minute, Paris being behind); the same
    Paris lead dialed three minutes later is inside."""
    faults = _faults()
    now = datetime(2026, 11, 29, 13, 0, 10, tzinfo=UTC)
    plan = faults.window_plan(now)
    fields = plan.fields
    assert plan.phone(0, 5) == "+972525550000" and plan.phone(4, 5) == "+33145550004"
    israeli = {"t": now.timestamp(), "to": "+972525550000"}
    paris_early = {"t": now.timestamp(), "to": "+33145550004"}
    paris_later = {"t": (now + timedelta(minutes=3)).timestamp(), "to": "+33145550004"}
    assert faults.dials_outside_window([israeli], fields) == 0
    assert faults.dials_outside_window([paris_early], fields) == 1
    assert faults.dials_outside_window([paris_later, israeli], fields) == 0


def test_the_window_fits_whatever_the_hour_the_suite_starts() -> None:
    """At every 5 minutes of a winter and a summer day (UTC), the plan's window is valid for
    the API, open now for the main leads and for the next hour, and not yet open for the
    late leads, on their own clocks. CI once started at 21:59 UTC (23:59 in Jerusalem) and
    the campaign was refused with a 422 (a window that crossed midnight)."""
    from voicebot.scheduling import CallingWindow, lead_timezones

    faults = _faults()
    for day in (datetime(2026, 11, 29, tzinfo=UTC), datetime(2027, 7, 4, tzinfo=UTC)):
        for minute in range(0, 24 * 60, 5):
            now = day + timedelta(minutes=minute, seconds=59)
            plan = faults.window_plan(now)
            window = CallingWindow.from_fields(**plan.fields)
            main, late = plan.phone(0, 5), plan.phone(4, 5)
            (main_zone,) = lead_timezones(main, None, "Asia/Jerusalem")
            (late_zone,) = lead_timezones(late, None, "Asia/Jerusalem")
            assert window.is_open(now, main_zone), (now, plan)
            assert window.is_open(now + timedelta(hours=1), main_zone), (now, plan)
            assert not window.is_open(now, late_zone), (now, plan)
            assert window.is_open(now + timedelta(minutes=2, seconds=5), late_zone), (now, plan)


def test_windows_over_cps_strict_and_with_transport_jitter() -> None:
    """At 4/s: a full-rate burst whose first dial reached the simulator 80 ms late is one
    window over in the strict count and none with 150 ms of allowed jitter; two workers
    each pacing 4/s alone (8/s) are over in both counts."""
    faults = _faults()
    paced = [0.08, 0.25, 0.5, 0.75, 1.0, 1.25]
    assert faults.windows_over_cps(paced, 4) == 1
    assert faults.windows_over_cps(paced, 4, 0.85) == 0
    doubled = [i / 8 for i in range(16)]
    assert faults.windows_over_cps(doubled, 4, 0.85) >= 8
    assert faults.windows_over_cps([i / 4 for i in range(16)], 4) == 0
