"""A PNG of turn latency over time and against concurrency (matplotlib, the ``[plot]`` extra)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from voicebot.errors import ConfigError

FIGURE_SIZE_IN = (11.0, 4.5)
FIGURE_DPI = 110
POINT_SIZE = 6


def plot_latency(timeline: Sequence[tuple[float, int, float]], path: Path, *, title: str) -> None:
    """Write ``path``: turn latency against seconds since start, and against calls connected.

    ``timeline`` holds (seconds since start, calls connected, turn latency ms).
    Raises :class:`ConfigError` when matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError("--plot needs matplotlib: pip install 'voicebot[plot]'") from exc
    elapsed = [t for t, _, _ in timeline]
    connected = [c for _, c, _ in timeline]
    latency = [ms for _, _, ms in timeline]
    figure, (over_time, over_load) = plt.subplots(1, 2, figsize=FIGURE_SIZE_IN)
    over_time.scatter(elapsed, latency, s=POINT_SIZE)
    over_time.set_xlabel("seconds since start")
    over_time.set_ylabel("turn latency (ms)")
    over_time.set_title("turn latency over time")
    over_load.scatter(connected, latency, s=POINT_SIZE)
    over_load.set_xlabel("calls connected")
    over_load.set_ylabel("turn latency (ms)")
    over_load.set_title("turn latency against concurrency")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=FIGURE_DPI)
    plt.close(figure)
