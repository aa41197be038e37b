"""Issue #13 item 2 on a live Media Stream: the callee's first recognised words are checked
for a recording. A Hebrew mailbox greeting stops the agent and gets the voicemail message
(outcome voicemail), as AMD's machine verdict would; a person's "הלו, כן מי זה?" is
answered; a disconnected-number announcement hangs up and marks the lead unreachable;
AMD's machine verdict arriving after the check acted does nothing more (one token,
``amd:<CallSid>``). Run with and without speculative replies (a reply prepared at a short
pause must not be released to a machine)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tests.e2e.conftest import call_server_settings
from voicebot.audio.codec import pcm16_to_ulaw
from voicebot.config import Settings
from voicebot.db.engine import create_engine, create_sessionmaker
from voicebot.db.models import Lead, TwilioEvent
from voicebot.telephony.rest import TwilioDialer
from voicebot.testing.hebrew_audio import synthesize_hebrew
from voicebot.testing.provider_sim import ProviderSim, SimConfig
from voicebot.testing.server import free_port, running_server
from voicebot.testing.twilio_api_sim import TwilioApiSimulator, serve_on_loopback
from voicebot.testing.twilio_caller import place_call

ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "machine-speech-auth-token"
TO = "+972525550177"
FROM = "+97233720000"
AUDIO_CACHE = Path(".cache/hebrew_audio")
VOICEMAIL = "הגעתם לתא הקולי של דנה, נא השאירו הודעה אחרי הצליל"
HUMAN = "הלו, כן מי זה?"
DISCONNECTED = "המספר שחייגת אינו מחובר"


def _speech(text: str) -> bytes:
    return synthesize_hebrew(text, cache_dir=AUDIO_CACHE)


@dataclass
class Rig:
    base: str
    settings: Settings
    sim: TwilioApiSimulator
    dialer: TwilioDialer


@asynccontextmanager
async def machine_rig(
    tmp_path: Path, speculate_silence_ms: int
) -> AsyncIterator[tuple[Rig, ProviderSim]]:
    """A call server dialing through the Twilio simulator, a provider simulator that
    recognises the three phrases, and the lead דנה stored: (rig, provider)."""
    sim = TwilioApiSimulator(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
    async with (
        ProviderSim(SimConfig(seed=13)) as provider,
        serve_on_loopback(sim.app) as sim_url,
    ):
        for phrase in (VOICEMAIL, HUMAN, DISCONNECTED):
            provider.register_phrase(phrase, _speech(phrase), 8000)
        port = free_port()
        settings = call_server_settings(
            tmp_path,
            port=port,
            sim=provider,
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            twilio_api_base_url=sim_url,
            twilio_from_number=FROM,
        ).model_copy(update={"speculate_silence_ms": speculate_silence_ms})
        dialer = TwilioDialer(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, api_base_url=sim_url)
        try:
            async with running_server(settings, port=port) as base:
                engine = create_engine(settings)
                try:
                    async with create_sessionmaker(engine)() as session:
                        session.add(Lead(phone=TO, name="דנה"))
                        await session.commit()
                finally:
                    await engine.dispose()
                yield Rig(base, settings, sim, dialer), provider
        finally:
            dialer.close()
            await sim.aclose()


@pytest.fixture(params=[200, 0], ids=["speculative", "plain"])
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    async with machine_rig(tmp_path, request.param) as (built, _):
        yield built


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


async def _rows(rig: Rig) -> tuple[dict[str, object], str, int]:
    """The call's detail, its lead's status and how many machine tokens it holds."""
    async with httpx.AsyncClient(base_url=rig.base) as http:
        (item,) = (await http.get("/api/v1/calls")).json()["items"]
        detail: dict[str, object] = (await http.get(f"/api/v1/calls/{item['id']}")).json()
    engine = create_engine(rig.settings)
    try:
        async with create_sessionmaker(engine)() as session:
            lead = (await session.scalars(select(Lead).where(Lead.phone == TO))).one()
            tokens = (
                await session.scalars(select(TwilioEvent).where(TwilioEvent.token.like("amd:%")))
            ).all()
            return detail, lead.status, len(tokens)
    finally:
        await engine.dispose()


async def _until(predicate: object, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # type: ignore[operator]  # noqa: ASYNC110 - sim records, no event
            await asyncio.sleep(0.05)


async def test_voicemail_greeting_gets_the_message_once(rig: Rig) -> None:
    """The mailbox greeting as the first words: the agent stops, the voicemail message is
    put on the call over REST, outcome voicemail; AMD's later machine verdict adds
    nothing."""
    sid = await _dial(rig)
    async with place_call(
        rig.base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=sid, to_number=TO
    ) as call:
        await call.wait_until(lambda: call.metrics.first_agent_media_ms is not None, 10)
        call.say(pcm16_to_ulaw(_speech(VOICEMAIL)))
        await _until(lambda: len(rig.sim.calls[sid].twiml_updates) >= 1, 15)
        updates = rig.sim.calls[sid].twiml_updates
        assert "<Hangup" in updates[0] and ("<Play" in updates[0] or "<Say" in updates[0])
        audio_after = call.metrics.agent_audio_ms
        await rig.sim.send_amd(sid, "machine_end_beep", duration_ms=4000)
        await asyncio.sleep(1.0)
        assert call.metrics.agent_audio_ms - audio_after < 100  # no reply to the mailbox
        assert len(rig.sim.calls[sid].twiml_updates) == 1  # AMD after the check: acted once
    await asyncio.sleep(0.3)
    detail, status, tokens = await _rows(rig)
    assert (detail["outcome"], detail["answered_by"]) == ("voicemail", "machine_speech")
    assert tokens == 1
    assert status == "unreachable"


async def test_person_is_answered(rig: Rig) -> None:
    """ "הלו, כן מי זה?" is a person: no REST update, the agent answers."""
    sid = await _dial(rig)
    async with place_call(
        rig.base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=sid, to_number=TO
    ) as call:
        await call.wait_until(lambda: len(call.metrics.marks) >= 1, 20)  # the greeting played
        audio_before = call.metrics.agent_audio_ms
        call.say(pcm16_to_ulaw(_speech(HUMAN)))
        await call.wait_until(lambda: call.metrics.agent_audio_ms - audio_before > 500, 15)
        assert rig.sim.updates_for(sid) == []
    await asyncio.sleep(0.3)
    detail, _, tokens = await _rows(rig)
    assert detail["outcome"] not in ("voicemail", "fax", "failed")
    assert tokens == 0


async def test_disconnected_number_marks_the_lead_unreachable(rig: Rig) -> None:
    """The network's "the number you dialled is not connected": hung up, no message,
    outcome failed (never redialed), the lead unreachable."""
    sid = await _dial(rig)
    async with place_call(
        rig.base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=sid, to_number=TO
    ) as call:
        await call.wait_until(lambda: len(call.metrics.marks) >= 1, 20)  # the greeting played
        call.say(pcm16_to_ulaw(_speech(DISCONNECTED)))

        def hung_up() -> bool:
            return any(r.value("Status") == "completed" for r in rig.sim.updates_for(sid))

        await _until(hung_up, 15)
        assert rig.sim.calls[sid].twiml_updates == []
    await asyncio.sleep(0.3)
    detail, status, tokens = await _rows(rig)
    assert (detail["outcome"], detail["answered_by"]) == ("failed", "machine_unreachable")
    assert status == "unreachable"
    assert tokens == 1
