"""A call keeps the first reason it ended for: a later way out (a drain after a machine
stop, a dead inbound stream during the max-duration goodbye) never overwrites it, so the
close reason and the ``call.ended`` log say why the call really ended."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from tests.e2e.conftest import local_call_services, local_session
from voicebot.call.services import CallServices
from voicebot.call.session import CallSession
from voicebot.db.models import CallTurn
from voicebot.testing.twilio_api_sim import TwilioApiSimulator, serve_on_loopback

GOODBYE = "אנחנו צריכים לסיים כאן, יום טוב!"
ACCOUNT_SID = "AC" + "3" * 32
AUTH_TOKEN = "end-reason-auth-token"


class Peer:
    """Twilio's side, reduced: takes frames and, when ``echo_marks``, echoes marks at once
    (played at once); it never sends caller media."""

    def __init__(self, *, echo_marks: bool) -> None:
        self.echo_marks = echo_marks
        self.session: CallSession | None = None
        self.frames = 0

    async def media(self, payload: bytes) -> None:
        self.frames += 1

    async def mark(self, name: str) -> None:
        if self.echo_marks and self.session is not None:
            self.session.on_mark(name)

    async def clear(self) -> None:
        return None


async def _session(services: CallServices, peer: Peer, call_sid: str) -> CallSession:
    session = await local_session(
        services, call_sid, send_media=peer.media, send_mark=peer.mark, send_clear=peer.clear
    )
    peer.session = session
    return session


async def test_a_drain_after_a_machine_stop_keeps_the_reason_machine(tmp_path: Path) -> None:
    """Answering-machine detection stops the agent; a deploy's drain then ends the call:
    the call ended because a machine answered, its end reason stays ``machine``, and the
    drain neither says its goodbye to the recording nor hangs up over REST (that would cut
    the voicemail message the AMD route put on the call)."""
    peer = Peer(echo_marks=True)
    api = TwilioApiSimulator(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
    async with (
        serve_on_loopback(api.app) as api_url,
        local_call_services(
            tmp_path,
            inbound_media_timeout_s=60.0,
            twilio_account_sid=ACCOUNT_SID,
            twilio_auth_token=AUTH_TOKEN,
            twilio_api_base_url=api_url,
        ) as services,
    ):
        session = await _session(services, peer, "CAmachine")
        async with asyncio.timeout(20), asyncio.TaskGroup() as tg:
            runner = tg.create_task(session.run())
            for _ in range(250):
                if session.current is not None:
                    break
                await asyncio.sleep(0.02)
            assert session.current is not None  # the greeting started
            await session.stop_for_machine()
            frames_at_stop = peer.frames
            session.end_call("draining", GOODBYE)
            await runner
        async with services.sessions() as db:
            said = (
                await db.scalars(select(CallTurn.text).where(CallTurn.role == "assistant"))
            ).all()
    assert session.end_reason == "machine"
    assert peer.frames == frames_at_stop
    assert GOODBYE not in said
    assert api.updates_for("CAmachine") == []


async def test_inbound_media_stopping_during_the_goodbye_keeps_the_reason_max_duration(
    tmp_path: Path,
) -> None:
    """The max-duration goodbye is playing (its marks never come back) when the inbound
    stream stops: the call ended at its duration limit, and the reason stays
    ``max_duration`` (not ``inbound_media_stopped``)."""
    peer = Peer(echo_marks=False)
    async with local_call_services(
        tmp_path, max_call_duration_s=1, inbound_media_timeout_s=2.0
    ) as services:
        session = await _session(services, peer, "CAlimit")
        async with asyncio.timeout(20):
            await session.run()
    assert session.end_reason == "max_duration"


async def test_the_inbound_stream_stopping_during_the_opt_out_goodbye_keeps_the_brain_end(
    tmp_path: Path,
) -> None:
    """The caller pressed 9 and the agent's removal goodbye is playing (its marks no longer
    come back) when the inbound stream stops: the call ended because the brain ended it,
    so the reason stays ``brain_end`` (not ``inbound_media_stopped``)."""
    peer = Peer(echo_marks=True)
    media_stop = asyncio.Event()

    async def caller_line(session: CallSession) -> None:
        while not media_stop.is_set():  # Twilio's 20 ms frames of a quiet line
            await session.on_media(b"\xff" * 160)
            await asyncio.sleep(0.02)

    async with local_call_services(tmp_path, inbound_media_timeout_s=2.0) as services:
        session = await _session(services, peer, "CAoptout")
        async with asyncio.timeout(60), asyncio.TaskGroup() as tg:
            runner = tg.create_task(session.run())
            tg.create_task(caller_line(session))
            for _ in range(1500):
                if session.current is not None and session.current.committed:
                    break
                await asyncio.sleep(0.02)
            assert session.current is not None and session.current.committed  # greeted
            peer.echo_marks = False
            await session.on_dtmf("9")
            media_stop.set()  # the stream stops while the removal goodbye plays
            await runner
    assert session.end_reason == "brain_end"
