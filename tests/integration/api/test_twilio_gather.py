"""Calls in <Gather> mode (no STT configured) through signed Twilio webhooks, on both DBs:
the brain books, opts out and transfers; audio is served as WAV; machines get voicemail;
final statuses set outcomes without weakening a lead's status."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import shutil
import struct
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from structlog.testing import capture_logs
from twilio.request_validator import RequestValidator

from tests.conftest import REQUIRE_SERVICES, make_settings
from voicebot.app import create_app
from voicebot.brain.script import AgentScript
from voicebot.call.speaker import ERROR_GOODBYE_TEXT, SYSTEM_APOLOGY_TEXT
from voicebot.config import Settings
from voicebot.db.engine import create_engine, create_sessionmaker
from voicebot.db.models import Call, CallTurn, Campaign, DoNotCall, Lead, Meeting
from voicebot.db.optouts import drain_outbox

ACCOUNT_SID = "AC" + "2" * 32
AUTH_TOKEN = "gather-auth-token"
LEAD_PHONE = "+972544567890"
AGENT_NUMBER = "+97233769999"
TRANSFER_NUMBER = "+97235550000"
WAV_MULAW_TAG = 7


@pytest.fixture(autouse=True)
def _need_espeak() -> None:
    if shutil.which("espeak-ng") is None:
        message = "espeak-ng is not installed"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(
        database_url=database_url,
        twilio_auth_token=AUTH_TOKEN,  # without the SID no dialing worker starts
        transfer_number=TRANSFER_NUMBER,
        tts_cache_dir=str(tmp_path / "tts"),
    )


@pytest.fixture
async def twilio(app: Starlette, settings: Settings) -> AsyncIterator[TwilioSide]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield TwilioSide(http, settings)


class TwilioSide:
    """Plays Twilio: signed webhook POSTs over the public URL, and GETs of <Play> audio."""

    def __init__(self, http: httpx.AsyncClient, settings: Settings) -> None:
        self.http = http
        self.settings = settings
        self.validator = RequestValidator(AUTH_TOKEN)

    async def post(self, path_and_query: str, form: dict[str, str]) -> httpx.Response:
        url = self.settings.public_base_url + path_and_query
        signature = self.validator.compute_signature(url, form)
        return await self.http.post(
            path_and_query, data=form, headers={"X-Twilio-Signature": signature}
        )

    async def answer(self, call_sid: str, **extra: str) -> httpx.Response:
        """The voice webhook of an outbound call to the lead, as Twilio posts it."""
        form = {
            "CallSid": call_sid,
            "AccountSid": ACCOUNT_SID,
            "From": AGENT_NUMBER,
            "To": LEAD_PHONE,
            "Direction": "outbound-api",
            "CallStatus": "in-progress",
            **extra,
        }
        return await self.post("/twilio/voice", form)

    async def turn(self, twiml: str, call_sid: str, **fields: str) -> httpx.Response:
        """Post the <Gather> result to the action URL the last TwiML named."""
        gather = _xml(twiml).find("Gather")
        assert gather is not None, twiml
        action = urlsplit(gather.attrib["action"])
        form = {"CallSid": call_sid, "AccountSid": ACCOUNT_SID, **fields}
        return await self.post(f"{action.path}?{action.query}", form)

    async def status(self, call_sid: str, status: str) -> httpx.Response:
        form = {"CallSid": call_sid, "AccountSid": ACCOUNT_SID, "CallStatus": status}
        return await self.post("/twilio/status", form)


async def _db(settings: Settings) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    engine = create_engine(settings)
    return engine, create_sessionmaker(engine)


@contextlib.asynccontextmanager
async def _tables_away(settings: Settings, *tables: str) -> AsyncIterator[None]:
    """``tables`` renamed out of reach for the block (every statement on them fails), then
    renamed back, whatever the block raised."""
    engine = create_engine(settings)
    try:
        async with engine.begin() as db:
            for table in tables:
                await db.execute(text(f"ALTER TABLE {table} RENAME TO {table}_away"))
        yield
    finally:
        async with engine.begin() as db:
            for table in tables:
                await db.execute(text(f"ALTER TABLE {table}_away RENAME TO {table}"))
        await engine.dispose()


async def _seed_outbound_call(settings: Settings, *, call_sid: str, status: str = "new") -> int:
    """A lead and the call row the campaign dialer creates before Twilio calls back."""
    engine, sessions = await _db(settings)
    async with sessions() as session:
        lead = (await session.scalars(select(Lead).where(Lead.phone == LEAD_PHONE))).first()
        if lead is None:
            lead = Lead(phone=LEAD_PHONE, name="דנה", company="מספרת דנה", status=status)
            session.add(lead)
            await session.flush()
        session.add(
            Call(call_sid=call_sid, lead_id=lead.id, direction="outbound", status="initiated")
        )
        await session.commit()
        lead_id = lead.id
    await engine.dispose()
    return lead_id


async def _load(settings: Settings, call_sid: str) -> tuple[Call, Lead | None, list[CallTurn]]:
    engine, sessions = await _db(settings)
    async with sessions() as session:
        call = (await session.scalars(select(Call).where(Call.call_sid == call_sid))).one()
        lead = None if call.lead_id is None else await session.get(Lead, call.lead_id)
        turns = list(
            (
                await session.scalars(
                    select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq)
                )
            ).all()
        )
    await engine.dispose()
    return call, lead, turns


def _xml(twiml: str) -> ET.Element:
    return ET.fromstring(twiml)  # noqa: S314 - TwiML from our own server under test


def _sid() -> str:
    return "CA" + secrets.token_hex(16)


def _plays(twiml: str) -> list[str]:
    return [el.text or "" for el in _xml(twiml).iter("Play")]


async def test_gather_conversation_books_a_meeting(twilio: TwilioSide, settings: Settings) -> None:
    """Five spoken turns over <Gather> book tomorrow at 10:00: the meeting row exists, the
    call's outcome is meeting_booked with a Hebrew summary, and the lead is meeting_booked."""
    call_sid = _sid()
    lead_id = await _seed_outbound_call(settings, call_sid=call_sid)
    first = await twilio.answer(call_sid)
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("application/xml")
    gather = _xml(first.text).find("Gather")
    assert gather is not None
    assert gather.attrib["input"] == "dtmf speech"
    assert gather.attrib["language"] == "he-IL"
    assert gather.attrib["speechTimeout"] == "auto"
    assert gather.attrib["actionOnEmptyResult"] == "true"
    assert "/twilio/gather?call_id=" in gather.attrib["action"]
    assert _plays(first.text), first.text
    twiml = first.text
    for line in [
        "כן, אפשר לדבר",
        "כן מעניין אותי",
        "אממ יש לנו בערך עשרים עובדים",
        "מחר בעשר",
        "כן מתאים",
    ]:
        answer = await twilio.turn(twiml, call_sid, SpeechResult=line, Confidence="0.91")
        assert answer.status_code == 200, answer.text
        twiml = answer.text
    root = _xml(twiml)
    assert root.find("Hangup") is not None and root.find("Gather") is None
    assert _plays(twiml)
    call, lead, turns = await _load(settings, call_sid)
    assert call.outcome == "meeting_booked"
    assert lead is not None and lead.status == "meeting_booked"
    assert call.summary is not None and "נקבעה פגישה" in call.summary and "10:00" in call.summary
    assert [t.role for t in turns[:3]] == ["assistant", "user", "assistant"]
    assert turns[-2].text == "כן מתאים"
    assert [t.seq for t in turns] == list(range(1, len(turns) + 1))
    engine, sessions = await _db(settings)
    async with sessions() as session:
        meetings = list((await session.scalars(select(Meeting))).all())
    await engine.dispose()
    assert len(meetings) == 1 and meetings[0].lead_id == lead_id
    start = meetings[0].start_at.astimezone(ZoneInfo(settings.timezone))
    assert (start.hour, start.minute) == (10, 0)
    assert start.date() > datetime.now(ZoneInfo(settings.timezone)).date()


