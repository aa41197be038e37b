"""The busiest functions of a py-spy profile (``py-spy record --format raw``, collapsed stacks).

Each line of the raw format is ``frame;frame;…;leaf count``, a frame being
``function (path:line)``. Self share counts the leaf frame only, inclusive share
every function on the stack (once per stack).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

DEFAULT_TOP = 15
Share = tuple[str, float]
"""(``function (file)``, percent of samples)."""


def _frame_name(frame: str) -> str:
    function, _, where = frame.partition(" (")
    filename = where.split(":", 1)[0].rsplit("/", 1)[-1]
    return f"{function} ({filename})" if filename else function


def hot_spots(collapsed: str, top: int = DEFAULT_TOP) -> tuple[list[Share], list[Share]]:
    """(self %, inclusive %) of the ``top`` busiest functions in collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    if not total:
        return [], []
    return (
        [(name, 100 * n / total) for name, n in own.most_common(top)],
        [(name, 100 * n / total) for name, n in inclusive.most_common(top)],
    )


def hot_spots_table(raw: Path, top: int = DEFAULT_TOP) -> str:
    """A markdown table of the self and inclusive hot spots of the profile at ``raw``."""
    own, inclusive = hot_spots(raw.read_text(), top)
    lines = ["| self % | function | inclusive % | function |", "| --- | --- | --- | --- |"]
    for (n1, p1), (n2, p2) in zip(own, inclusive, strict=False):
        lines.append(f"| {p1:.1f} | `{n1}` | {p2:.1f} | `{n2}` |")
    return "\n".join(lines)
