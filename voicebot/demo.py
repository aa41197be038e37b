"""``voicebot demo``: one simulated Hebrew call, end to end, against an in-process server.

Owns the newcomer's first run. On the embedded defaults (the SQLite database ``make
run`` uses, in-process state, the rule-based brain, espeak-ng) it migrates the
database, starts the provider simulator as speech recognition and the server on a free
loopback port, creates (or reuses) a demo lead, and places one call with the simulated
Twilio caller. The caller speaks scripted Hebrew (espeak-ng), choosing each answer from
what the agent just asked, until the agent books a meeting. Each line is printed as it
happens, with the turn latency (end of caller speech → first agent audio); then the
meeting is read back from the database and a stereo WAV (caller left, agent right) is
saved.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot.config import Settings
from voicebot.db.engine import create_engine, create_sessionmaker
from voicebot.db.models import Call, Lead, Meeting
from voicebot.demo_caller import CALLER_PHRASES, DemoLine, converse
from voicebot.testing.hebrew_audio import synthesize_hebrew
from voicebot.testing.provider_sim import ProviderSim, SimConfig
from voicebot.testing.server import free_port, running_server

# Known to both sides only inside this process: the demo's own server and caller.
DEMO_AUTH_TOKEN = "voicebot-demo-token"  # noqa: S105 - a public demo value, not a secret
DEMO_ACCOUNT_SID = "AC" + "d" * 32
DEMO_LEAD_PHONE = "+972541234567"
DEMO_LEAD_NAME = "דנה"
DEMO_LEAD_COMPANY = "מספרת דנה"
DEMO_FROM_NUMBER = "+97233769999"
DEFAULT_WAV_PATH = Path("demo-call.wav")
DEFAULT_AUDIO_CACHE = Path(".cache/hebrew_audio")
DEMO_TIMEOUT_S = 120.0

STT_NOTICE = (
    "speech recognition: provider simulator "
    "(stands in for OpenAI STT; recognises the demo's scripted phrases)"
)


@dataclass(frozen=True, slots=True)
class StoredMeeting:
    """The meeting as the database holds it."""

    meeting_id: int
    lead_id: int
    start_local: str
    end_local: str
    notes: str | None


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What one demo run did; ``meeting`` is None when no meeting was stored."""

    call_sid: str
    lines: tuple[DemoLine, ...]
    meeting: StoredMeeting | None
    wav_path: Path
    duration_s: float


def demo_settings(base: Settings, *, port: int, stt_base_url: str) -> Settings:
    """``base`` on embedded defaults, with the simulator as STT and a demo Twilio token."""
    update: dict[str, object] = {
        "public_base_url": f"http://127.0.0.1:{port}",
        "twilio_auth_token": SecretStr(DEMO_AUTH_TOKEN),
        "twilio_account_sid": None,  # no Twilio REST: the call ends when the stream closes
        "twilio_validate_signatures": True,
        "redis_url": None,
        "api_key": None,
        "openai_api_key": None,
        "openai_base_url": None,
        "llm_base_url": None,
        "llm_api_key": None,
        "tts_base_url": None,
        "tts_api_key": None,
        "stt_base_url": stt_base_url,
        "stt_api_key": SecretStr("sim-key"),
        "log_level": "WARNING",
        "conversation_mode": "stream",
    }
    return base.model_copy(update=update)


