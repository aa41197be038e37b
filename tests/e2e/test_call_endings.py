"""How a live call ends: transfer and hang-up only after the agent's last sentence has
played, and the max-duration limit (goodbye, then hang-up) — over real loopback HTTP and
websockets with the Twilio caller, the Twilio REST simulator and the OpenAI-compatible STT."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import call_server_settings
from voicebot.audio.codec import pcm16_to_ulaw
from voicebot.testing.hebrew_audio import synthesize_hebrew
from voicebot.testing.provider_sim import (
    ProviderSim,
    Rule,
    ScriptedResponder,
    SimConfig,
    SimToolCall,
    StageBehaviour,
)
from voicebot.testing.server import free_port, running_server
from voicebot.testing.twilio_api_sim import SimulatedCall as RestCall
from voicebot.testing.twilio_api_sim import TwilioApiSimulator, serve_on_loopback
from voicebot.testing.twilio_caller import DEFAULT_TO, SimulatedCall, place_call

ACCOUNT_SID = "AC" + "2" * 32
AUTH_TOKEN = "endings-auth-token"
AUDIO_CACHE = Path(".cache/hebrew_audio")
TRANSFER_NUMBER = "+972501234567"
StartServer = Callable[..., AbstractAsyncContextManager[str]]
ASK_HUMAN = "אני רוצה לדבר עם נציג"
REMOVE_ME = "תורידו אותי מהרשימה שלכם בבקשה"
ANSWER = "כן, אפשר לדבר עכשיו"


@pytest.fixture
async def sim() -> AsyncIterator[ProviderSim]:
    async with ProviderSim(SimConfig(seed=5)) as running:
        for phrase in (ASK_HUMAN, REMOVE_ME):
            running.register_phrase(phrase, _speech_pcm(phrase), 8000)
        yield running


@pytest.fixture
async def twilio_api() -> AsyncIterator[tuple[TwilioApiSimulator, str]]:
    api = TwilioApiSimulator(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
    async with serve_on_loopback(api.app) as url:
        yield api, url


@pytest.fixture
def server(
    tmp_path: Path, sim: ProviderSim, twilio_api: tuple[TwilioApiSimulator, str]
) -> StartServer:
    def start(**overrides: object) -> AbstractAsyncContextManager[str]:
        port = free_port()
        settings = call_server_settings(
            tmp_path,
            port=port,
            sim=sim,
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            twilio_api_base_url=twilio_api[1],
            transfer_number=TRANSFER_NUMBER,
            **overrides,
        )
        return running_server(settings, port=port)

    return start


def _speech_pcm(text: str) -> bytes:
    return synthesize_hebrew(text, cache_dir=AUDIO_CACHE)


def _live_at_twilio(api: TwilioApiSimulator, call_sid: str) -> None:
    """The inbound call as Twilio's REST API knows it, so updates to it succeed."""
    api.calls[call_sid] = RestCall(
        sid=call_sid,
        to="+97231234567",
        from_="+972541234567",
        status="in-progress",
        created_at=datetime.now(UTC),
    )


