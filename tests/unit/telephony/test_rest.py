"""TwilioDialer over real loopback HTTP against the Twilio REST simulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from tests.conftest import make_settings
from voicebot.errors import TelephonyError
from voicebot.telephony.rest import (
    CallNotInProgressError,
    TelephonyAuthError,
    TwilioDialer,
)
from voicebot.testing.twilio_api_sim import TwilioApiSimulator, serve_on_loopback

ACCOUNT = "AC" + "a" * 32
TOKEN = "t" * 32


@dataclass
class Rig:
    sim: TwilioApiSimulator
    dialer: TwilioDialer
    base_url: str


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    """A REST simulator on a loopback port and a dialer pointed at it."""
    sim = TwilioApiSimulator(account_sid=ACCOUNT, auth_token=TOKEN)
    async with serve_on_loopback(sim.app) as base_url:
        settings = make_settings(
            twilio_account_sid=ACCOUNT, twilio_auth_token=TOKEN, twilio_api_base_url=base_url
        )
        dialer = TwilioDialer.from_settings(settings)
        yield Rig(sim, dialer, base_url)
        dialer.close()


async def _create(dialer: TwilioDialer, **extra: object) -> str:
    return await dialer.create_call(
        to="+972501234567",
        from_="+97233769999",
        url="https://bot.example.co.il/twilio/voice",
        status_callback="https://bot.example.co.il/twilio/status",
        **extra,  # type: ignore[arg-type]
    )


async def test_requests_go_to_the_configured_base_url(rig: Rig) -> None:
    """TWILIO_API_BASE_URL reroutes the real twilio client to the simulator."""
    assert rig.dialer.api_base_url == rig.base_url
    await _create(rig.dialer)
    assert len(rig.sim.requests) == 1


async def test_create_call_returns_the_sid_and_sends_twilio_form(rig: Rig) -> None:
    """create_call posts the documented form fields and returns the CA… SID."""
    sid = await _create(
        rig.dialer,
        machine_detection=True,
        async_amd_callback="https://bot.example.co.il/twilio/amd",
    )
    assert sid.startswith("CA") and len(sid) == 34
    assert sid in rig.sim.calls
    request = rig.sim.requests[0]
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json"
    assert request.authorized
    assert request.value("To") == "+972501234567"
    assert request.value("From") == "+97233769999"
    assert request.value("Url") == "https://bot.example.co.il/twilio/voice"
    assert request.value("StatusCallback") == "https://bot.example.co.il/twilio/status"
    assert request.form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert request.value("MachineDetection") == "Enable"
    assert request.value("AsyncAmd") == "true"
    assert request.value("AsyncAmdStatusCallback") == "https://bot.example.co.il/twilio/amd"


async def test_hangup_in_progress_call_sends_completed_once(rig: Rig) -> None:
    """Hanging up a live call posts Status=completed exactly once and ends the call."""
    sid = await _create(rig.dialer)
    await rig.dialer.hangup(sid)
    updates = rig.sim.updates_for(sid)
    assert [u.value("Status") for u in updates] == ["completed"]
    assert rig.sim.calls[sid].status == "completed"


async def test_hangup_of_ended_call_is_success(rig: Rig) -> None:
    """A call that already ended (Twilio 21220) or is unknown (404) counts as hung up."""
    sid = await _create(rig.dialer)
    rig.sim.set_status(sid, "completed")
    await rig.dialer.hangup(sid)
    await rig.dialer.hangup("CA" + "0" * 32)
    assert len(rig.sim.updates_for(sid)) == 1


async def test_redirect_to_dial_updates_twiml(rig: Rig) -> None:
    """Transferring replaces the call's TwiML with <Dial>number</Dial>."""
    sid = await _create(rig.dialer)
    await rig.dialer.redirect_to_dial(sid, "+97235550000")
    assert rig.sim.calls[sid].twiml_updates == [
        '<?xml version="1.0" encoding="UTF-8"?><Response><Dial>+97235550000</Dial></Response>'
    ]


async def test_redirect_of_ended_call_raises(rig: Rig) -> None:
    """A transfer cannot revive an ended call: CallNotInProgressError, not retried."""
    sid = await _create(rig.dialer)
    rig.sim.set_status(sid, "completed")
    with pytest.raises(CallNotInProgressError):
        await rig.dialer.redirect_to_dial(sid, "+97235550000")
    assert len(rig.sim.updates_for(sid)) == 1


async def test_wrong_credentials_raise_telephony_error(rig: Rig) -> None:
    """A 401/20003 from Twilio becomes a non-retryable TelephonyAuthError, tried once."""
    dialer = TwilioDialer(account_sid=ACCOUNT, auth_token="wrong", api_base_url=rig.base_url)
    with pytest.raises(TelephonyError) as info:
        await _create(dialer)
    assert isinstance(info.value, TelephonyAuthError)
    assert info.value.details == {"status": 401, "twilio_code": 20003}
    assert len(rig.sim.requests) == 1
    dialer.close()


async def test_transient_errors_are_retried(rig: Rig) -> None:
    """A 503 then success: the update is retried and succeeds."""
    sid = await _create(rig.dialer)
    rig.sim.fail_next(503, code=20503, message="Service unavailable")
    await rig.dialer.hangup(sid)
    assert [u.value("Status") for u in rig.sim.updates_for(sid)] == ["completed", "completed"]


async def test_create_is_not_retried_after_a_server_error(rig: Rig) -> None:
    """A 500 on create may have placed the call, so it is raised rather than retried."""
    rig.sim.fail_next(500)
    with pytest.raises(TelephonyError):
        await _create(rig.dialer)
    assert len(rig.sim.requests) == 1


async def test_unreachable_api_raises_telephony_error() -> None:
    """Connection refused on every attempt surfaces as TelephonyError."""
    dialer = TwilioDialer(
        account_sid=ACCOUNT, auth_token=TOKEN, api_base_url="http://127.0.0.1:9", max_attempts=2
    )
    with pytest.raises(TelephonyError, match="ConnectionError"):
        await _create(dialer)
    dialer.close()


async def test_create_not_retried_when_the_connection_drops_after_sending() -> None:
    """A connection closed after the request went out (Twilio may have placed the call) is
    not retried, and the dialer treats it as unanswered, not refused."""
    from voicebot.jobs.dial import _ambiguous

    received: list[bytes] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"\r\n\r\n"))
        writer.close()  # no answer: the request was read, the connection drops

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    dialer = TwilioDialer(
        account_sid=ACCOUNT, auth_token=TOKEN, api_base_url=f"http://127.0.0.1:{port}"
    )
    async with server:
        with pytest.raises(TelephonyError) as raised:
            await _create(dialer)
    dialer.close()
    assert len(received) == 1
    assert _ambiguous(raised.value)
