"""The optional latency plot: a PNG of turn latency over time and against concurrency."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicebot.loadtest.plot import plot_latency

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_plot_writes_a_png(tmp_path: Path) -> None:
    """A timeline of (seconds, calls connected, latency) becomes a non-empty PNG file."""
    pytest.importorskip("matplotlib")
    path = tmp_path / "latency.png"
    timeline = [(float(t), t % 7, 700.0 + t) for t in range(50)]
    plot_latency(timeline, path, title="50 turns")
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
