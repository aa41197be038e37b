"""Importing Israeli CSV files through the API and the CLI, on SQLite and Postgres."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import create_async_engine

from voicebot.cli import import_leads_file, main
from voicebot.config import Settings
from voicebot.db.models import Lead

# As Excel on a Hebrew Windows saves "CSV": Windows-1255, semicolons, Hebrew headers.
WINDOWS_1255_FILE = (
    "טלפון;שם מלא;חברה;מייל;עיר\r\n"
    "050-1234567;דנה כהן;מספרת דנה;dana@example.com;חיפה\r\n"
    "054-4567890;משה לוי;אלפא;;תל אביב\r\n"
    "abc;שגוי;;;\r\n"
    "0544567890;כפול;;;\r\n"
    "03-5551234;רונית;;not-an-email;\r\n"
).encode("cp1255")


def _rows(report: dict[str, Any], key: str) -> list[tuple[int, list[str]]]:
    return [(e["row"], [p["field"] for p in e[key]]) for e in report[key]]


def _check_report(report: dict[str, Any]) -> None:
    assert report["encoding"] == "cp1255"
    assert report["delimiter"] == ";"
    assert report["created"] == 2
    assert _rows(report, "errors") == [(4, ["phone"]), (5, ["phone"]), (6, ["email"])]
    assert _rows(report, "warnings") == [(2, ["phone"])]  # possible but not assigned


async def _clear_leads(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(delete(Lead))
    await engine.dispose()


async def test_windows_1255_file_same_report_api_and_cli(
    client: httpx.AsyncClient,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A Windows-1255 file with Hebrew headers imports through the API and the CLI with the
    same per-row report; unknown columns are kept, the unassigned number is warned about."""
    response = await client.post(
        "/api/v1/leads/import", content=WINDOWS_1255_FILE, headers={"content-type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    api_report = response.json()
    _check_report(api_report)
    leads = {lead["phone"]: lead for lead in (await client.get("/api/v1/leads")).json()["items"]}
    assert set(leads) == {"+972501234567", "+972544567890"}
    assert leads["+972501234567"]["name"] == "דנה כהן"
    assert leads["+972501234567"]["company"] == "מספרת דנה"
    assert leads["+972544567890"]["custom_fields"] == {"עיר": "תל אביב"}

    await _clear_leads(settings.database_url)
    path = tmp_path / "leads.csv"
    path.write_bytes(WINDOWS_1255_FILE)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["import-leads", str(path)])
    captured = capsys.readouterr()
    assert code == 1  # some rows failed
    assert "Traceback" not in captured.err
    assert json.loads(captured.out) == api_report


async def test_multipart_upload_with_mapping(client: httpx.AsyncClient) -> None:
    """A browser-style multipart upload is accepted, with a column mapping as a form field."""
    body = "מספר,איש קשר,Source\n054-4567890,דנה,expo\n".encode()
    response = await client.post(
        "/api/v1/leads/import",
        files={"file": ("leads.csv", body, "text/csv")},
        data={"mapping": json.dumps({"phone": "מספר"})},
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["created"] == 1
    assert report["columns"] == {"מספר": "phone", "איש קשר": "name", "Source": "custom"}
    [lead] = (await client.get("/api/v1/leads")).json()["items"]
    assert lead["name"] == "דנה"
    assert lead["custom_fields"] == {"Source": "expo"}


MULTIPART_WITHOUT_FILE = (
    b'--xyz\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--xyz--\r\n'
)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"content": b"name,company\nx,y\n"}, "file"),
        ({"content": b"phone\n0541234567\n", "params": {"mapping": "{bad"}}, "mapping"),
        (
            {"content": b"phone\n0541234567\n", "params": {"mapping": '{"shoe": "phone"}'}},
            "mapping",
        ),
        (
            {
                "content": MULTIPART_WITHOUT_FILE,
                "headers": {"content-type": "multipart/form-data; boundary=xyz"},
            },
            "file",
        ),
        ({"content": b"\xff\xfe\x00\xd8"}, "file"),
    ],
)
async def test_unusable_import_is_422(
    client: httpx.AsyncClient, kwargs: dict[str, Any], field: str
) -> None:
    """No phone column, a broken mapping, an upload without a file or undecodable bytes is a
    422 in the one error shape."""
    response = await client.post("/api/v1/leads/import", **kwargs)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == field


async def test_large_file_reports_progress(settings: Settings) -> None:
    """A 3,000-row file imports in chunks, reporting progress up to its last row."""
    rows = "\n".join(f"05{2 + i % 3}{i:07d},ליד {i}" for i in range(3000))
    raw = f"Mobile,Name\n{rows}\n".encode()
    report = await import_leads_file(settings, raw, progress_min_rows=10)
    assert report["created"] == 3000
    assert report["failed"] == 0


def test_cli_unusable_file_is_one_line_exit_2(
    tmp_path: Path,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A missing file, a file with no phone column and a bad --map exit 2 with one line."""
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    no_phone = tmp_path / "no-phone.csv"
    no_phone.write_bytes("שם,חברה\nדנה,אלפא\n".encode("cp1255"))
    for argv in (
        ["import-leads", str(tmp_path / "missing.csv")],
        ["import-leads", str(no_phone)],
        ["import-leads", str(no_phone), "--map", "phone"],
        ["import-leads", str(no_phone), "--map", "phone=nope"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("voicebot import-leads:") and err.count("\n") == 1, err
