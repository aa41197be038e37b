"""``voicebot campaign status ID [--watch]``: a campaign's progress on the terminal.

Renders a :class:`~voicebot.jobs.campaign_status.CampaignSnapshot` with ``rich``: the
status line (and pause reason), a progress bar of members in a final state, counts per
member state and per outcome, due now, in flight and the calling window. ``--watch``
redraws every ``interval_s`` in place until the campaign completes or is cancelled
(exit 0) or Ctrl-C (exit 130). Reads the database directly: no server needed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Final

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from voicebot.config import Settings
from voicebot.db.engine import create_engine, create_sessionmaker
from voicebot.errors import NotFoundError
from voicebot.jobs.campaign_status import CampaignSnapshot, campaign_snapshot

DEFAULT_WATCH_INTERVAL_S: Final = 2.0
EXIT_OK, EXIT_NOT_FOUND, EXIT_INTERRUPTED = 0, 1, 130  # EXIT_NOT_FOUND: also DB unreadable
STATUS_STYLES: Final = {
    "running": "bold green",
    "paused": "bold yellow",
    "completed": "bold blue",
    "cancelled": "bold red",
    "draft": "dim",
}


def render(snapshot: CampaignSnapshot) -> RenderableType:
    """The whole status view of one snapshot."""
    head = Text.assemble(
        (f"Campaign {snapshot.campaign_id} ", "bold"),
        (f"{snapshot.name}  ", ""),
        (snapshot.status, STATUS_STYLES.get(snapshot.status, "")),
    )
    if snapshot.status_reason:
        head.append(f"  reason: {snapshot.status_reason}", style="yellow")
    bar = Progress(
        TextColumn("members final"),
        BarColumn(bar_width=40),
        MofNCompleteColumn(),
        TaskProgressColumn(),
    )
    bar.add_task("final", total=max(snapshot.total, 1), completed=snapshot.final)
    now_line = Text(
        f"due now {snapshot.due}   in flight {snapshot.in_flight}   "
        f"attempts {snapshot.attempts_total}"
    )
    window_style = "green" if snapshot.window_open else "yellow"
    window_line = Text(f"window: {snapshot.window_note}", style=window_style)
    return Group(head, bar, now_line, window_line, _counts(snapshot))


def _counts(snapshot: CampaignSnapshot) -> Table:
    table = Table(show_edge=False, pad_edge=False, box=None, padding=(0, 2))
    table.add_column("state")
    table.add_column("members", justify="right")
    table.add_column("outcome")
    table.add_column("members", justify="right")
    states = list(snapshot.states.items())
    outcomes = list(snapshot.outcomes.items()) or [("(none yet)", 0)]
    for i in range(max(len(states), len(outcomes))):
        state, count = states[i] if i < len(states) else ("", None)
        outcome, o_count = outcomes[i] if i < len(outcomes) else ("", None)
        table.add_row(
            state,
            "" if count is None else str(count),
            outcome,
            "" if o_count is None or outcome == "(none yet)" else str(o_count),
        )
    return table


async def _read(settings: Settings, campaign_id: int) -> CampaignSnapshot:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            return await campaign_snapshot(session, campaign_id, now=datetime.now(UTC))
    finally:
        await engine.dispose()


async def _watch(
    settings: Settings, campaign_id: int, *, interval_s: float, console: Console
) -> int:
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    try:
        async with sessions() as session:
            snapshot = await campaign_snapshot(session, campaign_id, now=datetime.now(UTC))
        with Live(render(snapshot), console=console, auto_refresh=False) as live:
            while not snapshot.ended:
                await asyncio.sleep(interval_s)
                async with sessions() as session:
                    snapshot = await campaign_snapshot(session, campaign_id, now=datetime.now(UTC))
                live.update(render(snapshot), refresh=True)
        return EXIT_OK
    finally:
        await engine.dispose()


def run_status(
    settings: Settings,
    campaign_id: int,
    *,
    watch: bool = False,
    interval_s: float = DEFAULT_WATCH_INTERVAL_S,
    as_json: bool = False,
    console: Console | None = None,
) -> int:
    """The command: print once (or JSON), or watch until ended / Ctrl-C. Returns the exit code."""
    out = console or Console()
    try:
        if watch and not as_json:
            return asyncio.run(_watch(settings, campaign_id, interval_s=interval_s, console=out))
        snapshot = asyncio.run(_read(settings, campaign_id))
    except NotFoundError as exc:
        _error(exc.message)
        return EXIT_NOT_FOUND
    except (SQLAlchemyError, OSError) as exc:
        _error(f"cannot read the database ({type(exc).__name__}); is it migrated and reachable?")
        return EXIT_NOT_FOUND
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    if as_json:
        out.file.write(json.dumps(snapshot.to_json(), ensure_ascii=False) + "\n")
    else:
        out.print(render(snapshot))
    return EXIT_OK


def _error(message: str) -> None:
    print(f"voicebot: {message}", file=sys.stderr)
