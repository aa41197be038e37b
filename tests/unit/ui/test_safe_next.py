"""Where sign-in may send the operator back to: only a plain path inside the console."""

from __future__ import annotations

import pytest

from voicebot.ui.app import _safe_next


@pytest.mark.parametrize(
    "target",
    ["//evil.com", "/\\evil.com", "https:evil", "https://evil.com/ui/", "/ui//evil.com",
     "/ui/..//evil.com", "/ui/../..//evil.com", "/ui/\\evil.com", "/ui/\t/evil", "/ui/x\r\nX: y",
     "", None],
)  # fmt: skip
def test_anything_else_goes_to_the_overview(target: str | None) -> None:
    assert _safe_next(target) == "/ui/"


@pytest.mark.parametrize("target", ["/ui/calls", "/ui/calls?date=2026-11-29&outcome=voicemail"])
def test_console_paths_are_kept(target: str) -> None:
    assert _safe_next(target) == target