async def run_demo(
    settings: Settings,
    *,
    wav_path: Path = DEFAULT_WAV_PATH,
    audio_cache_dir: Path = DEFAULT_AUDIO_CACHE,
    out: Callable[[str], None] = print,
) -> DemoResult:
    """Run the demo call on ``settings``' database; print as it goes; save the WAV."""
    from voicebot.cli import migrate

    started = time.monotonic()
    async with asyncio.timeout(DEMO_TIMEOUT_S):
        await asyncio.to_thread(migrate, settings)
        speech = await _caller_speech(audio_cache_dir)
        async with ProviderSim(SimConfig(seed=1)) as sim:
            for text, pcm16 in speech.items():
                sim.register_phrase(text, pcm16)
            port = free_port()
            server_settings = demo_settings(settings, port=port, stt_base_url=sim.base_url)
            engine = create_engine(server_settings)
            try:
                sessions = create_sessionmaker(engine)
                lead = await _demo_lead(sessions)
                async with running_server(server_settings, port=port) as base_url:
                    out("voicebot demo: one simulated phone call, end to end")
                    out(f"  server: {base_url} (in-process; database {settings.database_url})")
                    out(f"  {STT_NOTICE}")
                    out("  brain: rule-based Hebrew agent · agent voice: espeak-ng")
                    out("  caller: simulated Twilio Media Streams caller speaking espeak-ng Hebrew")
                    out(f"  lead #{lead.id}: {lead.name}, {lead.company} ({lead.phone})")
                    out("")
                    call_sid, lines, wav = await converse(
                        base_url,
                        sessions,
                        speech,
                        out,
                        account_sid=DEMO_ACCOUNT_SID,
                        auth_token=DEMO_AUTH_TOKEN,
                        lead_phone=DEMO_LEAD_PHONE,
                        from_number=DEMO_FROM_NUMBER,
                    )
                meeting = await _stored_meeting(sessions, call_sid, settings)
            finally:
                await engine.dispose()
    await asyncio.to_thread(wav_path.write_bytes, wav)
    out("")
    if meeting is None:
        out("no meeting was stored")
    else:
        out(
            f"meeting stored: #{meeting.meeting_id} for lead #{meeting.lead_id}, "
            f"{meeting.start_local}–{meeting.end_local} ({settings.timezone})"
        )
        out(f"  notes: {meeting.notes}")
    out(f"recording: {wav_path} (stereo: caller left, agent right)")
    return DemoResult(
        call_sid=call_sid,
        lines=tuple(lines),
        meeting=meeting,
        wav_path=wav_path,
        duration_s=time.monotonic() - started,
    )


async def _caller_speech(cache_dir: Path) -> dict[str, bytes]:
    """Each scripted caller phrase as 8 kHz PCM16 (espeak-ng, cached)."""
    speech: dict[str, bytes] = {}
    for text in dict.fromkeys(CALLER_PHRASES):
        speech[text] = await asyncio.to_thread(synthesize_hebrew, text, cache_dir=cache_dir)
    return speech


async def _demo_lead(sessions: async_sessionmaker[AsyncSession]) -> Lead:
    async with sessions() as session:
        lead = (await session.scalars(select(Lead).where(Lead.phone == DEMO_LEAD_PHONE))).first()
        if lead is None:
            lead = Lead(phone=DEMO_LEAD_PHONE, name=DEMO_LEAD_NAME, company=DEMO_LEAD_COMPANY)
            session.add(lead)
            await session.commit()
        return lead


async def _stored_meeting(
    sessions: async_sessionmaker[AsyncSession], call_sid: str, settings: Settings
) -> StoredMeeting | None:
    stmt = select(Meeting).join(Call, Call.id == Meeting.call_id).where(Call.call_sid == call_sid)
    async with sessions() as session:
        meeting = (await session.scalars(stmt)).first()
    if meeting is None:
        return None
    tz = settings.tz
    return StoredMeeting(
        meeting_id=meeting.id,
        lead_id=meeting.lead_id,
        start_local=meeting.start_at.astimezone(tz).strftime("%a %Y-%m-%d %H:%M"),
        end_local=meeting.end_at.astimezone(tz).strftime("%H:%M"),
        notes=meeting.notes,
    )


def run_command(settings: Settings, *, wav_path: Path) -> int:
    """``voicebot demo``: exit status 0 only when the call stored its meeting."""
    from sqlalchemy.exc import SQLAlchemyError

    from voicebot.testing.hebrew_audio import espeak_available
    from voicebot.testing.twilio_caller import CallNotConnectedError

    if not espeak_available():
        print("voicebot demo needs espeak-ng: sudo apt-get install -y espeak-ng", file=sys.stderr)
        return 1
    failures: list[BaseException] = []
    result: DemoResult | None = None
    try:
        result = asyncio.run(run_demo(settings, wav_path=wav_path))
    except* (TimeoutError, OSError, CallNotConnectedError, SQLAlchemyError) as group:
        failures.extend(group.exceptions)
    if result is None:
        reasons = "; ".join(f"{type(e).__name__}: {e}" for e in failures)
        print(f"voicebot demo failed: {reasons}", file=sys.stderr)
        return 1
    print(f"done in {result.duration_s:.1f} s")
    return 0 if result.meeting is not None else 1
