"""The pre-dial eligibility webhook: the CRM's "no", an error or a stall past 2 s skips
the lead (outcome ``skipped`` with the reason); "yes" dials. Requests are signed."""

from __future__ import annotations

import asyncio
import json

from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.integration.jobs.conftest import EngineFactory, new_campaign, phones
from voicebot.db.models import CampaignAttempt, CampaignLead, Lead
from voicebot.testing.twilio_api_sim import serve_on_loopback
from voicebot.testing.twilio_call_flow import CallBehaviour
from voicebot.webhooks.signing import SIGNATURE_HEADER, verify_signature

SECRET = "whsec_eligibility_0123"
YES, NO, BROKEN, SLOW = phones(4, start=70)


async def test_no_error_and_stall_skip_yes_dials(engine_factory: EngineFactory) -> None:
    """Four leads: eligible, refused with a reason, a 500, a 3 s stall: one call placed,
    three members skipped with their reasons; every request verified its signature."""
    verified: list[bool] = []

    async def ask(request: Request) -> Response:
        body = await request.body()
        try:
            verify_signature(SECRET, body, request.headers.get(SIGNATURE_HEADER))
            verified.append(True)
        except ValueError:
            verified.append(False)
        phone = json.loads(body)["lead"]["phone"]
        if phone == NO:
            return JSONResponse({"eligible": False, "reason": "לקוח קיים"})
        if phone == BROKEN:
            return Response(status_code=500)
        if phone == SLOW:
            await asyncio.sleep(3)
        return JSONResponse({"eligible": True})

    crm = Starlette(routes=[Route("/eligible", ask, methods=["POST"])])
    behaviour = CallBehaviour(outcomes={"busy": 1}, ring_s=0.05)
    async with serve_on_loopback(crm) as crm_url, engine_factory(behaviour) as engine:
        cid = await new_campaign(
            engine.client,
            [YES, NO, BROKEN, SLOW],
            calls_per_second=20,
            max_attempts=1,
            eligibility_url=f"{crm_url}/eligible",
            webhook_secret=SECRET,
        )
        await engine.client.post(f"/api/v1/campaigns/{cid}/start")

        async def completed() -> bool:
            return (await engine.stats(cid))["status"] == "completed"

        await engine.wait_for(completed, timeout_s=40)
        async with engine.sessions() as session:
            rows = (
                await session.execute(
                    select(Lead.phone, CampaignLead.state, CampaignLead.last_outcome).join(
                        CampaignLead, CampaignLead.lead_id == Lead.id
                    )
                )
            ).all()
            reasons = set(
                (
                    await session.scalars(
                        select(CampaignAttempt.reason).where(CampaignAttempt.status == "not_dialed")
                    )
                ).all()
            )
    states = {phone: (state, outcome) for phone, state, outcome in rows}
    assert states[YES] == ("failed", "no_answer")  # dialed: busy, no attempts left
    assert states[NO] == states[BROKEN] == states[SLOW] == ("skipped", "skipped")
    assert "לקוח קיים" in reasons
    assert "eligibility check failed: HTTP 500" in reasons
    assert "eligibility check failed: no answer in 2 s" in reasons
    assert len(engine.sim.calls) == 1
    assert verified and all(verified)