async def test_opt_out_adds_to_do_not_call_and_hangs_up(
    twilio: TwilioSide, settings: Settings
) -> None:
    """'תוריד אותי מהרשימה' answers with the goodbye and <Hangup/>; the number is on DNC."""
    call_sid = _sid()
    await _seed_outbound_call(settings, call_sid=call_sid)
    first = await twilio.answer(call_sid)
    bye = await twilio.turn(first.text, call_sid, SpeechResult="תוריד אותי מהרשימה")
    assert _xml(bye.text).find("Hangup") is not None
    call, lead, _ = await _load(settings, call_sid)
    assert call.outcome == "do_not_call"
    assert lead is not None and lead.status == "do_not_call"
    engine, sessions = await _db(settings)
    async with sessions() as session:
        dnc = [d.phone for d in (await session.scalars(select(DoNotCall))).all()]
    await engine.dispose()
    assert dnc == [LEAD_PHONE]


async def test_ask_for_a_human_dials_the_transfer_number(
    twilio: TwilioSide, settings: Settings
) -> None:
    """Asking for a person plays the hand-over sentence, then <Dial>s TRANSFER_NUMBER."""
    call_sid = _sid()
    await _seed_outbound_call(settings, call_sid=call_sid)
    first = await twilio.answer(call_sid)
    answer = await twilio.turn(first.text, call_sid, SpeechResult="אפשר לדבר עם בן אדם?")
    root = _xml(answer.text)
    dial = root.find("Dial")
    assert dial is not None and dial.text == TRANSFER_NUMBER
    assert _plays(answer.text)
    call, lead, _ = await _load(settings, call_sid)
    assert call.outcome == "transferred"
    assert lead is not None and lead.status == "contacted"


