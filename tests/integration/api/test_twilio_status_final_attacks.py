"""The final-status statement under a hostile Twilio (Postgres, through the signed route):
duplicate finals in parallel, finals racing each other and the end-of-call write, junk
form values and attempt ids; every answer is a 204 (never a 500) and the rows end as one
settlement would leave them."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, select, update
from starlette.applications import Starlette
from twilio.request_validator import RequestValidator

from tests.conftest import make_settings
from tests.integration.api.test_twilio_status_final import World, _seed
from voicebot.app import create_app
from voicebot.config import Settings
from voicebot.db.locks import lock_call_rows
from voicebot.db.models import (
    Call,
    CallOutcome,
    Campaign,
    CampaignAttempt,
    CampaignLead,
    Lead,
    TwilioEvent,
)
from voicebot.db.outcomes import record_outcome
from voicebot.jobs.claims import cancel_pending
from voicebot.jobs.dial import record_sid
from voicebot.jobs.pacing import LocalPacer
from voicebot.jobs.reconcile import _finish as reconcile_finish
from voicebot.jobs.sweeper import Sweeper, campaigns_with_work
from voicebot.telephony.rest import TwilioDialer

pytestmark = pytest.mark.integration
AUTH = "attack-token"


@pytest.fixture
async def app(postgres_url: str) -> AsyncIterator[Starlette]:
    settings = make_settings(database_url=postgres_url, twilio_auth_token=AUTH)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


def _settings(app: Starlette) -> Settings:
    return app.state.voicebot.settings  # type: ignore[no-any-return]


async def _post(
    app: Starlette, attempt: str | None, form: dict[str, str], token: str | None = None
) -> int:
    path = "/twilio/status" + (f"?attempt={attempt}" if attempt is not None else "")
    signature = RequestValidator(AUTH).compute_signature(
        _settings(app).public_base_url + path, form
    )
    headers = {"X-Twilio-Signature": signature}
    if token is not None:
        headers["I-Twilio-Idempotency-Token"] = token
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return (await client.post(path, data=form, headers=headers)).status_code


async def _rows(
    app: Starlette, ids: dict[str, Any]
) -> tuple[Call, CampaignAttempt, CampaignLead, Lead]:
    async with app.state.voicebot.sessions() as session:
        call = await session.get(Call, ids["call"])
        attempt = await session.get(CampaignAttempt, ids["attempt"])
        member = await session.get(CampaignLead, ids["member"])
        lead = await session.get(Lead, ids["lead"])
    assert call and attempt and member and lead
    return call, attempt, member, lead


@pytest.mark.parametrize("with_token", [True, False])
async def test_twenty_identical_finals_at_once_settle_once(
    app: Starlette, with_token: bool
) -> None:
    """20 copies of one signed busy callback in parallel: all 204, one settlement."""
    ids = await _seed(app.state.voicebot.sessions, World())
    form = {"CallSid": ids["sid"], "CallStatus": "busy"}
    token = f"dup-{secrets.token_hex(8)}" if with_token else None
    codes = await asyncio.gather(*(_post(app, str(ids["attempt"]), form, token) for _ in range(20)))
    assert set(codes) == {204}
    call, attempt, member, lead = await _rows(app, ids)
    assert (call.outcome, call.status, attempt.status) == ("no_answer", "busy", "ended")
    assert (member.state, member.attempts, lead.status) == ("retry", 1, "unreachable")
    assert call.status_events.count("busy") == (1 if with_token else 20)


async def test_different_finals_at_once_settle_one_outcome(app: Starlette) -> None:
    """busy, no-answer, failed, canceled and completed for one call in parallel (4 each):
    all 204, exactly one outcome, and the member ruled by that outcome."""
    ids = await _seed(app.state.voicebot.sessions, World())
    statuses = ["busy", "no-answer", "failed", "canceled", "completed"] * 4
    codes = await asyncio.gather(
        *(
            _post(
                app,
                str(ids["attempt"]),
                {"CallSid": ids["sid"], "CallStatus": s},
                f"t-{i}-{secrets.token_hex(4)}",
            )
            for i, s in enumerate(statuses)
        )
    )
    assert set(codes) == {204}
    call, attempt, member, _ = await _rows(app, ids)
    if call.outcome == "no_answer":
        assert member.state == "retry" and attempt.status == "ended"
    elif call.outcome == "failed":
        assert member.state == "failed" and attempt.status == "failed"
    else:
        assert call.outcome is None  # completed won; the hang-up path finishes it


async def test_completed_never_overwrites_the_sessions_outcome(app: Starlette) -> None:
    """The session writes meeting_booked while completed (and busy) arrive: the booked
    outcome, the done member and the booked lead stay."""
    sessions = app.state.voicebot.sessions
    ids = await _seed(
        sessions,
        World(
            member_state="in_call",
            attempt_status="placed",
            call_status="in-progress",
            sid_stored=True,
        ),
    )

    async def session_end() -> None:
        async with sessions() as session:
            await lock_call_rows(session, ids["call"])
            call = await session.get(Call, ids["call"], populate_existing=True)
            assert call is not None
            await asyncio.sleep(0.2)  # hold the locks while the finals arrive
            await record_outcome(session, call, CallOutcome.MEETING_BOOKED)
            await session.commit()

    form = {"CallSid": ids["sid"], "CallStatus": "completed", "CallDuration": "40"}
    results = await asyncio.gather(
        session_end(),
        *(_post(app, str(ids["attempt"]), form, f"c-{i}") for i in range(5)),
        _post(app, str(ids["attempt"]), {"CallSid": ids["sid"], "CallStatus": "busy"}, "b-1"),
    )
    assert set(results[1:]) == {204}
    call, attempt, member, lead = await _rows(app, ids)
    assert (call.outcome, member.state, lead.status) == ("meeting_booked", "done", "meeting_booked")
    # busy and completed share the final rank: whichever came first is the status.
    assert attempt.status == "ended" and call.status in {"completed", "busy"}


@pytest.mark.parametrize("duration", ["²", "99999999999", "2147483648", "-5", "1e3", " 7", "٣"])
async def test_junk_call_duration_is_not_a_500(app: Starlette, duration: str) -> None:
    """A CallDuration that is no small decimal is refused at the edge (422), never a 500
    that Twilio retries forever, and nothing is written."""
    ids = await _seed(app.state.voicebot.sessions, World())
    form = {"CallSid": ids["sid"], "CallStatus": "no-answer", "CallDuration": duration}
    assert await _post(app, str(ids["attempt"]), form, f"d-{secrets.token_hex(6)}") == 422
    call, _, member, _ = await _rows(app, ids)
    assert call.outcome is None and member.state == "dialing"


@pytest.mark.parametrize(
    "attempt",
    [
        "abc",
        "99999999999999999999",
        "0",
        "-1",
        "999999999999",
        "2147483648",
        "2147483647",
        "1.0",
        "",
        "%C2%B2",
        "1%20",
    ],
)
@pytest.mark.parametrize("progress", [False, True])
async def test_junk_attempt_ids_are_not_a_500(app: Starlette, attempt: str, progress: bool) -> None:
    """An attempt id that is not one of ours (huge ones above the integer column
    included): 204, the call found by SID still settles."""
    ids = await _seed(app.state.voicebot.sessions, World(sid_stored=True, attempt_status="placed"))
    if progress:
        ringing = {"CallSid": ids["sid"], "CallStatus": "ringing"}
        assert await _post(app, attempt, ringing, f"r-{secrets.token_hex(6)}") == 204
    form = {"CallSid": ids["sid"], "CallStatus": "busy", "AnsweredBy": "x" * 64}
    assert await _post(app, attempt, form, f"a-{secrets.token_hex(6)}") == 204
    call, attempt_row, member, _ = await _rows(app, ids)
    assert call.outcome == "no_answer" and member.state == "retry"
    assert attempt_row.status == "ended"


async def test_a_final_naming_another_campaigns_attempt_settles_that_attempt_alone(
    app: Starlette,
) -> None:
    """Call A's SID with call B's attempt id (B already has its SID): B's rows are the ones
    the URL names (as the ORM path); A is untouched."""
    sessions = app.state.voicebot.sessions
    a = await _seed(sessions, World(sid_stored=True, attempt_status="placed"))
    b = await _seed(sessions, World(sid_stored=True, attempt_status="placed"))
    form = {"CallSid": a["sid"], "CallStatus": "failed"}
    assert await _post(app, str(b["attempt"]), form, "x-1") == 204
    call_a, _, member_a, _ = await _rows(app, a)
    call_b, _, _, _ = await _rows(app, b)
    assert call_a.outcome is None and member_a.state == "dialing"
    assert call_b.call_sid == b["sid"] and call_b.outcome == "failed"


async def test_a_final_then_progress_then_final_again(app: Starlette) -> None:
    """completed-before-ringing order: busy, ringing, in-progress, busy (new token): one
    settlement, status stays busy."""
    ids = await _seed(app.state.voicebot.sessions, World())
    for i, status in enumerate(["busy", "ringing", "in-progress", "busy", "completed"]):
        assert (
            await _post(
                app,
                str(ids["attempt"]),
                {"CallSid": ids["sid"], "CallStatus": status},
                f"o-{i}-{ids['call']}",
            )
            == 204
        )
    call, attempt, member, _ = await _rows(app, ids)
    assert (call.status, call.outcome, member.state, attempt.status) == (
        "busy",
        "no_answer",
        "retry",
        "ended",
    )
    async with app.state.voicebot.sessions() as session:
        n = await session.scalar(
            select(func.count())
            .select_from(TwilioEvent)
            .where(TwilioEvent.token.like(f"o-%-{ids['call']}"))
        )
    assert n == 5


@pytest.mark.parametrize("path", ["statement", "orm"])
async def test_a_final_waiting_on_the_rows_while_the_campaign_is_cancelled_retries_nobody(
    app: Starlette, path: str
) -> None:
    """busy waits on the call's rows (held by the session's end, the reconciler, the
    hang-up) while cancel commits: the member ends skipped, not left in retry for a
    campaign no sweep visits again (cancel_pending skips only members not in a call)."""
    sessions = app.state.voicebot.sessions
    ids = await _seed(sessions, World())
    async with sessions() as session:
        campaign_id = (await session.get(Call, ids["call"])).campaign_id  # type: ignore[union-attr]
        if path == "orm":  # a campaign webhook sends the final through the ORM path
            campaign = await session.get(Campaign, campaign_id)
            assert campaign is not None
            campaign.webhook_url = "https://hooks.example.com/voicebot"
        await session.commit()
    form = {"CallSid": ids["sid"], "CallStatus": "busy"}
    async with sessions() as holder:
        await lock_call_rows(holder, ids["call"])
        final = asyncio.create_task(_post(app, str(ids["attempt"]), form, f"k-{ids['call']}"))
        await asyncio.sleep(0.3)  # the final is waiting on the attempt's lock
        async with sessions() as cancel:
            await cancel.execute(
                update(Campaign).where(Campaign.id == campaign_id).values(status="cancelled")
            )
            await cancel_pending(cancel, campaign_id)
            await cancel.commit()
        await holder.commit()
    assert await final == 204
    call, attempt, member, _ = await _rows(app, ids)
    assert (call.outcome, attempt.status) == ("no_answer", "ended")
    # The final read the campaign as of before the cancel (both paths): the next sweeper
    # pass visits the cancelled campaign for its due member and skips it.
    async with sessions() as session:
        assert (campaign_id, "cancelled") in await campaigns_with_work(session)
    # An account SID for the dialer's constructor only: the wind-down finds no live call.
    settings = _settings(app).model_copy(update={"twilio_account_sid": "AC" + "7" * 32})
    sweeper = Sweeper(
        settings=settings,
        sessions=sessions,
        twilio=TwilioDialer.from_settings(settings),
        pacer=LocalPacer(account_cps=settings.twilio_cps),
    )
    await sweeper._wind_down(campaign_id, "cancelled")
    _, _, member, _ = await _rows(app, ids)
    assert member.state == "skipped"


@pytest.mark.parametrize("reconciled", ["no-answer", "completed", "failed"])
async def test_finals_racing_the_reconciler_settle_once(app: Starlette, reconciled: str) -> None:
    """The reconciler settles the attempt from Twilio's record while 10 busy and a
    completed callback arrive: all 204, no deadlock, one outcome, the member ruled once
    by it."""
    sessions = app.state.voicebot.sessions
    world = World(attempt_status="placed", call_status="ringing", sid_stored=True)
    ids = await _seed(sessions, world)
    forms = [{"CallSid": ids["sid"], "CallStatus": "busy"}] * 10
    forms.append({"CallSid": ids["sid"], "CallStatus": "completed"})
    results = await asyncio.gather(
        reconcile_finish(sessions, ids["attempt"], reconciled, _settings(app)),
        *(_post(app, str(ids["attempt"]), f, f"r-{i}-{ids['call']}") for i, f in enumerate(forms)),
    )
    assert set(results[1:]) == {204}
    call, attempt, member, lead = await _rows(app, ids)
    assert attempt.status in {"ended", "failed"} and attempt.ended_at is not None
    expected = {
        "no_answer": ("retry", "unreachable"),
        "failed": ("failed", "unreachable"),
        "completed": ("done", "contacted"),
    }
    assert call.outcome in expected
    assert (member.state, lead.status) == expected[call.outcome]
    assert member.attempts == 1


async def test_a_final_for_a_call_whose_campaign_was_deleted(app: Starlette) -> None:
    """The campaign (and with it the attempt and member) deleted before the final: 204,
    the call found by SID gets its status and outcome, nothing else moves."""
    sessions = app.state.voicebot.sessions
    ids = await _seed(sessions, World(attempt_status="placed", sid_stored=True))
    async with sessions() as session:
        call = await session.get(Call, ids["call"])
        assert call is not None
        await session.execute(delete(Campaign).where(Campaign.id == call.campaign_id))
        await session.commit()
    form = {"CallSid": ids["sid"], "CallStatus": "no-answer"}
    assert await _post(app, str(ids["attempt"]), form, f"del-{ids['call']}") == 204
    async with sessions() as session:
        call = await session.get(Call, ids["call"])
        lead = await session.get(Lead, ids["lead"])
    assert call is not None and lead is not None
    assert (call.status, call.outcome, lead.status) == ("no-answer", "no_answer", "unreachable")


@pytest.mark.parametrize("dialer_first", [True, False])
async def test_a_final_racing_the_dialers_sid_record(app: Starlette, dialer_first: bool) -> None:
    """The callback beats (or follows) the dialer's commit of the SID: one SID, the call
    settled busy, the attempt ended (never put back to placed)."""
    sessions = app.state.voicebot.sessions
    ids = await _seed(sessions, World())
    form = {"CallSid": ids["sid"], "CallStatus": "busy"}

    async def dialer() -> None:
        if not dialer_first:
            await asyncio.sleep(0.05)
        async with sessions() as session:
            await record_sid(session, ids["attempt"], ids["sid"])
            await asyncio.sleep(0.1)  # the attempt stays locked while the callback arrives
            await session.commit()

    async def callback() -> int:
        if dialer_first:
            await asyncio.sleep(0.05)
        return await _post(app, str(ids["attempt"]), form, f"sid-{ids['call']}")

    _, code = await asyncio.gather(dialer(), callback())
    assert code == 204
    call, attempt, member, _ = await _rows(app, ids)
    assert (call.call_sid, attempt.call_sid) == (ids["sid"], ids["sid"])
    assert (call.status, call.outcome, attempt.status, member.state) == (
        "busy",
        "no_answer",
        "ended",
        "retry",
    )
