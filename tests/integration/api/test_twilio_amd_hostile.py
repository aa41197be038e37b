"""``POST /twilio/amd`` as Twilio and as a forger send it: unsigned or wrongly signed
callbacks change nothing (403); an unknown CallSid or a value Twilio never sends is
answered 204 and acts on nothing; a machine verdict that arrives after the call already
ended (a person hung up before AMD decided) neither spends the lead's one voicemail
message nor rewrites how the call ended."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette
from twilio.request_validator import RequestValidator

from tests.integration.api.test_twilio_status import (  # the fixture too
    AUTH_TOKEN,
    SID,
    _callback,
    _rows,
    _seed,
    settings,
)
from voicebot.config import Settings
from voicebot.db.models import Call, CallOutcome, TwilioEvent
from voicebot.db.outcomes import record_outcome

__all__ = ["settings"]


async def _amd(
    client: httpx.AsyncClient,
    settings: Settings,
    attempt_id: int | None,
    answered_by: str,
    *,
    sid: str = SID,
    signature: str | None = None,
) -> httpx.Response:
    path = "/twilio/amd" + (f"?attempt={attempt_id}" if attempt_id is not None else "")
    form = {"CallSid": sid, "AnsweredBy": answered_by, "MachineDetectionDuration": "4100"}
    if signature is None:
        signature = RequestValidator(AUTH_TOKEN).compute_signature(
            settings.public_base_url + path, form
        )
    headers = {"X-Twilio-Signature": signature} if signature else {}
    return await client.post(path, data=form, headers=headers)


async def _amd_tokens(app: Starlette) -> int:
    async with app.state.voicebot.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(TwilioEvent).where(TwilioEvent.kind == "amd")
        )
        return int(count or 0)


async def test_forged_verdicts_change_nothing(
    app: Starlette, client: httpx.AsyncClient, settings: Settings
) -> None:
    """No signature, an empty one, a signature of other parameters: 403 each, no token
    taken, the call's answered_by and outcome untouched."""
    ids = await _seed(app)
    assert (await _callback(client, settings, ids["attempt"], "in-progress", "t1")).status_code
    other = RequestValidator(AUTH_TOKEN).compute_signature(
        settings.public_base_url + "/twilio/amd", {"CallSid": SID, "AnsweredBy": "human"}
    )
    for signature in ("", "bm90LWEtc2lnbmF0dXJl", other):
        response = await _amd(
            client, settings, ids["attempt"], "machine_end_beep", signature=signature
        )
        assert response.status_code == 403, (signature, response.text)
    rows = await _rows(app, ids)
    assert (rows["call"].answered_by, rows["call"].outcome) == (None, None)
    assert rows["lead"].voicemail_left_at is None
    assert await _amd_tokens(app) == 0


@pytest.mark.parametrize("answered_by", ["machine_end_beep", "fax", "unknown"])
async def test_unknown_call_sid_is_answered_and_ignored(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, answered_by: str
) -> None:
    """A signed verdict for a CallSid we have no row for: 204 (Twilio must not retry),
    nothing recorded on any call, and the SID's machine token left free (were the row
    to appear, its transcript check must still be able to act)."""
    ids = await _seed(app)
    response = await _amd(client, settings, None, answered_by, sid="CA" + "e" * 32)
    assert response.status_code == 204
    rows = await _rows(app, ids)
    assert (rows["call"].answered_by, rows["call"].outcome) == (None, None)
    assert await _amd_tokens(app) == 0


@pytest.mark.parametrize(
    "answered_by", ["machine_end_beep", "machine_end_silence", "machine_end_other", "fax"]
)
@pytest.mark.parametrize("talked", [True, False], ids=["conversation", "hung-up"])
async def test_machine_verdict_after_the_call_ended_is_not_acted_on(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, answered_by: str, talked: bool
) -> None:
    """The call was answered and completed before AMD decided: the late verdict is
    answered 204 and the lead's one voicemail message is not spent (a later attempt may
    still leave it). A call that had a conversation keeps its outcome; one that ended
    with none takes the machine's (a fax line is then never redialed)."""
    ids = await _seed(app)
    for n, status in enumerate(("in-progress", "completed")):
        response = await _callback(client, settings, ids["attempt"], status, f"late-{n}")
        assert response.status_code in (200, 204), response.text
    if talked:  # what the stream's recorder stores for a conversation
        async with app.state.voicebot.sessions() as session:
            call = await session.get(Call, ids["call"])
            assert call is not None
            await record_outcome(session, call, CallOutcome.NOT_INTERESTED)
            await session.commit()
    response = await _amd(client, settings, ids["attempt"], answered_by)
    assert response.status_code == 204
    rows = await _rows(app, ids)
    assert rows["lead"].voicemail_left_at is None
    expected = "fax" if answered_by == "fax" else "voicemail"
    assert rows["call"].outcome == ("not_interested" if talked else expected)