async def test_silence_checks_in_then_ends_as_no_answer(
    twilio: TwilioSide, settings: Settings
) -> None:
    """An empty result gets a check-in <Gather>; a second one ends the call as no_answer."""
    call_sid = _sid()
    await _seed_outbound_call(settings, call_sid=call_sid)
    first = await twilio.answer(call_sid)
    check_in = await twilio.turn(first.text, call_sid)
    assert _xml(check_in.text).find("Gather") is not None
    bye = await twilio.turn(check_in.text, call_sid, SpeechResult="")
    assert _xml(bye.text).find("Hangup") is not None
    call, lead, _ = await _load(settings, call_sid)
    assert call.outcome == "no_answer"
    assert lead is not None and lead.status == "unreachable"


async def test_caller_hangs_up_mid_conversation(twilio: TwilioSide, settings: Settings) -> None:
    """A gather call whose caller hangs up is finished by the final status callback."""
    call_sid = _sid()
    await _seed_outbound_call(settings, call_sid=call_sid)
    first = await twilio.answer(call_sid)
    await twilio.turn(first.text, call_sid, SpeechResult="כן, אפשר לדבר")
    assert (await twilio.status(call_sid, "completed")).status_code == 204
    call, lead, _ = await _load(settings, call_sid)
    assert call.status == "completed"
    assert call.outcome == "completed"
    assert call.summary
    assert lead is not None and lead.status == "contacted"


async def test_bad_signature_is_403(twilio: TwilioSide, settings: Settings) -> None:
    """A gather turn signed with the wrong token is refused and stores nothing."""
    call_sid = _sid()
    await _seed_outbound_call(settings, call_sid=call_sid)
    first = await twilio.answer(call_sid)
    gather = _xml(first.text).find("Gather")
    assert gather is not None
    action = urlsplit(gather.attrib["action"])
    form = {"CallSid": call_sid, "SpeechResult": "תוריד אותי מהרשימה"}
    forged = RequestValidator("wrong-token").compute_signature(
        settings.public_base_url + f"{action.path}?{action.query}", form
    )
    response = await twilio.http.post(
        f"{action.path}?{action.query}", data=form, headers={"X-Twilio-Signature": forged}
    )
    assert response.status_code == 403
    call, lead, turns = await _load(settings, call_sid)
    assert call.outcome is None and len(turns) == 1
    assert lead is not None and lead.status == "new"