async def _first_update_while_watching(
    api: TwilioApiSimulator, call: SimulatedCall, call_sid: str, timeout_s: float
) -> tuple[bool, int]:
    """Wait for the first REST update of the call; report whether the caller's playback
    was still busy at that moment and how many marks had come back by then."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if api.updates_for(call_sid):
            return call.playback.busy, len(call.metrics.marks)
        await asyncio.sleep(0.005)
    raise AssertionError("the server never updated the call through the REST API")


async def _ended_call(base: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """The first call's detail once its outcome is stored: the session stores it after the
    socket closes (its queued turns first), so it may land just after the hang-up."""
    async with httpx.AsyncClient(base_url=base) as http, asyncio.timeout(timeout_s):
        calls = (await http.get("/api/v1/calls")).json()["items"]
        while True:
            detail: dict[str, Any] = (await http.get(f"/api/v1/calls/{calls[0]['id']}")).json()
            if detail["outcome"] is not None:
                return detail
            await asyncio.sleep(0.05)


async def _greeting_heard(call: SimulatedCall) -> None:
    await call.wait_for_greeting(20)


async def test_transfer_dials_the_human_only_after_the_last_sentence_played(
    server: StartServer, twilio_api: tuple[TwilioApiSimulator, str]
) -> None:
    """Asking for a human: the agent says it is transferring, and the <Dial> update reaches
    Twilio only once that sentence has played out (its mark came back)."""
    api, _ = twilio_api
    sid = "CA" + "a1" * 16
    _live_at_twilio(api, sid)
    async with (
        server() as base,
        place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=sid) as call,
    ):
        await _greeting_heard(call)
        marks_before = len(call.metrics.marks)
        call.say(pcm16_to_ulaw(_speech_pcm(ASK_HUMAN)))
        busy, marks = await _first_update_while_watching(api, call, sid, 30)
    assert not busy
    assert marks > marks_before
    updates = api.updates_for(sid)
    assert len(updates) == 1
    document = updates[0].value("Twiml") or ""
    assert "<Dial>" in document and TRANSFER_NUMBER in document


async def test_end_call_hangs_up_once_after_the_goodbye_played(
    server: StartServer, twilio_api: tuple[TwilioApiSimulator, str]
) -> None:
    """An opt-out ends the call: goodbye first, then exactly one `Status=completed`."""
    api, _ = twilio_api
    sid = "CA" + "b2" * 16
    _live_at_twilio(api, sid)
    async with server() as base:
        async with httpx.AsyncClient(base_url=base) as http:
            lead = await http.post("/api/v1/leads", json={"name": "דנה כהן", "phone": DEFAULT_TO})
            assert lead.status_code == 201, lead.text
        async with place_call(
            base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=sid
        ) as call:
            await _greeting_heard(call)
            marks_before = len(call.metrics.marks)
            call.say(pcm16_to_ulaw(_speech_pcm(REMOVE_ME)))
            busy, marks = await _first_update_while_watching(api, call, sid, 30)
            await asyncio.sleep(0.5)
        async with httpx.AsyncClient(base_url=base) as http:
            dnc = (await http.get("/api/v1/do-not-call")).json()
    assert not busy and marks > marks_before
    assert [u.value("Status") for u in api.updates_for(sid)] == ["completed"]
    assert api.calls[sid].status == "completed"
    assert [item["phone"] for item in dnc["items"]] == [DEFAULT_TO]


async def test_the_stream_closes_at_the_hang_up_not_after_the_calls_bookkeeping(
    server: StartServer, twilio_api: tuple[TwilioApiSimulator, str], sim: ProviderSim
) -> None:
    """The model opts the caller out: goodbye, hang-up, and the stream closes at once (1000),
    while the call's summary request still hangs; the outcome is stored after the close.
    (The socket used to stay open until the summary and the outcome were written: up to
    the summary's 6 s timeout after the goodbye, and a load run's caller, already saying
    its next line, counted the late close as a call dropped without a reply.)"""
    api, _ = twilio_api
    sid = "CA" + "e5" * 16
    _live_at_twilio(api, sid)
    sim.responder = ScriptedResponder([Rule("תורידו", tool=SimToolCall("add_to_do_not_call"))])
    # Only the end-of-call summary request (its user message opens with the outcome) hangs.
    sim.config.llm = StageBehaviour(hang=True, only_matching="^תוצאה רשומה")
    async with server(llm_base_url=sim.base_url, llm_api_key="sim-key") as base:
        async with place_call(
            base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=sid
        ) as call:
            await _greeting_heard(call)
            call.say(pcm16_to_ulaw(_speech_pcm(REMOVE_ME)))
            await _first_update_while_watching(api, call, sid, 30)
            await call.wait_until(lambda: call.ended, 10)
            async with httpx.AsyncClient(base_url=base) as http:
                items = (await http.get("/api/v1/calls")).json()["items"]
            assert (call.close_code, call.close_reason) == (1000, "brain_end")
            assert [item["outcome"] for item in items] == [None]  # stored after the close
        detail = await _ended_call(base, timeout_s=20)
    assert detail["outcome"] == "do_not_call"
    assert [u.value("Status") for u in api.updates_for(sid)] == ["completed"]


async def test_the_stream_closes_after_the_goodbye_without_waiting_for_a_slow_rest_hang_up(
    server: StartServer, twilio_api: tuple[TwilioApiSimulator, str]
) -> None:
    """Twilio's API answers in 3 s: the opt-out's goodbye plays, the stream closes (which
    ends a <Connect><Stream> call at Twilio), and the REST hang-up lands after it. (The
    close used to wait for the REST answer: at 100 loaded calls, 6 s after the goodbye,
    while the load generator's caller was already saying its next line.)"""
    api, _ = twilio_api
    sid = "CA" + "f6" * 16
    _live_at_twilio(api, sid)
    api.response_delay_s = 3.0
    async with server() as base:
        async with place_call(
            base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=sid
        ) as call:
            await _greeting_heard(call)
            call.say(pcm16_to_ulaw(_speech_pcm(REMOVE_ME)))
            await call.wait_until(lambda: call.ended, 30)
            status_at_close = api.calls[sid].status
            assert (call.close_code, call.close_reason) == (1000, "brain_end")
        await _ended_call(base, timeout_s=20)
    assert status_at_close == "in-progress"  # the hang-up was still on its way
    assert [u.value("Status") for u in api.updates_for(sid)] == ["completed"]
    assert api.calls[sid].status == "completed"


async def test_max_duration_cuts_in_says_goodbye_and_hangs_up(
    server: StartServer, twilio_api: tuple[TwilioApiSimulator, str]
) -> None:
    """At the duration limit the agent stops mid-greeting (`clear`), says goodbye, and
    hangs up through the REST API after the goodbye played."""
    api, _ = twilio_api
    sid = "CA" + "c3" * 16
    _live_at_twilio(api, sid)
    async with server(max_call_duration_s=2) as base:
        async with place_call(
            base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=sid
        ) as call:
            busy, _ = await _first_update_while_watching(api, call, sid, 30)
            assert call.metrics.clears >= 1
            assert not busy
        detail = await _ended_call(base)
    assert [u.value("Status") for u in api.updates_for(sid)] == ["completed"]
    last = [t for t in detail["turns"] if t["role"] == "assistant"][-1]
    assert last["intent"] == "max_duration"


async def test_silence_checks_in_only_when_both_sides_are_quiet_then_ends(
    server: StartServer, twilio_api: tuple[TwilioApiSimulator, str], sim: ProviderSim
) -> None:
    """The check-in clock runs only while nobody talks: speech right after the greeting is
    answered (no check-in over it); then silence brings a check-in, a goodbye and a hang-up."""
    api, _ = twilio_api
    sid = "CA" + "d4" * 16
    _live_at_twilio(api, sid)
    sim.register_phrase(ANSWER, _speech_pcm(ANSWER), 8000)
    async with server(silence_checkin_s=1.0) as base:
        async with place_call(
            base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=sid
        ) as call:
            await _greeting_heard(call)
            call.say(pcm16_to_ulaw(_speech_pcm(ANSWER)))
            await _first_update_while_watching(api, call, sid, 40)
        detail = await _ended_call(base)
    turns = [(t["role"], t["intent"]) for t in detail["turns"]]
    assert turns[:2] == [("assistant", "greeting"), ("user", None)]
    assert turns[-2:] == [("assistant", "silence"), ("assistant", "silence")]
    assert [u.value("Status") for u in api.updates_for(sid)] == ["completed"]
    assert detail["outcome"] == "no_answer"


@pytest.mark.parametrize("max_prompts", [2, 3])
async def test_a_caller_who_never_speaks_is_prompted_then_told_goodbye_and_hung_up(
    server: StartServer, twilio_api: tuple[TwilioApiSimulator, str], max_prompts: int
) -> None:
    """The caller sends only silence frames: after SILENCE_MAX_PROMPTS unanswered prompts
    (the greeting, then check-ins) the agent says a short goodbye, hangs up over REST and
    closes the stream with the end reason ``silence``."""
    api, _ = twilio_api
    sid = "CA" + f"{max_prompts:02d}" * 16
    _live_at_twilio(api, sid)
    async with server(silence_checkin_s=1.0, silence_max_prompts=max_prompts) as base:
        async with place_call(
            base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=sid
        ) as call:
            await _first_update_while_watching(api, call, sid, 40)
            await call.wait_until(lambda: call.ended, 10)
            assert (call.close_code, call.close_reason) == (1000, "silence")
            assert call.metrics.clears == 0  # every prompt and the goodbye played whole
        detail = await _ended_call(base)
    said = [(t["role"], t["intent"], t["text"]) for t in detail["turns"]]
    assert [role for role, _, _ in said] == ["assistant"] * (max_prompts + 1)
    assert [intent for _, intent, _ in said] == ["greeting"] + ["silence"] * max_prompts
    check_ins, goodbye = [text for _, _, text in said[1:-1]], said[-1][2]
    assert all("שומעים" in text for text in check_ins)
    assert "יום טוב" in goodbye
    assert [u.value("Status") for u in api.updates_for(sid)] == ["completed"]
    assert detail["outcome"] == "no_answer"
