"""Real requests to a real server leave no phone number in clear in the log, and each
error is logged once."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import Response

from tests.conftest import make_settings
from tests.unit.core.test_logging import PHONE_FORMS
from voicebot.app import create_app
from voicebot.testing.server import free_port, running_server

HIDDEN_DIGITS = "44567"
"""The digits of 0544567870 that no masked form shows."""


def _lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def _assert_no_phone(err: str) -> None:
    ascii_err = "".join(
        str(int(ch)) if ch.isdigit() else ch for ch in err.encode().decode("unicode_escape")
    )
    assert HIDDEN_DIGITS not in re.sub(r"[^0-9*]", "", ascii_err.replace("***7870", "*")), err


async def test_phones_in_paths_queries_headers_and_bodies_never_reach_the_log(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    """DELETE /do-not-call/<phone> in every form, as query, X-Request-Id and body: the
    access lines are there, and every form is masked."""
    settings = make_settings(database_url=database_url, log_level="INFO")
    async with running_server(settings) as base, httpx.AsyncClient(base_url=base) as http:
        for form in PHONE_FORMS:
            await http.delete(
                f"/api/v1/do-not-call/{form}",
                params={"phone": form},
                headers={"X-Request-Id": form.encode()},
            )
            await http.post("/api/v1/do-not-call", json={"phone": form, "reason": form})
        await http.get("/api/v1/leads", params={"q": "054 456 7870"})
    err = capsys.readouterr().err
    events = _lines(err)
    requests = [e for e in events if e.get("event") == "http.request"]
    assert len(requests) == 2 * len(PHONE_FORMS) + 1
    assert any("+972***7870" in e["path"] for e in requests)
    _assert_no_phone(err)


async def test_library_loggers_do_not_log_every_request(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    """At LOG_LEVEL=INFO, httpx/httpcore/twilio/openai request logs are not written, nor
    alembic's two lines on every /health/ready schema check (a probe every few seconds)."""
    import logging

    settings = make_settings(database_url=database_url, log_level="INFO")
    async with running_server(settings) as base, httpx.AsyncClient(base_url=base) as http:
        await http.get("/health")
        for _ in range(3):
            assert (await http.get("/health/ready")).status_code == 200
        logging.getLogger("twilio.http_client").info("-- BEGIN Twilio API Request --")
        logging.getLogger("openai._base_client").info("HTTP Request: POST")
    err = capsys.readouterr().err
    assert "HTTP Request" not in err
    assert "BEGIN Twilio" not in err
    assert "Context impl" not in err
    assert "transactional DDL" not in err


async def test_an_unexpected_error_is_logged_once(
    capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    """A route that raises: one 500 in the error shape, one log line with the traceback
    (phone in the message masked), nothing from the server about the same error."""
    from voicebot.cli import migrate

    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/e.db", log_level="INFO")
    app = create_app(settings)
    migrate(settings)

    async def boom(_request: Request) -> Response:
        raise RuntimeError("lookup failed for 054-456-7870")

    app.add_route("/boom", boom, methods=["GET"])
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    import asyncio

    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done()
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            response = await http.get("/boom")
    finally:
        server.should_exit = True
        await task
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    err = capsys.readouterr().err
    sys.stderr.write(err)
    assert err.count("api.unhandled_error") == 1
    assert err.count("Traceback (most recent call last)") == 1
    assert "Exception in ASGI application" not in err
    _assert_no_phone(err)


async def test_a_client_that_hangs_up_mid_body_is_not_an_error(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    """A client that announces a body and closes before sending it: one info line, no
    `api.unhandled_error` with a traceback (a cheap way to flood the error log)."""
    import asyncio
    from urllib.parse import urlsplit

    settings = make_settings(database_url=database_url, log_level="INFO")
    async with running_server(settings) as base:
        where = urlsplit(base)
        for path in ("/api/v1/leads", "/api/v1/conversation", "/api/v1/do-not-call"):
            _reader, writer = await asyncio.open_connection(where.hostname, where.port)
            writer.write(
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                'Content-Length: 100\r\n\r\n{"phone":'.encode()
            )
            await writer.drain()
            await asyncio.sleep(0.2)
            writer.close()
            await writer.wait_closed()
        async with httpx.AsyncClient(base_url=base) as http:
            # The server is still fine, and has handled the hang-ups by now.
            await asyncio.sleep(0.5)
            assert (await http.get("/health")).status_code == 200
    err = capsys.readouterr().err
    events = _lines(err)
    assert not [e for e in events if e.get("level") == "error"], err
    assert "Traceback" not in err
    hung_up = [e for e in events if e.get("event") == "http.client_disconnected"]
    assert len(hung_up) == 3, err


async def test_a_database_outage_is_503_without_tracebacks(
    capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    """The database down under a running server: every /api route answers 503
    `database_unavailable` with Retry-After and logs one warning line, no traceback,
    password masked (it was a 500 `internal_error` and an ERROR traceback per request)."""
    settings = make_settings(
        database_url="postgresql://u:hunter2@127.0.0.1:1/none", log_level="INFO"
    )
    async with running_server(settings) as base, httpx.AsyncClient(base_url=base) as http:
        for path in ("/api/v1/leads", "/api/v1/calls", "/api/v1/campaigns", "/api/v1/meetings"):
            response = await http.get(path)
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "database_unavailable"
            assert int(response.headers["Retry-After"]) > 0
    err = capsys.readouterr().err
    events = _lines(err)
    assert not [e for e in events if e.get("level") == "error"], err
    assert "Traceback" not in err and "hunter2" not in err
    assert len([e for e in events if e.get("event") == "api.database_unavailable"]) == 4
