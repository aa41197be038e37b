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
    fields = faults.window_fields(now)
    israeli = {"t": now.timestamp(), "to": "+972525550000"}
    paris_early = {"t": now.timestamp(), "to": "+33145550004"}
    paris_later = {"t": (now + timedelta(minutes=3)).timestamp(), "to": "+33145550004"}
    assert faults.dials_outside_window([israeli], fields) == 0
    assert faults.dials_outside_window([paris_early], fields) == 1
    assert faults.dials_outside_window([paris_later, israeli], fields) == 0
