"""TTS down from start-up and no espeak-ng: nothing can speak, so the call is hung up at
once and stored as ``tts_unavailable`` (the campaign calls the lead again), rather than
sitting silent until the silence check-ins store it as ``no_answer``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_call_faults import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    StartServer,
    _live_at_twilio,
    _rest_update,
    server,
    sim,
    twilio_api,
)
from voicebot.testing.provider_sim import ProviderSim, StageBehaviour
from voicebot.testing.twilio_api_sim import TwilioApiSimulator
from voicebot.testing.twilio_caller import DEFAULT_TO, place_call

__all__ = ["server", "sim", "twilio_api"]  # the fixtures this module borrows


async def _stored_call(base: str, timeout_s: float = 10.0) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base) as http, asyncio.timeout(timeout_s):
        calls = (await http.get("/api/v1/calls")).json()["items"]
        while True:
            detail: dict[str, Any] = (await http.get(f"/api/v1/calls/{calls[0]['id']}")).json()
            if detail["outcome"] is not None:
                return detail
            await asyncio.sleep(0.05)


async def test_no_voice_at_all_hangs_up_at_once_as_tts_unavailable(
    server: StartServer,
    sim: ProviderSim,
    twilio_api: tuple[TwilioApiSimulator, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TTS answers 500 from start-up (nothing cached) and espeak-ng is not on PATH: the
    REST hang-up comes within seconds of the stream starting, with no audio sent, and the
    call is stored as tts_unavailable with its lead's status unchanged."""
    api, _ = twilio_api
    sid = "CA" + "f6" * 16
    _live_at_twilio(api, sid)
    sim.config.tts = StageBehaviour(error_rate=1.0, error_status=500)
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng: no fallback voice
    async with server(silence_checkin_s=2.0) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            lead = await http.post("/api/v1/leads", json={"name": "דנה כהן", "phone": DEFAULT_TO})
            assert lead.status_code == 201, lead.text
        async with place_call(
            base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=sid
        ) as call:
            started = time.monotonic()
            await _rest_update(api, sid, timeout_s=10)
            hangup_s = time.monotonic() - started
            audio_ms = call.metrics.agent_audio_ms
        detail = await _stored_call(base)
        async with httpx.AsyncClient(base_url=base) as http:
            lead_now = (await http.get(f"/api/v1/leads/{lead.json()['id']}")).json()
    print(f"stream start -> REST hang-up {hangup_s:.2f} s")
    assert [u.value("Status") for u in api.updates_for(sid)] == ["completed"]
    assert audio_ms == 0
    # Well before the silence check-ins (2 s, then a goodbye) would have ended it.
    assert hangup_s < 4.0
    assert detail["outcome"] == "tts_unavailable"
    assert lead_now["status"] == "new"
