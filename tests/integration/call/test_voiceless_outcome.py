"""A call we could not voice (``tts_unavailable``) is retried by its campaign like an
unanswered call, and says nothing about the lead."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import make_settings
from voicebot.db.engine import create_engine, create_sessionmaker
from voicebot.db.models import (
    Call,
    CallOutcome,
    CallStatus,
    Campaign,
    CampaignLead,
    CampaignStatus,
    Lead,
    LeadStatus,
    MemberState,
)
from voicebot.db.outcomes import call_outcome, record_outcome
from voicebot.db.types import utcnow


@pytest.mark.parametrize(("attempts", "state"), [(1, "retry"), (3, "failed")])
async def test_tts_unavailable_is_retried_with_backoff_up_to_max_attempts(
    database_url: str, attempts: int, state: str
) -> None:
    """The campaign member of a voiceless call is due again retry_base_min later (or
    failed once max_attempts are used up); the lead's status is left as it was."""
    engine = create_engine(make_settings(database_url=database_url))
    sessions = create_sessionmaker(engine)
    try:
        async with sessions() as db:
            campaign = Campaign(
                name="חוזרים אחרי תקלה",
                status=CampaignStatus.RUNNING,
                max_attempts=3,
                retry_base_min=10,
            )
            lead = Lead(phone="+972541112233", name="דנה כהן")
            db.add_all([campaign, lead])
            await db.flush()
            member = CampaignLead(
                campaign_id=campaign.id,
                lead_id=lead.id,
                state=MemberState.IN_CALL,
                attempts=attempts,
            )
            call = Call(
                call_sid="CA" + "7" * 32,
                campaign_id=campaign.id,
                lead_id=lead.id,
                status=CallStatus.COMPLETED,
            )
            db.add_all([member, call])
            await db.flush()
            assert await record_outcome(db, call, call_outcome("tts_unavailable"))
            await db.commit()
            await db.refresh(member)
            await db.refresh(lead)
        assert call.outcome == CallOutcome.TTS_UNAVAILABLE
        assert (member.state, member.last_outcome) == (state, "tts_unavailable")
        assert lead.status == LeadStatus.NEW
        if state == "retry":
            assert member.next_attempt_at is not None
            wait = member.next_attempt_at - utcnow()
            assert timedelta(minutes=9) < wait <= timedelta(minutes=40)
    finally:
        await engine.dispose()
