"""Lead files an attacker or a broken export sends: a 4xx or a per-row report, never a 500."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from voicebot.cli import main
from voicebot.config import Settings

HUGE_HEADER_FILE = b"phone," + b"x" * 200_000 + b"\n054-4567890,a\n"  # > csv's field limit


async def _import(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await client.post(
        "/api/v1/leads/import", content=body, headers={"content-type": "text/csv"}
    )


async def test_huge_header_cell_is_422(client: httpx.AsyncClient) -> None:
    """A header cell beyond the CSV field limit is a 422 in the one error shape."""
    response = await _import(client, HUGE_HEADER_FILE)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"


def test_cli_huge_header_cell_is_exit_2(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``voicebot import-leads`` on that file says one line and exits 2, no traceback."""
    path = tmp_path / "leads.csv"
    path.write_bytes(HUGE_HEADER_FILE)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    assert main(["import-leads", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "field limit" in err


async def test_nul_and_control_characters_in_cells_are_dropped(client: httpx.AsyncClient) -> None:
    """A NUL or other control character inside a cell (Postgres refuses NUL in text) is
    removed from the stored value; the row is imported."""
    body = "phone,name,עיר\n054-4567890,דנ\x00ה\x07,חי\x00פה\n".encode()
    response = await _import(client, body)
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 1
    [lead] = (await client.get("/api/v1/leads")).json()["items"]
    assert lead["name"] == "דנה"
    assert lead["custom_fields"] == {"עיר": "חיפה"}


async def test_do_not_call_number_is_imported_with_a_warning(client: httpx.AsyncClient) -> None:
    """A number on the do-not-call list is imported (it stays skipped by the dialer) with a
    warning on its row, so the operator is not surprised that it is never called."""
    added = await client.post("/api/v1/do-not-call", json={"phone": "054-4567890"})
    assert added.status_code in (200, 201), added.text
    body = b"phone,name\n054-4567890,a\n052-3456789,b\n"
    report = (await _import(client, body)).json()
    assert report["created"] == 2
    assert [w["row"] for w in report["warnings"]] == [2]
    [problem] = report["warnings"][0]["warnings"]
    assert problem["field"] == "phone"
    assert "do-not-call" in problem["message"]


async def test_formula_like_cells_are_stored_as_written(client: httpx.AsyncClient) -> None:
    """Cells that a spreadsheet would run as a formula are stored verbatim: the API and the
    agent treat them as text, and escaping belongs to whatever exports to a spreadsheet."""
    body = "phone,name,עיר\n054-4567890,\"=cmd|' /C calc'!A0\",@SUM(1+1)\n".encode()
    report = (await _import(client, body)).json()
    assert report["created"] == 1
    [lead] = (await client.get("/api/v1/leads")).json()["items"]
    assert lead["name"] == "=cmd|' /C calc'!A0"
    assert lead["custom_fields"] == {"עיר": "@SUM(1+1)"}


async def test_only_headers_creates_nothing(client: httpx.AsyncClient) -> None:
    """A file with only a header row is a report of nothing, not an error."""
    report = (await _import(client, "טלפון,שם\n".encode())).json()
    assert (report["created"], report["failed"]) == (0, 0)


async def test_multipart_cp1255_file_with_bad_mapping_json_is_422(
    client: httpx.AsyncClient,
) -> None:
    """A multipart upload whose mapping field is not JSON is a 422 naming the mapping."""
    response = await client.post(
        "/api/v1/leads/import",
        files={"file": ("leads.csv", "טלפון,שם\n054-4567890,דנה\n".encode("cp1255"), "text/csv")},
        data={"mapping": "{phone: טלפון"},
    )
    assert response.status_code == 422, response.text
    assert json.dumps(response.json()).count("mapping") >= 1


async def test_cli_and_api_agree_on_a_dnc_warning(
    client: httpx.AsyncClient,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The CLI gives the same do-not-call warning as the API."""
    await client.post("/api/v1/do-not-call", json={"phone": "054-4567890"})
    path = tmp_path / "leads.csv"
    path.write_bytes(b"phone\n054-4567890\n")
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["import-leads", str(path)])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["warned"] == 1


def _crm_export(rows: int) -> bytes:
    """A Hebrew CRM export: UTF-8 Hebrew is two bytes a letter, ~110 bytes a row."""
    lines = ["טלפון,שם מלא,חברה,מייל,עיר,הערות"]
    lines += [
        f"054-{4000000 + i:07d},דנה כהן {i},מספרת דנה בעמ,dana{i}@example.com,חיפה,לקוחה ותיקה"
        for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


async def test_ten_thousand_row_crm_export_is_accepted(client: httpx.AsyncClient) -> None:
    """A 10,000-row Hebrew CRM export (over the 1 MiB body limit of other routes) imports
    through the API; it was a 413."""
    body = _crm_export(10_000)
    assert len(body) > 1_048_576
    response = await _import(client, body)
    assert response.status_code == 200, response.text[:300]
    assert response.json()["created"] == 10_000
    other = await client.post(
        "/api/v1/leads", content=body, headers={"content-type": "application/json"}
    )
    assert other.status_code == 413  # the general limit still holds elsewhere
