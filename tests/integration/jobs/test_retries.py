"""Retries by outcome through the engine: busy backs off, a fax is never retried nor
spoken to, voicemail follows the campaign (hang up, or one message per lead)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.integration.jobs.conftest import EngineFactory, new_campaign, phones
from voicebot.db.models import Call, CampaignLead, Lead
from voicebot.db.types import utcnow
from voicebot.testing.twilio_call_flow import CallBehaviour


async def _settled(engine: object, campaign_id: int) -> list[CampaignLead]:
    async with engine.sessions() as session:  # type: ignore[attr-defined]
        return list(
            (
                await session.scalars(
                    select(CampaignLead).where(CampaignLead.campaign_id == campaign_id)
                )
            ).all()
        )


async def _wait_idle(engine: object, campaign_id: int, *, status: str | None = None) -> None:
    async def idle() -> bool:
        stats = await engine.stats(campaign_id)  # type: ignore[attr-defined]
        done = (
            stats["in_flight"] == 0 and stats["attempts"]["ended"] + stats["attempts"]["failed"] > 0
        )
        return done and (status is None or stats["status"] == status)

    await engine.wait_for(idle, timeout_s=30)  # type: ignore[attr-defined]


def _spoken(engine: object) -> list[str]:
    """Voicemail messages the AMD route put on the calls (TwiML updates that speak)."""
    sim = engine.sim  # type: ignore[attr-defined]
    return [
        doc
        for c in sim.calls.values()
        for doc in c.twiml_updates
        if "<Play" in doc or "<Say" in doc
    ]


def _hung_up(engine: object) -> int:
    """Calls the AMD route hung up over REST (``Status=completed``)."""
    sim = engine.sim  # type: ignore[attr-defined]
    return sum(
        1
        for sid in sim.calls
        if any(r.value("Status") == "completed" for r in sim.updates_for(sid))
    )


async def test_busy_backs_off_by_retry_base_min(engine_factory: EngineFactory) -> None:
    """A busy lead with attempts left is due again retry_base_min later, not at once."""
    async with engine_factory(CallBehaviour(outcomes={"busy": 1}, ring_s=0.1)) as engine:
        cid = await new_campaign(
            engine.client, phones(1), calls_per_second=20, max_attempts=3, retry_base_min=7
        )
        await engine.client.post(f"/api/v1/campaigns/{cid}/start")
        await _wait_idle(engine, cid)
        (member,) = await _settled(engine, cid)
        assert (member.state, member.last_outcome, member.attempts) == ("retry", "no_answer", 1)
        assert member.next_attempt_at is not None
        wait = member.next_attempt_at - utcnow()
        assert timedelta(minutes=6) < wait <= timedelta(minutes=7)
        assert len(engine.sim.calls) == 1


async def test_fax_is_final_and_never_hears_a_message(engine_factory: EngineFactory) -> None:
    """A fax answers: outcome fax, hung up without a message, lead unreachable, no retry."""
    async with engine_factory(CallBehaviour(outcomes={"fax": 1}, ring_s=0.1)) as engine:
        cid = await new_campaign(engine.client, phones(1), calls_per_second=20, max_attempts=3)
        await engine.client.post(f"/api/v1/campaigns/{cid}/start")
        await _wait_idle(engine, cid, status="completed")
        (member,) = await _settled(engine, cid)
        assert (member.state, member.last_outcome) == ("failed", "fax")
        async with engine.sessions() as session:
            lead = (await session.scalars(select(Lead))).one()
            call = (await session.scalars(select(Call))).one()
        assert (lead.status, lead.voicemail_left_at, call.outcome) == ("unreachable", None, "fax")
        assert call.answered_by == "fax"
        assert _spoken(engine) == [] and _hung_up(engine) == 1
        assert len(engine.sim.calls) == 1


async def test_voicemail_hang_up_without_retry(engine_factory: EngineFactory) -> None:
    """voicemail_action hang_up, voicemail_retry false: no message, the member is done."""
    async with engine_factory(CallBehaviour(outcomes={"machine": 1}, ring_s=0.1)) as engine:
        cid = await new_campaign(
            engine.client,
            phones(1),
            calls_per_second=20,
            max_attempts=3,
            voicemail_action="hang_up",
            voicemail_retry=False,
        )
        await engine.client.post(f"/api/v1/campaigns/{cid}/start")
        await _wait_idle(engine, cid, status="completed")
        (member,) = await _settled(engine, cid)
        assert (member.state, member.last_outcome) == ("done", "voicemail")
        assert _spoken(engine) == [] and _hung_up(engine) == 1


async def test_one_voicemail_message_per_lead(engine_factory: EngineFactory) -> None:
    """The same lead's machine in a second campaign gets no second message."""
    async with engine_factory(CallBehaviour(outcomes={"machine": 1}, ring_s=0.1)) as engine:
        first = await new_campaign(
            engine.client, phones(1), calls_per_second=20, voicemail_retry=False
        )
        await engine.client.post(f"/api/v1/campaigns/{first}/start")
        await _wait_idle(engine, first, status="completed")
        async with engine.sessions() as session:
            lead = (await session.scalars(select(Lead))).one()
        assert lead.voicemail_left_at is not None
        second = (
            await engine.client.post(
                "/api/v1/campaigns",
                json={
                    "name": "שוב",
                    "calendar": "none",
                    "window_days": "sun,mon,tue,wed,thu,fri,sat",
                    "window_start": "00:00",
                    "window_end": "24:00",
                    "calls_per_second": 20,
                    "voicemail_retry": False,
                },
            )
        ).json()["id"]
        await engine.client.post(f"/api/v1/campaigns/{second}/leads", json={"lead_ids": [lead.id]})
        await engine.client.post(f"/api/v1/campaigns/{second}/start")
        await _wait_idle(engine, second, status="completed")
        assert len(engine.sim.calls) == 2
        assert len(_spoken(engine)) == 1 and _hung_up(engine) == 1


async def test_answered_call_whose_stream_never_starts_is_failed(
    engine_factory: EngineFactory,
) -> None:
    """A person answers, the voice webhook hands out a Media Stream, the stream never
    opens: the reconciler hangs up and settles outcome failed, reason stream_never_started."""
    from voicebot.db.models import CampaignAttempt

    behaviour = CallBehaviour(outcomes={"human": 1}, ring_s=0.1, talk_s=60)
    async with engine_factory(
        behaviour, conversation_mode="stream", campaign_stream_start_deadline_s=1.0
    ) as engine:
        cid = await new_campaign(engine.client, phones(1), calls_per_second=20, max_attempts=1)
        await engine.client.post(f"/api/v1/campaigns/{cid}/start")

        async def settled() -> bool:
            return (await engine.stats(cid))["status"] == "completed"

        await engine.wait_for(settled, timeout_s=30)
        async with engine.sessions() as session:
            attempt = (await session.scalars(select(CampaignAttempt))).one()
            call = (await session.scalars(select(Call))).one()
        assert (attempt.status, attempt.reason) == ("failed", "stream_never_started")
        assert call.outcome == "failed"
        (twiml,) = [c.events.twiml for c in engine.sim.calls.values() if c.events]
        assert twiml is not None and "<Connect" in twiml
        assert engine.sim.live_count() == 0
