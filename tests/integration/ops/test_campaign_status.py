"""`voicebot campaign status ID [--watch]` on a seeded database (SQLite and Postgres)."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from tests.conftest import make_settings
from voicebot.cli import main
from voicebot.db.engine import create_engine, create_sessionmaker
from voicebot.db.models import (
    AttemptStatus,
    Campaign,
    CampaignAttempt,
    CampaignLead,
    CampaignStatus,
    Lead,
    MemberState,
)

WAIT_S = 20.0


async def _seed(database_url: str) -> int:
    """A paused campaign of 5 members: 2 done (2 outcomes), 1 dialing, 1 due, 1 later."""
    engine = create_engine(make_settings(database_url=database_url))
    now = datetime.now(UTC)
    try:
        async with create_sessionmaker(engine)() as session:
            campaign = Campaign(
                name="חורף",
                status=CampaignStatus.PAUSED,
                status_reason="twilio 401: bad credentials",
                calendar="none",
                window_days="sun,mon,tue,wed,thu,fri,sat",
                window_start="00:00",
                window_end="24:00",
            )
            leads = [Lead(phone=f"+9725012345{i:02d}") for i in range(5)]
            session.add_all([campaign, *leads])
            await session.flush()
            plan = [
                (MemberState.DONE, "meeting_booked", None),
                (MemberState.DONE, "not_interested", None),
                (MemberState.DIALING, None, None),
                (MemberState.RETRY, "busy", now - timedelta(minutes=1)),
                (MemberState.PENDING, None, now + timedelta(hours=2)),
            ]
            members = [
                CampaignLead(
                    campaign_id=campaign.id,
                    lead_id=lead.id,
                    state=state,
                    last_outcome=outcome,
                    next_attempt_at=due,
                )
                for lead, (state, outcome, due) in zip(leads, plan, strict=True)
            ]
            session.add_all(members)
            await session.flush()
            session.add(
                CampaignAttempt(
                    campaign_id=campaign.id,
                    member_id=members[2].id,
                    lead_id=leads[2].id,
                    attempt_no=1,
                    idempotency_key="status-test-1",
                    status=AttemptStatus.PLACED,
                )
            )
            await session.commit()
            return campaign.id
    finally:
        await engine.dispose()


async def _set_status(database_url: str, campaign_id: int, status: str) -> None:
    engine = create_engine(make_settings(database_url=database_url))
    try:
        async with create_sessionmaker(engine)() as session:
            await session.execute(
                update(Campaign).where(Campaign.id == campaign_id).values(status=status)
            )
            await session.commit()
    finally:
        await engine.dispose()


@pytest.fixture
def seeded(database_url: str, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", "")
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    return asyncio.run(_seed(database_url))


def test_status_prints_counts_outcomes_due_and_reason(
    seeded: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """One reading: status, pause reason, progress 2/5, per state and outcome, due, in flight."""
    assert main(["campaign", "status", str(seeded)]) == 0
    out = capsys.readouterr().out
    assert f"Campaign {seeded}" in out and "paused" in out
    assert "reason: twilio 401: bad credentials" in out
    assert "2/5" in out and "40%" in out
    assert "due now 1" in out and "in flight 1" in out and "attempts 1" in out
    for word in ("meeting_booked", "not_interested", "busy", "dialing", "retry", "pending"):
        assert word in out
    assert "window: open until" in out


def test_status_json_is_one_snapshot(seeded: int, capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints the same reading for scripts."""
    assert main(["campaign", "status", str(seeded), "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["total"] == 5 and body["final"] == 2
    assert body["states"]["done"] == 2 and body["states"]["dialing"] == 1
    assert body["outcomes"] == {"busy": 1, "meeting_booked": 1, "not_interested": 1}
    assert body["due"] == 1 and body["in_flight"] == 1
    assert body["attempts"]["placed"] == 1 and sum(body["attempts"].values()) == 1
    assert body["status_reason"] == "twilio 401: bad credentials" and body["window_open"] is True


def test_unknown_campaign_is_exit_1(seeded: int, capsys: pytest.CaptureFixture[str]) -> None:
    """A campaign id that does not exist says so on stderr, exit 1, no traceback."""
    assert main(["campaign", "status", str(seeded + 1000)]) == 1
    assert "not found" in capsys.readouterr().err


def test_watch_exits_when_the_campaign_completes(seeded: int, database_url: str) -> None:
    """--watch redraws until another process marks the campaign completed, then exits 0."""
    asyncio.run(_set_status(database_url, seeded, CampaignStatus.RUNNING))
    result: list[int] = []
    watcher = threading.Thread(
        target=lambda: result.append(
            main(["campaign", "status", str(seeded), "--watch", "--interval", "0.1"])
        )
    )
    watcher.start()
    time.sleep(0.5)
    assert watcher.is_alive() and not result  # still watching a running campaign
    asyncio.run(_set_status(database_url, seeded, CampaignStatus.COMPLETED))
    watcher.join(WAIT_S)
    assert result == [0]


def test_watch_exits_on_ctrl_c(seeded: int, database_url: str) -> None:
    """Ctrl-C (SIGINT) ends --watch on a terminal promptly, exit 130, no traceback."""
    asyncio.run(_set_status(database_url, seeded, CampaignStatus.RUNNING))
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": "", "TERM": "xterm"}
    command = [sys.executable, "-m", "voicebot.cli", "campaign", "status", str(seeded)]
    primary, secondary = pty.openpty()  # a terminal, as an operator runs it
    proc = subprocess.Popen(  # noqa: S603 - our own CLI with fixed arguments
        [*command, "--watch", "--interval", "0.2"],
        env=env,
        stdout=secondary,
        stderr=subprocess.PIPE,
    )
    os.close(secondary)
    try:
        drawn = b""
        deadline = time.monotonic() + WAIT_S
        while b"members final" not in drawn and time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.5)
            if ready:
                drawn += os.read(primary, 65536)
        assert b"members final" in drawn  # the live view is on screen: the loop is running
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(primary)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert code == 130, stderr
    assert "Traceback" not in stderr


def test_unreadable_database_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database that refuses connections: exit 1 and one line on stderr, no traceback."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/none")
    assert main(["campaign", "status", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("voicebot: cannot read the database") and err.count("\n") == 1
