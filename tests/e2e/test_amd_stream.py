"""Async AMD on a live Media Stream: the greeting starts at once (no wait for AMD); a
machine verdict mid-greeting stops the agent (``clear``) and puts the voicemail message on
the call over REST; a person's verdict leaves the call untouched."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import call_server_settings
from voicebot.config import Settings
from voicebot.telephony.rest import TwilioDialer
from voicebot.testing.provider_sim import ProviderSim, SimConfig
from voicebot.testing.server import free_port, running_server
from voicebot.testing.twilio_api_sim import TwilioApiSimulator, serve_on_loopback
from voicebot.testing.twilio_caller import place_call

ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "amd-auth-token"
TO = "+972525550123"
FROM = "+97233720000"


@dataclass
class Rig:
    base: str
    settings: Settings
    sim: TwilioApiSimulator
    dialer: TwilioDialer


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    sim = TwilioApiSimulator(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
    async with (
        ProviderSim(SimConfig(seed=5)) as provider,
        serve_on_loopback(sim.app) as sim_url,
    ):
        port = free_port()
        settings = call_server_settings(
            tmp_path,
            port=port,
            sim=provider,
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            twilio_api_base_url=sim_url,
            twilio_from_number=FROM,
        )
        dialer = TwilioDialer(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, api_base_url=sim_url)
        try:
            async with running_server(settings, port=port) as base:
                yield Rig(base, settings, sim, dialer)
        finally:
            dialer.close()
            await sim.aclose()


async def _dial(rig: Rig) -> str:
    return await rig.dialer.create_call(
        to=TO,
        from_=FROM,
        url=f"{rig.base}/twilio/voice",
        status_callback=f"{rig.base}/twilio/status",
        machine_detection=True,
        wait_for_message_end=True,
        async_amd_callback=f"{rig.base}/twilio/amd",
    )


async def _call_row(base: str) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=base) as http:
        (item,) = (await http.get("/api/v1/calls")).json()["items"]
        detail: dict[str, object] = (await http.get(f"/api/v1/calls/{item['id']}")).json()
        return detail


async def test_machine_mid_greeting_clears_and_leaves_the_message(rig: Rig) -> None:
    """machine_end_beep while the greeting plays: `clear` on the stream, the voicemail
    message then <Hangup/> put on the call, outcome voicemail."""
    sid = await _dial(rig)
    async with place_call(
        rig.base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=sid, to_number=TO
    ) as call:
        await call.wait_until(lambda: call.metrics.first_agent_media_ms is not None, 10)
        await asyncio.sleep(0.3)  # the greeting is playing
        assert call.metrics.clears == 0
        await rig.sim.send_amd(sid, "machine_end_beep", duration_ms=2400)
        await call.wait_until(lambda: call.metrics.clears >= 1, 5)
        updates = rig.sim.calls[sid].twiml_updates
        assert len(updates) == 1
        assert "<Hangup" in updates[0] and ("<Play" in updates[0] or "<Say" in updates[0])
        audio_at_clear = call.metrics.agent_audio_ms
        await asyncio.sleep(0.5)
        assert call.metrics.agent_audio_ms - audio_at_clear < 100  # the agent said no more
    await asyncio.sleep(0.3)
    detail = await _call_row(rig.base)
    assert (detail["outcome"], detail["answered_by"]) == ("voicemail", "machine_end_beep")


async def test_person_verdict_leaves_the_call_untouched(rig: Rig) -> None:
    """human mid-greeting: no clear, no REST update, the greeting plays on to its mark."""
    sid = await _dial(rig)
    async with place_call(
        rig.base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=sid, to_number=TO
    ) as call:
        await call.wait_until(lambda: call.metrics.first_agent_media_ms is not None, 10)
        print(f"first agent media {call.metrics.first_agent_media_ms:.1f} ms after start")
        await rig.sim.send_amd(sid, "human", duration_ms=1200)
        await call.wait_until(lambda: len(call.metrics.marks) >= 1, 20)
        assert call.metrics.clears == 0
        assert rig.sim.updates_for(sid) == []
    await asyncio.sleep(0.3)
    detail = await _call_row(rig.base)
    assert detail["answered_by"] == "human"
    assert detail["outcome"] not in ("voicemail", "fax")


async def test_fax_is_hung_up(rig: Rig) -> None:
    """fax: the agent stops and the call is hung up over REST, outcome fax."""
    sid = await _dial(rig)
    async with place_call(
        rig.base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=sid, to_number=TO
    ) as call:
        await call.wait_until(lambda: call.metrics.first_agent_media_ms is not None, 10)
        await rig.sim.send_amd(sid, "fax")

        def hung_up() -> bool:
            return any(r.value("Status") == "completed" for r in rig.sim.updates_for(sid))

        async with asyncio.timeout(5):
            while not hung_up():  # noqa: ASYNC110 - the simulator records requests, no event
                await asyncio.sleep(0.05)
        assert rig.sim.calls[sid].twiml_updates == []
    await asyncio.sleep(0.3)
    detail = await _call_row(rig.base)
    assert (detail["outcome"], detail["answered_by"]) == ("fax", "fax")
