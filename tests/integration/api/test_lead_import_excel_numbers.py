"""Phone cells Excel or pandas wrote as numbers: read back when every digit is there,
refused with the reason when Excel rounded digits away; the API and the CLI agree."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import create_async_engine

from voicebot.cli import main
from voicebot.config import Settings
from voicebot.db.models import Lead

# A CRM export through pandas ("501234567.0"), an Excel sheet whose phone column was a
# number shown in full ("9.72541234567E+11") and one Excel rounded ("9.72521E+11").
EXCEL_NUMBERS_FILE = (
    "\ufeffנייד,שם מלא\r\n501234567.0,דנה כהן\r\n9.72541234567E+11,משה לוי\r\n9.72521E+11,רונית\r\n"
).encode()


async def _clear_leads(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(delete(Lead))
    await engine.dispose()


async def test_excel_number_cells_same_report_api_and_cli(
    client: httpx.AsyncClient,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """ "501234567.0" is 050-1234567 (it was stored as +9725012345670, a wrong number), a
    full-precision scientific cell is its number, and a rounded one fails its row saying
    Excel dropped digits; the CLI prints the same report."""
    response = await client.post(
        "/api/v1/leads/import", content=EXCEL_NUMBERS_FILE, headers={"content-type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["created"] == 2
    [error] = report["errors"]
    assert error["row"] == 4
    assert "scientific notation" in error["errors"][0]["message"]
    leads = {lead["phone"]: lead for lead in (await client.get("/api/v1/leads")).json()["items"]}
    assert set(leads) == {"+972501234567", "+972541234567"}

    await _clear_leads(settings.database_url)
    path = tmp_path / "leads.csv"
    path.write_bytes(EXCEL_NUMBERS_FILE)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["import-leads", str(path)])
    captured = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in captured.err
    assert json.loads(captured.out) == report
