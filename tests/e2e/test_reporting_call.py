"""Issue #13's end-to-end check: a recorded campaign call books a meeting over the Media
Stream, and then the lead gets the Hebrew SMS confirmation (the Twilio simulator's
Messages resource, with its status callbacks), the CRM's receiver gets ``meeting.booked``
and ``call.completed`` (signatures verified, once each), and the call's stereo recording
is downloadable with sound on both channels.

Real loopback HTTP and websockets: the server under uvicorn (SQLite, rule brain, espeak-ng
TTS), the simulated Twilio caller speaking espeak-ng Hebrew, the STT simulator, the Twilio
REST simulator, the webhook receiver. The wall clock is moved to a Tuesday 09:00 in Israel
(time-machine) so "מחר בעשר" is a business-hours slot.
"""

from __future__ import annotations

import asyncio
import io
import wave
from array import array
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.e2e.conftest import call_server_settings, hebrew_speech, recognising_sim
from voicebot.audio.codec import pcm16_to_ulaw
from voicebot.db.engine import create_engine, create_sessionmaker
from voicebot.db.models import Call, Campaign, Lead, Meeting, SmsMessage
from voicebot.testing.provider_sim import ProviderSim
from voicebot.testing.server import free_port, running_server
from voicebot.testing.twilio_api_sim import TwilioApiSimulator, serve_on_loopback
from voicebot.testing.twilio_caller import SimulatedCall, place_call
from voicebot.testing.webhook_receiver import WebhookReceiver

ACCOUNT_SID = "AC" + "3" * 32
AUTH_TOKEN = "report-auth-token"
SECRET = "whsec_report_0123456789"
LEAD_PHONE = "+972541112244"
FROM_NUMBER = "+97233760001"
HELLO = "שלום"
BOOK = "אפשר לקבוע פגישה מחר בעשר"
AUDIBLE_RMS = 300


@pytest.fixture
async def sim() -> AsyncIterator[ProviderSim]:
    async with recognising_sim(seed=13, phrases=(HELLO, BOOK)) as running:
        yield running


async def _until(predicate: Any, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - simulators are polled, they have no event
            await asyncio.sleep(0.05)


async def _agent_done(call: SimulatedCall, marks_before: int) -> None:
    await call.wait_until(
        lambda: len(call.metrics.marks) > marks_before and not call.playback.busy, 30
    )


def _rms(samples: array[int]) -> float:
    return (sum(s * s for s in samples) / max(1, len(samples))) ** 0.5


async def test_booked_call_reports_texts_and_records(
    frozen_clock: None, tmp_path: Path, sim: ProviderSim
) -> None:
    """Meeting booked on a recorded call: SMS in the simulator, meeting.booked and
    call.completed at the receiver, an audible stereo recording."""
    twilio = TwilioApiSimulator(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
    receiver = WebhookReceiver(secret=SECRET)
    async with (
        serve_on_loopback(twilio.app) as twilio_url,
        serve_on_loopback(receiver.app) as receiver_url,
    ):
        port = free_port()
        settings = call_server_settings(
            tmp_path,
            port=port,
            sim=sim,
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            conversation_mode="stream",
            twilio_api_base_url=twilio_url,
            twilio_from_number=FROM_NUMBER,
            webhook_poll_interval_s=0.2,
            recording_dir=str(tmp_path / "recordings"),
        )
        engine = create_engine(settings)
        sessions = create_sessionmaker(engine)
        call_sid = "CA" + "5d" * 16
        async with sessions() as session:
            lead = Lead(phone=LEAD_PHONE, name="יעל", company="סטודיו יעל")
            campaign = Campaign(
                name="דוחות",
                record=True,
                webhook_url=f"{receiver_url}/hooks",
                webhook_secret=SECRET,
            )
            session.add_all([lead, campaign])
            await session.flush()
            session.add(
                Call(
                    call_sid=call_sid,
                    lead_id=lead.id,
                    campaign_id=campaign.id,
                    to_number=LEAD_PHONE,
                    from_number=FROM_NUMBER,
                )
            )
            await session.commit()
        try:
            async with running_server(settings, port=port) as base:
                async with place_call(
                    base,
                    account_sid=ACCOUNT_SID,
                    auth_token=AUTH_TOKEN,
                    call_sid=call_sid,
                    to_number=LEAD_PHONE,
                    from_number=FROM_NUMBER,
                ) as call:
                    await _agent_done(call, 0)
                    marks = len(call.metrics.marks)
                    call.say(pcm16_to_ulaw(hebrew_speech(HELLO)))
                    await _agent_done(call, marks)
                    marks = len(call.metrics.marks)
                    call.say(pcm16_to_ulaw(hebrew_speech(BOOK)))
                    await _until(lambda: twilio.messages, 30)
                    await call.wait_until(lambda: call.ended, 30)
                await _until(lambda: len(receiver.of_type("call.completed")) == 1, 20)
                await _until(lambda: "delivered" in twilio.messages[0].callbacks, 10)
                async with sessions() as session:
                    stored = (await session.scalars(select(Call))).one()
                    meeting = (await session.scalars(select(Meeting))).one()
                    sms = (await session.scalars(select(SmsMessage))).one()

                    async def recorded() -> bool:
                        await session.refresh(stored)
                        return stored.recording_key is not None

                    async with asyncio.timeout(10):
                        while not await recorded():  # noqa: ASYNC110 - saved after the call
                            await asyncio.sleep(0.1)
                async with httpx.AsyncClient(base_url=base) as http:
                    response = await http.get(f"/api/v1/calls/{stored.id}/recording")
                    detail = (await http.get(f"/api/v1/calls/{stored.id}")).json()
        finally:
            await engine.dispose()
            await twilio.aclose()
    (message,) = twilio.messages
    assert message.to == LEAD_PHONE and message.from_ == FROM_NUMBER
    assert "יעל" in message.body and "יום רביעי, 11.3.2026" in message.body
    assert "10:00" in message.body
    assert sms.status == "delivered" and sms.message_sid == message.sid
    assert sms.meeting_id == meeting.id
    assert receiver.bad_signatures == 0
    (booked,) = receiver.of_type("meeting.booked")
    assert booked["data"]["meeting_id"] == meeting.id
    assert booked["data"]["campaign_id"] == stored.campaign_id
    (report,) = receiver.of_type("call.completed")
    data = report["data"]
    assert data["outcome"] == "meeting_booked"
    assert data["meeting"]["meeting_id"] == meeting.id
    assert [t["text"] for t in data["transcript"] if t["role"] == "user"] == [HELLO, BOOK]
    assert data["latencies"] and all("total" in turn for turn in data["latencies"][1:])
    assert data["recording_url"].endswith(f"/api/v1/calls/{stored.id}/recording")
    assert detail["recording_url"] == f"/api/v1/calls/{stored.id}/recording"
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(response.content)) as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (2, 8000)
        samples = array("h", wav.readframes(wav.getnframes()))
    caller, agent = samples[0::2], samples[1::2]
    assert _rms(caller) > AUDIBLE_RMS, "the caller's channel is silent"
    assert _rms(agent) > AUDIBLE_RMS, "the agent's channel is silent"
