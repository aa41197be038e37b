"""Answering-machine detection on the REST dialer and how the Twilio simulator takes it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import make_settings
from voicebot.telephony.rest import TwilioDialer
from voicebot.testing.twilio_api_sim import TwilioApiSimulator, serve_on_loopback

ACCOUNT = "AC" + "b" * 32
TOKEN = "t" * 32
CALL = {
    "to": "+972501234567",
    "from_": "+97233769999",
    "url": "https://bot.example.co.il/twilio/voice",
    "status_callback": "https://bot.example.co.il/twilio/status",
}


@pytest.fixture
async def rig() -> AsyncIterator[tuple[TwilioApiSimulator, TwilioDialer]]:
    sim = TwilioApiSimulator(account_sid=ACCOUNT, auth_token=TOKEN)
    async with serve_on_loopback(sim.app) as base_url:
        settings = make_settings(
            twilio_account_sid=ACCOUNT, twilio_auth_token=TOKEN, twilio_api_base_url=base_url
        )
        dialer = TwilioDialer.from_settings(settings)
        yield sim, dialer
        dialer.close()


async def test_wait_for_message_end_sends_detect_message_end(
    rig: tuple[TwilioApiSimulator, TwilioDialer],
) -> None:
    """wait_for_message_end asks for DetectMessageEnd; the simulator records it."""
    sim, dialer = rig
    sid = await dialer.create_call(**CALL, machine_detection=True, wait_for_message_end=True)
    assert sim.requests[0].value("MachineDetection") == "DetectMessageEnd"
    assert sim.calls[sid].machine_detection == "DetectMessageEnd"


async def test_no_detection_sends_nothing(rig: tuple[TwilioApiSimulator, TwilioDialer]) -> None:
    """Without machine_detection no MachineDetection field goes out."""
    sim, dialer = rig
    sid = await dialer.create_call(**CALL)
    assert sim.requests[0].value("MachineDetection") is None
    assert sim.calls[sid].machine_detection is None


async def test_simulator_refuses_unknown_detection_mode() -> None:
    """Like Twilio, an invalid MachineDetection is 400 with error 21234, and no call exists."""
    sim = TwilioApiSimulator(account_sid=ACCOUNT, auth_token=TOKEN)
    async with (
        serve_on_loopback(sim.app) as base_url,
        httpx.AsyncClient(auth=(ACCOUNT, TOKEN)) as http,
    ):
        response = await http.post(
            f"{base_url}/2010-04-01/Accounts/{ACCOUNT}/Calls.json",
            data={
                "To": CALL["to"],
                "From": CALL["from_"],
                "Url": CALL["url"],
                "MachineDetection": "Maybe",
            },
        )
    assert response.status_code == 400
    assert response.json()["code"] == 21234
    assert sim.calls == {}
