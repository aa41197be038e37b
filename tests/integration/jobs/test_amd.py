"""Asynchronous answering-machine detection through the engine and the Twilio simulator:
every ``AnsweredBy`` value, arriving at different moments after the answer, gets the
right action (nothing, a voicemail message, a hang-up) and outcome, and no fax or
voicemail line is redialed beyond the campaign's policy."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.integration.jobs.conftest import EngineFactory, new_campaign, phones
from voicebot.db.models import Call, CampaignLead
from voicebot.testing.twilio_api_sim import SimulatedCall
from voicebot.testing.twilio_call_flow import CallBehaviour


async def _wait_ended(engine: object, campaign_id: int) -> None:
    async def ended() -> bool:
        stats = await engine.stats(campaign_id)  # type: ignore[attr-defined]
        return bool(stats["status"] == "completed" and stats["in_flight"] == 0)

    await engine.wait_for(ended, timeout_s=30)  # type: ignore[attr-defined]


def _actions(engine: object, call: SimulatedCall) -> tuple[bool, bool]:
    """(a voicemail message was put on the call, the call was hung up over REST)."""
    sim = engine.sim  # type: ignore[attr-defined]
    spoken = any("<Play" in d or "<Say" in d for d in call.twiml_updates)
    hung_up = any(r.value("Status") == "completed" for r in sim.updates_for(call.sid))
    return spoken, hung_up


CASES = [
    # AnsweredBy, moment (s after the answer), outcome, message left, hung up, member
    ("human", 0.0, "completed", False, False, "done"),
    ("unknown", 0.8, "completed", False, False, "done"),
    ("machine_end_beep", 0.0, "voicemail", True, False, "failed"),
    ("machine_end_silence", 0.8, "voicemail", True, False, "failed"),
    ("machine_end_other", 1.5, "voicemail", True, False, "failed"),
    ("fax", 0.3, "fax", False, True, "failed"),
]


@pytest.mark.parametrize(("answered_by", "delay_s", "outcome", "message", "hangup", "state"), CASES)
async def test_each_answered_by_value(
    engine_factory: EngineFactory,
    answered_by: str,
    delay_s: float,
    outcome: str,
    message: bool,
    hangup: bool,
    state: str,
) -> None:
    """Each AnsweredBy value, at its moment: the right action, outcome and member state;
    the call was placed with DetectMessageEnd and AsyncAmd (its stream starts at once)."""
    kind = "fax" if answered_by == "fax" else "machine" if "machine" in answered_by else "human"
    behaviour = CallBehaviour(
        outcomes={kind: 1},
        ring_s=0.05,
        talk_s=2.5,
        amd_delay_s=delay_s,
        answered_by={kind: answered_by},
    )
    async with engine_factory(behaviour) as engine:
        # voicemail_retry with one attempt: a machine is not redialed past max_attempts.
        cid = await new_campaign(engine.client, phones(1), calls_per_second=20, max_attempts=1)
        await engine.client.post(f"/api/v1/campaigns/{cid}/start")
        await _wait_ended(engine, cid)
        (sim_call,) = engine.sim.calls.values()
        assert sim_call.machine_detection == "DetectMessageEnd"
        assert sim_call.amd_callback is not None and "/twilio/amd?attempt=" in sim_call.amd_callback
        assert sim_call.events is not None and sim_call.events.twiml is not None
        assert "<Hangup" not in sim_call.events.twiml  # the voice webhook never waited for AMD

        async def call_over() -> bool:  # the verdict commits first, its REST action follows
            return sim_call.status == "completed"

        await engine.wait_for(call_over, timeout_s=15)
        assert _actions(engine, sim_call) == (message, hangup)
        async with engine.sessions() as session:
            call = (await session.scalars(select(Call))).one()
            member = (await session.scalars(select(CampaignLead))).one()
        assert call.answered_by == answered_by
        if outcome == "completed":
            assert call.outcome not in ("voicemail", "fax")
        else:
            assert call.outcome == outcome
        assert member.state == state


async def test_fax_is_never_redialed(engine_factory: EngineFactory) -> None:
    """A fax with attempts left (max_attempts 3): hung up once, outcome fax, no second dial."""
    behaviour = CallBehaviour(outcomes={"fax": 1}, ring_s=0.05, amd_delay_s=0.1)
    async with engine_factory(behaviour) as engine:
        cid = await new_campaign(
            engine.client, phones(1), calls_per_second=20, max_attempts=3, retry_base_min=1
        )
        await engine.client.post(f"/api/v1/campaigns/{cid}/start")
        await _wait_ended(engine, cid)
        assert len(engine.sim.calls) == 1
        async with engine.sessions() as session:
            member = (await session.scalars(select(CampaignLead))).one()
        assert (member.state, member.last_outcome) == ("failed", "fax")


async def test_duplicate_amd_callback_acts_once(engine_factory: EngineFactory) -> None:
    """The same verdict delivered twice leaves one message (the second is a no-op)."""
    behaviour = CallBehaviour(outcomes={"machine": 1}, ring_s=0.05, talk_s=3.0, amd_delay_s=0.2)
    async with engine_factory(behaviour) as engine:
        cid = await new_campaign(engine.client, phones(1), calls_per_second=20, max_attempts=1)
        await engine.client.post(f"/api/v1/campaigns/{cid}/start")

        async def verdict_sent() -> bool:
            return any(c.events and c.events.amd_sent_at for c in engine.sim.calls.values())

        await engine.wait_for(verdict_sent)
        (sim_call,) = engine.sim.calls.values()
        await engine.sim.send_amd(sim_call.sid, "machine_end_beep")
        await _wait_ended(engine, cid)
        spoken = [d for d in sim_call.twiml_updates if "<Play" in d or "<Say" in d]
        assert len(spoken) == 1
