"""The campaign engine end to end: the app's own sweeper dials the Twilio simulator, whose
callbacks arrive early, twice, out of order or never — on SQLite and Postgres."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.integration.jobs.conftest import EngineFactory, new_campaign, phones
from voicebot.db.models import CampaignAttempt, CampaignLead, Lead
from voicebot.jobs import dial
from voicebot.testing.twilio_call_flow import CallBehaviour

FINAL_MEMBER_STATES = {"done", "failed", "skipped"}


async def _members(engine: object, campaign_id: int) -> list[CampaignLead]:
    async with engine.sessions() as session:  # type: ignore[attr-defined]
        return list(
            (
                await session.scalars(
                    select(CampaignLead).where(CampaignLead.campaign_id == campaign_id)
                )
            ).all()
        )


async def _attempts(engine: object) -> list[CampaignAttempt]:
    async with engine.sessions() as session:  # type: ignore[attr-defined]
        return list((await session.scalars(select(CampaignAttempt))).all())


async def test_hard_callbacks_every_lead_dialed_once(engine_factory: EngineFactory) -> None:
    """With callbacks before the REST answer, duplicated, out of order and 20% lost, every
    lead is dialed exactly once, the cap holds and the campaign completes."""
    behaviour = CallBehaviour(
        outcomes={"human": 3, "machine": 1, "busy": 1, "no-answer": 1, "failed": 1},
        rest_latency_s=0.3,
        callback_delay_s=0.05,
        ring_s=0.1,
        talk_s=0.3,
        loss=0.2,
        duplicates=0.3,
        out_of_order=True,
        seed=7,
    )
    async with engine_factory(behaviour) as engine:
        numbers = phones(12)
        cid = await new_campaign(
            engine.client, numbers, max_concurrent_calls=3, calls_per_second=20, max_attempts=1
        )
        assert (await engine.client.post(f"/api/v1/campaigns/{cid}/start")).status_code == 200

        async def completed() -> bool:
            return (await engine.stats(cid))["status"] == "completed"

        await engine.wait_for(completed, timeout_s=60)
        dialed = Counter(call.to for call in engine.sim.calls.values())
        assert sorted(dialed) == sorted(numbers)
        assert set(dialed.values()) == {1}
        assert engine.sim.max_live <= 3
        assert {m.state for m in await _members(engine, cid)} <= FINAL_MEMBER_STATES
        attempts = await _attempts(engine)
        assert {a.status for a in attempts} <= {"ended", "failed"}
        assert all(a.call_sid in engine.sim.calls for a in attempts)
        create = engine.sim.requests[0]
        assert create.value("MachineDetection") == "DetectMessageEnd"
        assert f"attempt={attempts[0].id}" in (create.value("Url") or "") or all(
            "attempt=" in (r.value("StatusCallback") or "")
            for r in engine.sim.requests
            if r.method == "POST" and r.path.endswith("Calls.json")
        )


async def test_every_callback_lost_settled_from_twilio(engine_factory: EngineFactory) -> None:
    """When no status callback arrives, the reconciler settles each call from Twilio's record
    and the campaign still completes."""
    behaviour = CallBehaviour(outcomes={"busy": 1, "no-answer": 1}, ring_s=0.1, loss=1.0, seed=3)
    async with engine_factory(behaviour) as engine:
        cid = await new_campaign(engine.client, phones(4), calls_per_second=20, max_attempts=1)
        await engine.client.post(f"/api/v1/campaigns/{cid}/start")

        async def completed() -> bool:
            return (await engine.stats(cid))["status"] == "completed"

        await engine.wait_for(completed, timeout_s=30)
        assert len(engine.sim.calls) == 4
        assert {m.last_outcome for m in await _members(engine, cid)} == {"no_answer"}


async def test_no_rest_answer_settled_by_asking_twilio(engine_factory: EngineFactory) -> None:
    """A create whose answer never comes (read timeout) is matched to Twilio's call by
    calls.list, never dialed again blind."""
    behaviour = CallBehaviour(outcomes={"busy": 1}, rest_latency_s=2.0, ring_s=0.1, loss=1.0)
    async with engine_factory(behaviour, twilio_request_timeout_s=0.5) as engine:
        cid = await new_campaign(engine.client, phones(3), calls_per_second=20, max_attempts=1)
        await engine.client.post(f"/api/v1/campaigns/{cid}/start")

        async def completed() -> bool:
            return (await engine.stats(cid))["status"] == "completed"

        await engine.wait_for(completed, timeout_s=40)
        creates = [r for r in engine.sim.requests if r.path.endswith("/Calls.json")]
        assert len([r for r in creates if r.method == "POST"]) == 3
        assert {a.call_sid for a in await _attempts(engine)} == set(engine.sim.calls)


async def test_pause_stops_a_running_pass(engine_factory: EngineFactory) -> None:
    """Pausing while dials are paced and waiting: nothing is dialed later than 1 s after the
    pause answered; the claimed attempts go back; resume dials the rest, each once."""
    behaviour = CallBehaviour(outcomes={"busy": 1}, ring_s=0.1)
    async with engine_factory(behaviour, twilio_cps=50.0) as engine:
        numbers = phones(10)
        cid = await new_campaign(
            engine.client, numbers, calls_per_second=2, max_concurrent_calls=10, max_attempts=1
        )
        await engine.client.post(f"/api/v1/campaigns/{cid}/start")

        async def some_dialed() -> bool:
            return len(engine.sim.creates) >= 2

        await engine.wait_for(some_dialed, timeout_s=20)
        paused = await engine.client.post(f"/api/v1/campaigns/{cid}/pause")
        paused_at = time.monotonic()
        assert paused.json()["status"] == "paused"
        await asyncio.sleep(2.5)
        late = [t for t, _ in engine.sim.creates if t > paused_at + 1.0]
        assert late == []
        assert (await engine.stats(cid))["attempts"]["claimed"] == 0
        before = len(engine.sim.creates)
        assert before < len(numbers)
        scraped = (await engine.client.get("/metrics")).text
        assert f'voicebot_campaign_dials{{campaign_id="{cid}"}} {before}.0' in scraped
        assert f'voicebot_campaign_in_flight{{campaign_id="{cid}"}}' in scraped
        await engine.client.post(f"/api/v1/campaigns/{cid}/resume")

        async def completed() -> bool:
            return (await engine.stats(cid))["status"] == "completed"

        await engine.wait_for(completed, timeout_s=30)
        assert sorted(c.to for c in engine.sim.calls.values()) == sorted(numbers)


async def test_cancel_hangs_up_live_calls(engine_factory: EngineFactory) -> None:
    """Cancel ends the pending members and hangs up the live calls through the REST API."""
    behaviour = CallBehaviour(outcomes={"human": 1}, ring_s=0.1, talk_s=60)
    async with engine_factory(behaviour) as engine:
        cid = await new_campaign(
            engine.client, phones(5), calls_per_second=20, max_concurrent_calls=2
        )
        await engine.client.post(f"/api/v1/campaigns/{cid}/start")

        async def two_live() -> bool:
            return engine.sim.live_count() == 2 and all(
                c.events is not None and c.events.answered_by for c in engine.sim.calls.values()
            )

        await engine.wait_for(two_live, timeout_s=20)
        cancelled = (await engine.client.post(f"/api/v1/campaigns/{cid}/cancel")).json()
        assert cancelled["status"] == "cancelled"
        assert cancelled["hung_up"] == 2

        async def settled() -> bool:
            stats = await engine.stats(cid)
            return stats["in_flight"] == 0 and engine.sim.live_count() == 0

        await engine.wait_for(settled, timeout_s=20)
        states = Counter(m.state for m in await _members(engine, cid))
        assert states == {"done": 2, "skipped": 3}
        assert len(engine.sim.calls) == 2


async def test_start_pause_resume_storm_dials_each_lead_once(
    engine_factory: EngineFactory,
) -> None:
    """start, then pause/resume over and over (a redelivered message's effect): no second
    chain, no lead dialed twice, max_concurrent_calls 1 holds."""
    behaviour = CallBehaviour(outcomes={"no-answer": 1}, ring_s=0.2)
    async with engine_factory(behaviour) as engine:
        numbers = phones(6)
        cid = await new_campaign(
            engine.client, numbers, calls_per_second=20, max_concurrent_calls=1, max_attempts=1
        )
        await engine.client.post(f"/api/v1/campaigns/{cid}/start")
        for _ in range(5):
            await engine.client.post(f"/api/v1/campaigns/{cid}/pause")
            await engine.client.post(f"/api/v1/campaigns/{cid}/resume")
            await asyncio.sleep(0.1)

        async def completed() -> bool:
            return (await engine.stats(cid))["status"] == "completed"

        await engine.wait_for(completed, timeout_s=40)
        assert sorted(c.to for c in engine.sim.calls.values()) == sorted(numbers)
        assert engine.sim.max_live <= 1


async def test_one_live_call_per_lead_across_campaigns(engine_factory: EngineFactory) -> None:
    """The same leads in two running campaigns are never in two calls at once."""
    behaviour = CallBehaviour(outcomes={"no-answer": 1}, ring_s=0.5)
    async with engine_factory(behaviour) as engine:
        numbers = phones(4)
        first = await new_campaign(engine.client, numbers, calls_per_second=20, max_attempts=1)
        async with engine.sessions() as session:
            lead_ids = list((await session.scalars(select(Lead.id))).all())
        second = (
            await engine.client.post(
                "/api/v1/campaigns",
                json={
                    "name": "שני",
                    "calendar": "none",
                    "window_days": "sun,mon,tue,wed,thu,fri,sat",
                    "window_start": "00:00",
                    "window_end": "24:00",
                    "calls_per_second": 20,
                    "max_attempts": 1,
                },
            )
        ).json()["id"]
        await engine.client.post(f"/api/v1/campaigns/{second}/leads", json={"lead_ids": lead_ids})
        await engine.client.post(f"/api/v1/campaigns/{first}/start")
        await engine.client.post(f"/api/v1/campaigns/{second}/start")

        async def both_done() -> bool:
            one, two = await engine.stats(first), await engine.stats(second)
            return one["status"] == two["status"] == "completed"

        await engine.wait_for(both_done, timeout_s=40)
        assert len(engine.sim.calls) == 8
        assert engine.sim.max_live_per_number == 1


async def test_consent_and_do_not_call_checked_at_claim(engine_factory: EngineFactory) -> None:
    """A lead without consent and one put on do-not-call after joining are never dialed."""
    async with engine_factory(CallBehaviour(outcomes={"busy": 1}, ring_s=0.1)) as engine:
        cid = await new_campaign(engine.client, phones(2), calls_per_second=20, max_attempts=1)
        no_consent = await new_campaign(
            engine.client, phones(1, start=50), consent=False, max_attempts=1
        )
        await engine.client.post("/api/v1/do-not-call", json={"phone": phones(1)[0]})
        await engine.client.post(f"/api/v1/campaigns/{cid}/start")
        await engine.client.post(f"/api/v1/campaigns/{no_consent}/start")

        async def completed() -> bool:
            one, two = await engine.stats(cid), await engine.stats(no_consent)
            return one["status"] == two["status"] == "completed"

        await engine.wait_for(completed, timeout_s=20)
        assert [c.to for c in engine.sim.calls.values()] == [phones(2)[1]]
        outcomes = {m.last_outcome for m in await _members(engine, no_consent)}
        assert outcomes == {"no_consent"}


async def test_our_failure_pauses_with_reason_never_unreachable(
    engine_factory: EngineFactory,
) -> None:
    """Twilio refusing our credentials pauses the campaign with the reason in its stats; the
    lead is not marked unreachable and the failed attempt keeps Twilio's code."""
    async with engine_factory(CallBehaviour(), twilio_auth_token="wrong-token") as engine:
        cid = await new_campaign(engine.client, phones(2), calls_per_second=20)
        await engine.client.post(f"/api/v1/campaigns/{cid}/start")

        async def paused() -> bool:
            return (await engine.stats(cid))["status"] == "paused"

        await engine.wait_for(paused, timeout_s=20)
        stats = await engine.stats(cid)
        assert "401" in stats["status_reason"]
        async with engine.sessions() as session:
            leads = (await session.scalars(select(Lead))).all()
        assert {lead.status for lead in leads} == {"new"}
        failed = [a for a in await _attempts(engine) if a.status == "failed"]
        assert failed and all(a.twilio_error_code == 20003 for a in failed)
        assert {m.state for m in await _members(engine, cid)} == {"pending"}


async def test_start_refused_when_twilio_cannot_reach_us(engine_factory: EngineFactory) -> None:
    """A loopback PUBLIC_BASE_URL with the real Twilio API is a 409 naming PUBLIC_BASE_URL."""
    async with engine_factory(CallBehaviour()) as engine:
        from voicebot.api.campaigns import dialing_blockers

        real = engine.settings.model_copy(update={"twilio_api_base_url": None})
        assert set(dialing_blockers(real)) == {"PUBLIC_BASE_URL"}
        public = real.model_copy(update={"public_base_url": "https://bot.example.com"})
        assert dialing_blockers(public) == {}


async def test_server_error_on_create_never_dials_the_lead_again(
    engine_factory: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 500 from calls.create whose call exists all the same is settled from Twilio's own
    record (and its callbacks): the lead is dialed once, not again after the back-off."""
    monkeypatch.setattr(dial, "OUR_FAILURE_RETRY_AFTER", timedelta(seconds=0.5))
    behaviour = CallBehaviour(outcomes={"busy": 1}, ring_s=2.0, callback_delay_s=0.05)
    async with engine_factory(behaviour) as engine:
        engine.sim.fail_after_create(500)
        number = phones(1)
        cid = await new_campaign(engine.client, number, calls_per_second=20, max_attempts=1)
        assert (await engine.client.post(f"/api/v1/campaigns/{cid}/start")).status_code == 200

        async def completed() -> bool:
            return (await engine.stats(cid))["status"] == "completed"

        await engine.wait_for(completed, timeout_s=30)
        assert [c.to for c in engine.sim.calls.values()] == number
        assert {m.state for m in await _members(engine, cid)} == {"failed"}


async def test_cancel_leaves_no_member_waiting_for_a_retry(
    engine_factory: EngineFactory,
) -> None:
    """A call of a cancelled campaign that ends busy after the cancel (its hang-up failed)
    does not schedule a retry: every member ends final, none waits in ``retry`` for ever."""
    behaviour = CallBehaviour(outcomes={"busy": 1}, ring_s=2.0)
    async with engine_factory(behaviour) as engine:
        cid = await new_campaign(
            engine.client, phones(3), calls_per_second=20, max_concurrent_calls=2, max_attempts=3
        )
        await engine.client.post(f"/api/v1/campaigns/{cid}/start")

        async def two_live() -> bool:
            return engine.sim.live_count() == 2

        await engine.wait_for(two_live, timeout_s=20)
        engine.sim.fail_next(500, count=50)  # the hang-ups fail: the calls ring on
        cancelled = await engine.client.post(f"/api/v1/campaigns/{cid}/cancel")
        assert cancelled.json()["status"] == "cancelled"

        async def settled() -> bool:
            stats = await engine.stats(cid)
            return stats["in_flight"] == 0 and engine.sim.live_count() == 0

        await engine.wait_for(settled, timeout_s=30)
        states = Counter(m.state for m in await _members(engine, cid))
        assert set(states) <= FINAL_MEMBER_STATES, states
        assert len(engine.sim.calls) == 2
