"""Attacks on the live call's machine check (issue #13 items 1-2) on a real Media Stream
with the Twilio simulator: AMD's verdict and the transcript check landing together act
once; the database failing during the check does not leave a machine on a silent line;
an announcement the recogniser cannot read (empty transcript) over the greeting does
not end the screening, and the recording that follows is still caught; a verdict that
arrives before the call's row exists does not take the check's token."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.test_machine_speech_call import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    TO,
    VOICEMAIL,
    Rig,
    _dial,
    _rows,
    _speech,
    _until,
    machine_rig,
)
from voicebot.audio.codec import pcm16_to_ulaw
from voicebot.testing.provider_sim import ProviderSim
from voicebot.testing.twilio_caller import place_call

UNREADABLE = "המנוי אליו חייגת אינו זמין כרגע, נא נסו שנית מאוחר יותר"
"""Spoken but never taught to the recogniser: it transcribes as "" (a tone, music, a
network message the recogniser cannot read)."""


@pytest.fixture(params=[200, 0], ids=["speculative", "plain"])
async def attack_rig(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Rig, ProviderSim]]:
    async with machine_rig(tmp_path, request.param) as pair:
        yield pair


def _recognised(provider: ProviderSim, text: str) -> bool:
    return any(r.stage == "stt" and r.detail == text for r in provider.log)


async def test_amd_and_transcript_verdicts_together_act_once(
    attack_rig: tuple[Rig, ProviderSim],
) -> None:
    """AMD's machine_end_beep is posted the instant the recogniser answers the mailbox
    greeting: both paths race for the call's one token; exactly one voicemail message,
    no REST hang-up on top, one token, outcome voicemail."""
    rig, provider = attack_rig
    sid = await _dial(rig)
    async with place_call(
        rig.base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=sid, to_number=TO
    ) as call:
        await call.wait_until(lambda: call.metrics.first_agent_media_ms is not None, 10)
        call.say(pcm16_to_ulaw(_speech(VOICEMAIL)))
        await _until(lambda: _recognised(provider, VOICEMAIL), 15)
        await rig.sim.send_amd(sid, "machine_end_beep", duration_ms=3000)
        await _until(lambda: len(rig.sim.calls[sid].twiml_updates) >= 1, 15)
        await asyncio.sleep(1.0)  # time for a second action, were there one
        updates = rig.sim.calls[sid].twiml_updates
        assert len(updates) == 1 and "<Hangup" in updates[0]
        assert not any(r.value("Status") == "completed" for r in rig.sim.updates_for(sid))
    await asyncio.sleep(0.3)
    detail, _, tokens = await _rows(rig)
    assert detail["outcome"] == "voicemail"
    assert tokens == 1


def _break_machine_ledger(settings_url: str) -> None:
    """A real database fault on the check's first write: inserting a machine token fails
    (SQLite raises at the INSERT, as a full disk or a lost connection would)."""
    path = settings_url.removeprefix("sqlite+aiosqlite:///")
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TRIGGER machine_ledger_fault BEFORE INSERT ON twilio_events "
            "WHEN NEW.token LIKE 'amd:%' BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
        )


async def test_database_failure_in_the_check_hangs_up(
    attack_rig: tuple[Rig, ProviderSim],
) -> None:
    """The mailbox greeting is recognised but its verdict cannot be written: the call is
    hung up over REST (no message: once-per-lead cannot be checked) instead of staying
    silent, the agent never answering, until max duration."""
    rig, _ = attack_rig
    sid = await _dial(rig)
    async with place_call(
        rig.base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=sid, to_number=TO
    ) as call:
        await call.wait_until(lambda: len(call.metrics.marks) >= 1, 20)  # the greeting played
        _break_machine_ledger(rig.settings.database_url)
        call.say(pcm16_to_ulaw(_speech(VOICEMAIL)))

        def hung_up() -> bool:
            return any(r.value("Status") == "completed" for r in rig.sim.updates_for(sid))

        await _until(hung_up, 15)
        assert rig.sim.calls[sid].twiml_updates == []  # no message
        audio_after = call.metrics.agent_audio_ms
        await asyncio.sleep(1.0)
        assert call.metrics.agent_audio_ms - audio_after < 100  # no reply to the machine


async def test_unreadable_announcement_over_the_greeting_keeps_screening(
    attack_rig: tuple[Rig, ProviderSim],
) -> None:
    """A network message over the greeting that the recogniser returns as "": no reply,
    no action, and the screening stays on, so the mailbox greeting that follows is still
    caught (one voicemail message, outcome voicemail)."""
    rig, provider = attack_rig
    sid = await _dial(rig)
    async with place_call(
        rig.base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=sid, to_number=TO
    ) as call:
        await call.wait_until(lambda: call.metrics.first_agent_media_ms is not None, 10)
        unreadable = call.say(pcm16_to_ulaw(_speech(UNREADABLE)))  # over the greeting
        await asyncio.wait_for(unreadable.done.wait(), 20)
        await asyncio.sleep(2.0)  # recognised as "" by now
        assert [r.detail for r in provider.log if r.stage == "stt"][:1] == [""]
        assert rig.sim.calls[sid].twiml_updates == []
        call.say(pcm16_to_ulaw(_speech(VOICEMAIL)))
        await _until(lambda: len(rig.sim.calls[sid].twiml_updates) >= 1, 20)
    await asyncio.sleep(0.3)
    detail, _, tokens = await _rows(rig)
    assert (detail["outcome"], detail["answered_by"]) == ("voicemail", "machine_speech")
    assert tokens == 1


async def test_verdict_before_the_call_row_leaves_the_check_free(
    attack_rig: tuple[Rig, ProviderSim],
) -> None:
    """AMD's machine verdict arrives before the voice webhook created the call's row (an
    early callback): nothing to act on, and it must not take the call's one machine token,
    so the transcript check still catches the mailbox greeting (one message) instead of
    leaving the line silent."""
    rig, _ = attack_rig
    sid = await _dial(rig)
    await rig.sim.send_amd(sid, "machine_end_beep", duration_ms=100)
    async with place_call(
        rig.base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=sid, to_number=TO
    ) as call:
        await call.wait_until(lambda: call.metrics.first_agent_media_ms is not None, 10)
        call.say(pcm16_to_ulaw(_speech(VOICEMAIL)))
        await _until(lambda: len(rig.sim.calls[sid].twiml_updates) >= 1, 20)
    await asyncio.sleep(0.3)
    detail, _, tokens = await _rows(rig)
    assert (detail["outcome"], detail["answered_by"]) == ("voicemail", "machine_speech")
    assert tokens == 1


async def test_database_failure_on_amd_machine_verdict_hangs_up(
    attack_rig: tuple[Rig, ProviderSim],
) -> None:
    """AMD's machine_end_beep while its verdict cannot be written (503 to Twilio, which
    does not retry it by default): the agent stops (clear) and the call is hung up, not
    left pitching to the mailbox until max duration."""
    rig, _ = attack_rig
    sid = await _dial(rig)
    async with place_call(
        rig.base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=sid, to_number=TO
    ) as call:
        await call.wait_until(lambda: call.metrics.first_agent_media_ms is not None, 10)
        _break_machine_ledger(rig.settings.database_url)
        await rig.sim.send_amd(sid, "machine_end_beep", duration_ms=3000)

        def hung_up() -> bool:
            return any(r.value("Status") == "completed" for r in rig.sim.updates_for(sid))

        await _until(hung_up, 15)
        assert call.metrics.clears >= 1
        assert rig.sim.calls[sid].twiml_updates == []  # no message
