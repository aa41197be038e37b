"""What every end-to-end call test shares: espeak-ng present, one server configuration
(SQLite, Twilio signatures on, the provider simulator as STT), the caller's cached Hebrew
speech, the simulator that recognises it, the running call server, a frozen Tuesday
morning for calls that book "מחר", and a call session run in-process without a server
(its services and a session on a new call row)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import time_machine

from tests.conftest import REQUIRE_SERVICES, make_settings
from voicebot.brain.base import ConversationState
from voicebot.call.services import CallServices
from voicebot.call.session import CallSession
from voicebot.call.wiring import build_call_services
from voicebot.cli import migrate
from voicebot.config import Settings
from voicebot.db.engine import (
    create_autocommit_engine,
    create_engine,
    create_sessionmaker,
    dispose_engines,
)
from voicebot.db.models import Call, CallStatus
from voicebot.metrics import Metrics
from voicebot.providers.factory import build_providers
from voicebot.store.resilient import ResilientStore
from voicebot.testing.hebrew_audio import synthesize_hebrew
from voicebot.testing.provider_sim import ProviderSim, SimConfig
from voicebot.testing.server import free_port, running_server
from voicebot.testing.twilio_caller import post_voice_webhook, stream_from_twiml

AUDIO_CACHE = Path(".cache/hebrew_audio")
"""espeak-ng renderings of the callers' lines, kept across runs."""
TZ = ZoneInfo("Asia/Jerusalem")
TUESDAY_9AM = datetime(2026, 3, 10, 9, 0, tzinfo=TZ)
"""The wall clock of `frozen_clock`: Wednesday 11 March is a working day."""
SPEECH_RATE_HZ = 8000


@pytest.fixture(autouse=True)
def _need_espeak() -> None:
    if shutil.which("espeak-ng") is None:
        message = "espeak-ng is not installed"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)


def call_server_settings(
    tmp_path: Path,
    *,
    port: int,
    sim: ProviderSim,
    account_sid: str,
    auth_token: str,
    **overrides: Any,
) -> Settings:
    """Settings of a migrated SQLite server on ``port`` that transcribes through ``sim``."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}"
    migrate(make_settings(database_url=url))
    values: dict[str, Any] = {
        "database_url": url,
        "public_base_url": f"http://127.0.0.1:{port}",
        "twilio_account_sid": account_sid,
        "twilio_auth_token": auth_token,
        "stt_base_url": sim.base_url,
        "stt_api_key": "sim-key",
        "tts_cache_dir": str(tmp_path / "tts"),
    }
    values.update(overrides)
    return make_settings(**values)


def hebrew_speech(text: str) -> bytes:
    """The caller saying ``text``: 8 kHz PCM16 from espeak-ng, cached in AUDIO_CACHE."""
    return synthesize_hebrew(text, cache_dir=AUDIO_CACHE)


@contextlib.asynccontextmanager
async def recognising_sim(*, seed: int, phrases: Iterable[str]) -> AsyncIterator[ProviderSim]:
    """A running provider simulator whose STT recognises each of ``phrases`` as spoken by
    :func:`hebrew_speech`."""
    async with ProviderSim(SimConfig(seed=seed)) as running:
        for phrase in phrases:
            running.register_phrase(phrase, hebrew_speech(phrase), SPEECH_RATE_HZ)
        yield running


@contextlib.asynccontextmanager
async def call_server(
    tmp_path: Path,
    sim: ProviderSim,
    *,
    account_sid: str,
    auth_token: str,
    ws: Any = None,
    **overrides: Any,
) -> AsyncIterator[tuple[str, Settings]]:
    """The call server of :func:`call_server_settings` under uvicorn on a free port; its
    base URL and settings. ``ws``: another websocket protocol (see ``running_server``)."""
    port = free_port()
    settings = call_server_settings(
        tmp_path, port=port, sim=sim, account_sid=account_sid, auth_token=auth_token, **overrides
    )
    async with running_server(settings, port=port, ws=ws) as base:
        yield base, settings


async def stored_turns(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The turns stored for the newest call, once it is completed (turns are written off
    the speaking path; waits up to ~5 s, then returns what is stored)."""
    detail: dict[str, Any] = {}
    for _ in range(50):
        calls = (await http.get("/api/v1/calls")).json()["items"]
        detail = (await http.get(f"/api/v1/calls/{calls[0]['id']}")).json()
        if detail["status"] == "completed":
            break
        await asyncio.sleep(0.1)
    turns: list[dict[str, Any]] = detail["turns"]
    return turns


@pytest.fixture
def frozen_clock() -> Iterator[None]:
    """The wall clock at TUESDAY_9AM in Israel, ticking (asyncio's monotonic clock is
    untouched), so "tomorrow at ten" is a business-hours slot whatever day the suite runs."""
    with time_machine.travel(TUESDAY_9AM, tick=True):
        yield


async def answer_call(
    base: str, *, account_sid: str, auth_token: str, call_sid: str
) -> tuple[str, dict[str, str]]:
    """Twilio's signed voice webhook for ``call_sid`` (an Israeli mobile calling the
    business): the stream URL and ``<Parameter>``s of the TwiML it answered."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await post_voice_webhook(
            http,
            base,
            account_sid=account_sid,
            auth_token=auth_token,
            call_sid=call_sid,
            from_number="+972501234567",
            to_number="+97233769999",
        )
    return stream_from_twiml(response.status_code, response.text)


@contextlib.asynccontextmanager
async def local_call_services(tmp_path: Path, **overrides: Any) -> AsyncIterator[CallServices]:
    """What a :class:`CallSession` runs on, in this process and without a server: a migrated
    SQLite database and the TTS cache in ``tmp_path``, the configured providers (espeak-ng),
    no Redis; ``overrides`` are settings. Providers and engines are closed on exit."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}"
    migrate(make_settings(database_url=url))
    settings = make_settings(database_url=url, tts_cache_dir=str(tmp_path / "tts"), **overrides)
    engine = create_engine(settings)
    autocommit = create_autocommit_engine(settings, engine)
    providers = build_providers(settings)
    try:
        yield build_call_services(
            settings,
            metrics=Metrics(),
            sessions=create_sessionmaker(engine),
            autocommit=create_sessionmaker(autocommit),
            store=ResilientStore(None),
            providers=providers,
        )
    finally:
        await providers.aclose()
        await dispose_engines(engine, autocommit)


async def local_session(
    services: CallServices,
    call_sid: str,
    *,
    send_media: Callable[[bytes], Awaitable[None]],
    send_mark: Callable[[str], Awaitable[None]],
    send_clear: Callable[[], Awaitable[None]],
) -> CallSession:
    """A session (not yet run) on a new in-progress inbound call row ``call_sid``, sending
    through the given callables (Twilio's side of the socket, as the test plays it)."""
    async with services.sessions() as db:
        call = Call(call_sid=call_sid, direction="inbound", status=CallStatus.IN_PROGRESS)
        db.add(call)
        await db.commit()
        call_id = call.id
    return CallSession(
        services=services,
        call_id=call_id,
        call_sid=call_sid,
        state=ConversationState(),
        send_media=send_media,
        send_mark=send_mark,
        send_clear=send_clear,
    )