async def test_audio_route_serves_mulaw_wav_and_404s_unknown_keys(
    twilio: TwilioSide, settings: Settings
) -> None:
    """Every <Play> URL is a signed name on our server that GETs as 8 kHz μ-law WAV with
    speech in it; a tampered or made-up name is 404."""
    call_sid = _sid()
    await _seed_outbound_call(settings, call_sid=call_sid)
    first = await twilio.answer(call_sid)
    urls = _plays(first.text)
    assert urls and all(u.startswith(settings.public_base_url + "/twilio/audio/") for u in urls)
    response = await twilio.http.get(urlsplit(urls[0]).path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/wav"
    body = response.content
    assert body[:4] == b"RIFF" and body[8:12] == b"WAVE"
    assert struct.unpack_from("<I", body, 4)[0] == len(body) - 8
    tag, channels, rate, byte_rate, align, bits = struct.unpack_from("<HHIIHH", body, 20)
    assert (tag, channels, rate, byte_rate, align, bits) == (WAV_MULAW_TAG, 1, 8000, 8000, 1, 8)
    data_at = body.index(b"data") + 8
    size = struct.unpack_from("<I", body, data_at - 4)[0]
    assert size > 8000 * 0.5  # at least half a second of speech
    samples = body[data_at : data_at + size]
    assert len(set(samples)) > 20  # not silence
    path = urlsplit(urls[0]).path
    key = re.sub(r"^/twilio/audio/|\.wav$", "", path)
    body_part, _, signature = key.partition(".")
    tampered = f"/twilio/audio/{body_part}.{signature[::-1]}.wav"
    assert (await twilio.http.get(tampered)).status_code == 404
    assert (await twilio.http.get("/twilio/audio/nothing-here.wav")).status_code == 404


async def test_answering_machine_gets_the_scripts_voicemail(
    twilio: TwilioSide, settings: Settings
) -> None:
    """AnsweredBy=machine_end_beep answers with the campaign script's voicemail audio and
    <Hangup/>; the outcome is voicemail and the lead unreachable."""

    script = AgentScript.default().model_copy(
        update={"voicemail": "היי, כאן נועה. נחזור אליכם מחר, יום טוב."}
    )
    call_sid = _sid()
    await _seed_outbound_call(settings, call_sid=call_sid)
    await _attach_campaign(settings, call_sid, script)
    answer = await twilio.answer(call_sid, AnsweredBy="machine_end_beep")
    root = _xml(answer.text)
    assert root.find("Hangup") is not None and root.find("Gather") is None
    urls = _plays(answer.text)
    assert len(urls) == 2  # one per sentence of the script's voicemail text
    from voicebot.telephony.audio_token import verify_audio_token

    spoken = [
        verify_audio_token(settings.stream_secret, re.sub(r"^.*/|\.wav$", "", u)) for u in urls
    ]
    assert " ".join(s or "" for s in spoken) == script.voicemail
    call_row, lead, turns = await _load(settings, call_sid)
    assert call_row.outcome == "voicemail" and call_row.answered_by == "machine_end_beep"
    assert call_row.summary and "משיבון" in call_row.summary
    assert lead is not None and lead.status == "unreachable"
    assert turns == []


async def test_partial_script_voicemail_names_only_its_own_company(
    twilio: TwilioSide, settings: Settings
) -> None:
    """A yoga studio's script without a voicemail leaves a message naming the studio and
    its agent, never the built-in "נועה מליד פלוס"."""
    script = AgentScript(
        agent_name="מאיה", company="סטודיו שאנטי", offer="יש לנו שיעורי יוגה לצוותים."
    )
    call_sid = _sid()
    await _seed_outbound_call(settings, call_sid=call_sid)
    await _attach_campaign(settings, call_sid, script)
    answer = await twilio.answer(call_sid, AnsweredBy="machine_end_beep")
    from voicebot.telephony.audio_token import verify_audio_token

    spoken = " ".join(
        verify_audio_token(settings.stream_secret, re.sub(r"^.*/|\.wav$", "", u)) or ""
        for u in _plays(answer.text)
    )
    assert "כאן מאיה מסטודיו שאנטי" in spoken
    assert "ליד פלוס" not in spoken and "נועה" not in spoken


async def test_voicemail_is_spoken_form(twilio: TwilioSide, settings: Settings) -> None:
    """A voicemail template with digits is synthesized in words: prices, counts, duals."""
    script = AgentScript(
        company="סטודיו שאנטי",
        voicemail="היי, כאן {agent} מ{company}. שיעור ניסיון ב-₪49.90, ונחזור תוך 2 ימים.",
    )
    call_sid = _sid()
    await _seed_outbound_call(settings, call_sid=call_sid)
    await _attach_campaign(settings, call_sid, script)
    answer = await twilio.answer(call_sid, AnsweredBy="machine_end_beep")
    from voicebot.telephony.audio_token import verify_audio_token

    spoken = " ".join(
        verify_audio_token(settings.stream_secret, re.sub(r"^.*/|\.wav$", "", u)) or ""
        for u in _plays(answer.text)
    )
    assert "בארבעים ותשעה שקלים ותשעים אגורות" in spoken and "תוך יומיים" in spoken
    assert not any(ch.isdigit() or ch == "₪" for ch in spoken)


async def test_no_answer_status_sets_outcome_and_never_downgrades(
    twilio: TwilioSide, settings: Settings
) -> None:
    """A final no-answer gives a call without outcome `no_answer` and a new lead
    `unreachable`; a later busy call leaves a booked lead meeting_booked."""
    first_sid, second_sid = _sid(), _sid()
    await _seed_outbound_call(settings, call_sid=first_sid)
    assert (await twilio.status(first_sid, "no-answer")).status_code == 204
    call, lead, _ = await _load(settings, first_sid)
    assert call.outcome == "no_answer" and call.status == "no-answer"
    assert lead is not None and lead.status == "unreachable"
    engine, sessions = await _db(settings)
    async with sessions() as session:
        row = await session.get(Lead, lead.id)
        assert row is not None
        row.status = "meeting_booked"
        await session.commit()
    await engine.dispose()
    await _seed_outbound_call(settings, call_sid=second_sid)
    assert (await twilio.status(second_sid, "busy")).status_code == 204
    call, lead, _ = await _load(settings, second_sid)
    assert call.outcome == "no_answer"
    assert lead is not None and lead.status == "meeting_booked"
    assert (await twilio.status(second_sid, "failed")).status_code == 204
    call, _, _ = await _load(settings, second_sid)
    assert call.outcome == "no_answer"  # the first outcome stays


async def test_stream_mode_setting_keeps_media_streams_without_stt(
    database_url: str, tmp_path: Path
) -> None:
    """CONVERSATION_MODE=stream answers with <Connect><Stream> even with no STT provider."""
    settings = make_settings(
        database_url=database_url,
        twilio_auth_token=AUTH_TOKEN,  # without the SID no dialing worker starts
        tts_cache_dir=str(tmp_path / "tts"),
        conversation_mode="stream",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            side = TwilioSide(http, settings)
            answer = await side.answer(_sid())
    root = _xml(answer.text)
    assert root.find("Connect/Stream") is not None and root.find("Gather") is None


async def test_without_working_tts_twilio_says_the_text(database_url: str, tmp_path: Path) -> None:
    """When speech synthesis fails the greeting goes out as <Say language="he-IL">, so a
    deployment with only a Twilio account still talks."""
    settings = make_settings(
        database_url=database_url,
        twilio_auth_token=AUTH_TOKEN,
        tts_cache_dir=str(tmp_path / "tts"),
        espeak_voice="zz-no-such-voice",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            answer = await TwilioSide(http, settings).answer(_sid())
    say = _xml(answer.text).find("Gather/Say")
    assert say is not None and say.attrib["language"] == "he-IL"
    assert say.text and "נועה" in say.text
    assert not _plays(answer.text)


async def _attach_campaign(settings: Settings, call_sid: str, script: AgentScript) -> None:
    engine, sessions = await _db(settings)
    async with sessions() as session:
        campaign = Campaign(name="חורף", agent_script=script.model_dump(mode="json"))
        session.add(campaign)
        await session.flush()
        call = (await session.scalars(select(Call).where(Call.call_sid == call_sid))).one()
        call.campaign_id = campaign.id
        await session.commit()
    await engine.dispose()


@pytest.mark.parametrize("mode", ["gather", "stream"])
async def test_the_campaigns_agent_script_greets(
    database_url: str, tmp_path: Path, mode: str
) -> None:
    """The voice webhook greets with the call's campaign script: in gather mode the <Play>
    names carry its greeting; in stream mode its greeting is synthesized ahead of the stream."""
    from voicebot.providers.sentences import split_sentences
    from voicebot.telephony.audio_token import verify_audio_token

    script = AgentScript.default().model_copy(update={"agent_name": "מיכל"})
    settings = make_settings(
        database_url=database_url,
        twilio_auth_token=AUTH_TOKEN,
        tts_cache_dir=str(tmp_path / "tts"),
        conversation_mode=mode,
    )
    call_sid = _sid()
    await _seed_outbound_call(settings, call_sid=call_sid)
    await _attach_campaign(settings, call_sid, script)
    expected = script.render_greeting("דנה")
    assert "מיכל" in expected
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            answer = await TwilioSide(http, settings).answer(call_sid)
        services = app.state.voicebot.extras["call_services"]
        cached = [
            services.phrases.peek(services.tts.voice_id, s) for s in split_sentences(expected)
        ]
    if mode == "gather":
        names = [re.sub(r"^.*/|\.wav$", "", u) for u in _plays(answer.text)]
        spoken = [verify_audio_token(settings.stream_secret, n) for n in names]
        assert " ".join(s or "" for s in spoken) == expected
    else:
        assert _xml(answer.text).find("Connect/Stream") is not None
    assert all(audio is not None for audio in cached)


async def test_pressing_nine_opts_out_by_keypad(twilio: TwilioSide, settings: Settings) -> None:
    """Digits=9 in a <Gather> turn reaches the brain's DTMF path: do-not-call and hang up."""
    call_sid = _sid()
    await _seed_outbound_call(settings, call_sid=call_sid)
    first = await twilio.answer(call_sid)
    bye = await twilio.turn(first.text, call_sid, Digits="9")
    assert _xml(bye.text).find("Hangup") is not None
    call, lead, turns = await _load(settings, call_sid)
    assert call.outcome == "do_not_call"
    assert lead is not None and lead.status == "do_not_call"
    assert [t.role for t in turns] == ["assistant", "assistant"]


async def test_gather_for_another_calls_sid_is_404(twilio: TwilioSide, settings: Settings) -> None:
    """A signed turn whose CallSid does not own the call_id in the action URL is refused."""
    call_sid = _sid()
    await _seed_outbound_call(settings, call_sid=call_sid)
    first = await twilio.answer(call_sid)
    response = await twilio.turn(first.text, _sid(), SpeechResult="תוריד אותי מהרשימה")
    assert response.status_code == 404
    call, lead, _ = await _load(settings, call_sid)
    assert call.outcome is None
    assert lead is not None and lead.status == "new"


async def test_unknown_inbound_caller_becomes_a_lead_and_can_opt_out(
    twilio: TwilioSide, settings: Settings
) -> None:
    """An inbound call from an unknown number creates an 'inbound' lead, so an opt-out
    lands that number on do-not-call (a withheld number creates nothing)."""
    caller = "+972547654321"
    call_sid = _sid()
    form = {
        "CallSid": call_sid,
        "AccountSid": ACCOUNT_SID,
        "From": caller,
        "To": AGENT_NUMBER,
        "Direction": "inbound",
        "CallStatus": "ringing",
    }
    first = await twilio.post("/twilio/voice", form)
    assert first.status_code == 200, first.text
    await twilio.turn(first.text, call_sid, SpeechResult="תוריד אותי מהרשימה")
    withheld = await twilio.post("/twilio/voice", {**form, "CallSid": _sid(), "From": "anonymous"})
    assert withheld.status_code == 200
    call, lead, _ = await _load(settings, call_sid)
    assert call.outcome == "do_not_call"
    assert lead is not None and lead.phone == caller and lead.tags == ["inbound"]
    assert lead.status == "do_not_call"
    engine, sessions = await _db(settings)
    async with sessions() as session:
        dnc = [d.phone for d in (await session.scalars(select(DoNotCall))).all()]
        leads = [x.phone for x in (await session.scalars(select(Lead))).all()]
    await engine.dispose()
    assert dnc == [caller] and leads == [caller]


async def test_gather_speech_with_control_characters_is_cleaned(
    twilio: TwilioSide, settings: Settings
) -> None:
    """A SpeechResult laced with NUL, escape and bidi characters is stored and answered
    as its printable words, as a Media Stream transcript is."""
    call_sid = _sid()
    await _seed_outbound_call(settings, call_sid=call_sid)
    first = await twilio.answer(call_sid)
    answer = await twilio.turn(
        first.text, call_sid, SpeechResult="\u202bכן,\u200f אפשר\x00 \x1b\u200fלדבר\u202c\x7f"
    )
    assert answer.status_code == 200, answer.text
    _, _, turns = await _load(settings, call_sid)
    assert [t.text for t in turns if t.role == "user"] == ["כן, אפשר לדבר"]


async def test_a_database_failure_in_the_brain_is_apologised_for_and_the_call_goes_on(
    twilio: TwilioSide, settings: Settings
) -> None:
    """The caller asks for a meeting while the database fails the slot query: Twilio gets
    a Hebrew apology naming a technical problem inside the next <Gather> (not a 503 that
    Twilio reads out in English), the failure is logged once with the call, and once the
    database is back the caller is answered as usual."""
    call_sid = _sid()
    await _seed_outbound_call(settings, call_sid=call_sid)
    first = await twilio.answer(call_sid)
    async with _tables_away(settings, "meetings"):
        with capture_logs() as logs:
            sorry = await twilio.turn(first.text, call_sid, SpeechResult="אני רוצה לקבוע פגישה")
    assert sorry.status_code == 200, sorry.text
    assert _xml(sorry.text).find("Gather") is not None
    failures = [e for e in logs if e["log_level"] in ("warning", "error")]
    assert [e["event"] for e in failures] == ["call.gather_turn_failed"], failures
    assert failures[0]["call_sid"] == call_sid
    assert failures[0]["error"] in {"OperationalError", "ProgrammingError"}
    _, _, turns = await _load(settings, call_sid)
    assert turns[-1].role == "assistant" and turns[-1].text == SYSTEM_APOLOGY_TEXT
    again = await twilio.turn(sorry.text, call_sid, SpeechResult="אני רוצה לקבוע פגישה")
    assert again.status_code == 200 and _xml(again.text).find("Gather") is not None
    _, _, turns = await _load(settings, call_sid)
    assert turns[-1].text != SYSTEM_APOLOGY_TEXT


async def test_a_database_down_at_a_turn_ends_the_call_with_a_hebrew_goodbye(
    twilio: TwilioSide, settings: Settings
) -> None:
    """The database cannot be read when a turn arrives (the call row is out of reach):
    Twilio gets the Hebrew technical-problem goodbye and <Hangup/> (not a 5xx read out in
    English), logged once with the call SID."""
    call_sid = _sid()
    await _seed_outbound_call(settings, call_sid=call_sid)
    first = await twilio.answer(call_sid)
    async with _tables_away(settings, "calls"):
        with capture_logs() as logs:
            bye = await twilio.turn(first.text, call_sid, SpeechResult="כן, אפשר לדבר")
    assert bye.status_code == 200, bye.text
    root = _xml(bye.text)
    assert root.find("Hangup") is not None and root.find("Gather") is None
    assert _plays(bye.text) or ERROR_GOODBYE_TEXT in bye.text
    failures = [e for e in logs if e["log_level"] in ("warning", "error")]
    assert [e["event"] for e in failures] == ["call.gather_db_unavailable"], failures
    assert failures[0]["call_sid"] == call_sid


@pytest.mark.parametrize(
    "said", [{"Digits": "9"}, {"SpeechResult": "תורידו אותי מהרשימה"}], ids=["key9", "words"]
)
async def test_an_opt_out_while_the_database_is_down_is_kept_and_answered_as_one(
    app: Starlette, twilio: TwilioSide, settings: Settings, said: dict[str, str]
) -> None:
    """The caller asks to be removed (key 9 or the words) while neither the call row nor
    the do-not-call list can be reached: the opt-out is kept in the outbox by the number
    Twilio posts, the caller hears the removal goodbye (not the error goodbye), and the
    drain puts the number on do-not-call once the database is back."""
    call_sid = _sid()
    await _seed_outbound_call(settings, call_sid=call_sid)
    first = await twilio.answer(call_sid)
    outbox = app.state.voicebot.extras["call_services"].optouts
    engine, sessions = await _db(settings)
    twilio_fields = {"From": AGENT_NUMBER, "To": LEAD_PHONE, "Direction": "outbound-api"}
    async with _tables_away(settings, "calls", "do_not_call"):
        with capture_logs() as logs:
            bye = await twilio.turn(first.text, call_sid, **twilio_fields, **said)
    assert bye.status_code == 200, bye.text
    root = _xml(bye.text)
    assert root.find("Hangup") is not None and root.find("Gather") is None
    unavailable = [e for e in logs if e["event"] == "call.gather_db_unavailable"]
    assert len(unavailable) == 1 and unavailable[0]["opted_out"] is True, logs
    assert [e["event"] for e in logs if e["event"].startswith("optout.")] == ["optout.deferred"]
    kept = await outbox.peek(10)
    assert len(kept) == 1 and LEAD_PHONE in kept[0]
    assert await drain_outbox(outbox, sessions, settings) == 1
    async with sessions() as session:
        rows = (await session.scalars(select(DoNotCall).where(DoNotCall.phone == LEAD_PHONE))).all()
    await engine.dispose()
    assert len(rows) == 1


async def _refuse_turn_inserts(engine: AsyncEngine) -> None:
    """Every insert into call_turns fails (a BEFORE INSERT trigger raising, Postgres)."""
    async with engine.begin() as db:
        await db.execute(
            text(
                "CREATE FUNCTION brk_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'disk full'; END $$"
            )
        )
        await db.execute(
            text(
                "CREATE TRIGGER brk_refuse BEFORE INSERT ON call_turns "
                "FOR EACH ROW EXECUTE FUNCTION brk_refuse()"
            )
        )


async def _accept_turn_inserts(engine: AsyncEngine) -> None:
    async with engine.begin() as db:
        await db.execute(text("DROP TRIGGER brk_refuse ON call_turns"))
        await db.execute(text("DROP FUNCTION brk_refuse()"))


async def test_a_greeting_whose_words_cannot_be_stored_is_still_answered_in_time(
    twilio: TwilioSide, settings: Settings, database_url: str
) -> None:
    """The call row is written but the greeting's turn cannot be (call_turns refuses every
    insert, Postgres): the voice webhook still answers with the first <Gather> in time."""
    if not database_url.startswith("postgres"):
        pytest.skip("the failing insert is a Postgres trigger")
    call_sid = _sid()
    await _seed_outbound_call(settings, call_sid=call_sid)
    engine, _ = await _db(settings)
    await _refuse_turn_inserts(engine)
    try:
        started = time.monotonic()
        async with asyncio.timeout(12):
            first = await twilio.answer(call_sid)
        took_s = time.monotonic() - started
    finally:
        await _accept_turn_inserts(engine)
        await engine.dispose()
    assert first.status_code == 200, first.text
    assert _xml(first.text).find("Gather") is not None
    assert took_s < 8.0


async def test_a_turn_whose_words_cannot_be_stored_is_still_answered_in_time(
    twilio: TwilioSide, settings: Settings, database_url: str
) -> None:
    """The call is read but every insert of its turns fails (a trigger raising on
    call_turns, Postgres): Twilio still gets the next <Gather> well inside its 15 s, not
    a webhook that waits on the writer until Twilio gives up and speaks English."""
    if not database_url.startswith("postgres"):
        pytest.skip("the failing insert is a Postgres trigger")
    call_sid = _sid()
    await _seed_outbound_call(settings, call_sid=call_sid)
    first = await twilio.answer(call_sid)
    engine, _ = await _db(settings)
    await _refuse_turn_inserts(engine)
    try:
        started = time.monotonic()
        async with asyncio.timeout(12):
            reply = await twilio.turn(first.text, call_sid, SpeechResult="כן, אפשר לדבר")
        took_s = time.monotonic() - started
    finally:
        await _accept_turn_inserts(engine)
        await engine.dispose()
    assert reply.status_code == 200, reply.text
    assert _xml(reply.text).find("Gather") is not None
    assert took_s < 8.0


async def test_a_database_failing_after_the_call_row_at_the_greeting_is_a_503_not_a_500(
    twilio: TwilioSide, settings: Settings
) -> None:
    """The voice webhook writes the call row, then the greeting cannot read the call's
    turns (call_turns renamed away): the answer is the webhook's 503 "retry" with one
    log, not an unhandled 500."""
    call_sid = _sid()
    await _seed_outbound_call(settings, call_sid=call_sid)
    async with _tables_away(settings, "call_turns"):
        with capture_logs() as logs:
            first = await twilio.answer(call_sid)
    assert first.status_code == 503, first.text
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "call.gather_greeting_failed"
    ]


async def test_gather_silence_count_resets_when_the_caller_speaks_and_follows_the_setting(
    database_url: str, tmp_path: Path
) -> None:
    """SILENCE_MAX_PROMPTS=3 on a <Gather> call: silent, then speaking, then silent twice
    is still checked in on (the words reset the count); the third silence in a row ends
    the call as no_answer."""
    settings = make_settings(
        database_url=database_url,
        twilio_auth_token=AUTH_TOKEN,
        transfer_number=TRANSFER_NUMBER,
        tts_cache_dir=str(tmp_path / "tts"),
        silence_max_prompts=3,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            side = TwilioSide(http, settings)
            call_sid = _sid()
            await _seed_outbound_call(settings, call_sid=call_sid)
            last = await side.answer(call_sid)
            for said in ("", "", "כן, אפשר לדבר", "", ""):
                last = await side.turn(last.text, call_sid, SpeechResult=said)
                assert _xml(last.text).find("Gather") is not None, (said, last.text)
            bye = await side.turn(last.text, call_sid, SpeechResult="")
            assert _xml(bye.text).find("Hangup") is not None
    call, _, _ = await _load(settings, call_sid)
    assert call.outcome == "no_answer"
