"""Bad input on every route is a 4xx in the one error shape, never a 500 (SQLite and Postgres):
NUL and control characters, ids past the 32-bit id columns or in non-ASCII digits, out-of-range
datetimes, deep JSON, oversized arrays, SIP/client addresses, long idempotency tokens."""

from __future__ import annotations

import urllib.parse
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette
from twilio.request_validator import RequestValidator

from tests.conftest import make_settings
from voicebot.config import Settings
from voicebot.db.models import Call, Lead

HUGE = 10**20
JUST_PAST_INT32 = 2**31
AUTH_TOKEN = "bad-input-auth-token"
ACCOUNT_SID = "AC" + "3" * 32


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url=database_url, twilio_auth_token=AUTH_TOKEN)


async def _seed(client: httpx.AsyncClient) -> dict[str, int]:
    lead = await client.post("/api/v1/leads", json={"phone": "054-456-7870", "name": "דנה"})
    campaign = await client.post("/api/v1/campaigns", json={"name": "חורף"})
    assert lead.status_code == 201 and campaign.status_code == 201, campaign.text
    return {"lead": lead.json()["id"], "campaign": campaign.json()["id"]}


def _assert_error_shape(response: httpx.Response, *, status: int = 422) -> None:
    assert response.status_code == status, (response.request.url, response.text[:300])
    error = response.json()["error"]
    assert error["code"] and error["message"]


def _text_cases(ids: dict[str, int], bad: str) -> list[tuple[str, str, dict[str, Any]]]:
    lead, campaign = ids["lead"], ids["campaign"]
    return [
        ("POST", "/api/v1/leads", {"json": {"phone": "054-456-7871", "name": bad}}),
        ("PATCH", f"/api/v1/leads/{lead}", {"json": {"name": bad}}),
        ("PATCH", f"/api/v1/leads/{lead}", {"json": {"notes": bad}}),
        ("GET", "/api/v1/leads", {"params": {"q": bad}}),
        ("GET", "/api/v1/leads", {"params": {"company": bad}}),
        ("GET", "/api/v1/leads", {"params": {"tag": bad}}),
        ("GET", "/api/v1/calls", {"params": {"status": bad}}),
        ("GET", "/api/v1/meetings", {"params": {"status": bad}}),
        ("GET", "/api/v1/dead-letters", {"params": {"actor": bad}}),
        ("POST", "/api/v1/do-not-call", {"json": {"phone": "054-456-7872", "reason": bad}}),
        ("POST", "/api/v1/campaigns", {"json": {"name": bad}}),
        ("POST", "/api/v1/campaigns", {"json": {"name": "x", "agent_script": {"company": bad}}}),
        ("POST", f"/api/v1/campaigns/{campaign}/leads", {"json": {"tag": bad}}),
        (
            "POST",
            "/api/v1/meetings",
            {"json": {"lead_id": lead, "start": "2030-01-06T10:00:00+02:00", "notes": bad}},
        ),
        ("POST", "/api/v1/conversation", {"json": {"message": bad}}),
        ("POST", "/api/v1/conversation", {"json": {"message": "שלום", "conversation_id": bad}}),
        (
            "POST",
            "/api/v1/conversation",
            {"json": {"message": "שלום", "history": [{"role": "user", "content": bad}]}},
        ),
    ]


@pytest.mark.parametrize("bad", ["a\x00b", "a\x1bb", "a\x7fb"], ids=["nul", "esc", "del"])
async def test_control_characters_are_422_on_every_text_input(
    client: httpx.AsyncClient, bad: str
) -> None:
    """NUL (Postgres refuses it: a 500 before), ESC and DEL in any body, query or path text."""
    ids = await _seed(client)
    for method, path, kwargs in _text_cases(ids, bad):
        _assert_error_shape(await client.request(method, path, **kwargs))
    _assert_error_shape(await client.delete("/api/v1/do-not-call/%00"))


async def test_legacy_history_texts_must_be_strings(client: httpx.AsyncClient) -> None:
    """A legacy history turn whose text is an object or a number is refused, not stringified."""
    for text in ({"a": 1}, 5, ["x"]):
        body = {"message": "שלום", "history": [{"user": text}]}
        _assert_error_shape(await client.post("/api/v1/conversation", json=body))


async def test_lone_surrogate_in_json_is_422(client: httpx.AsyncClient) -> None:
    """A lone UTF-16 surrogate escape cannot be encoded for the database: refused."""
    body = b'{"phone": "054-456-7873", "name": "\\ud800"}'
    response = await client.post(
        "/api/v1/leads", content=body, headers={"content-type": "application/json"}
    )
    _assert_error_shape(response)


async def test_ids_past_64_bits_are_422_on_every_id_route(client: httpx.AsyncClient) -> None:
    """10^20 as a path id, a body id, a list of ids or a query id: 422, never a 500; and
    2^31, past Postgres' INTEGER ids."""
    ids = await _seed(client)
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/api/v1/leads/{HUGE}", {}),
        ("PATCH", f"/api/v1/leads/{HUGE}", {"json": {"name": "x"}}),
        ("PUT", f"/api/v1/leads/{HUGE}", {"json": {"name": "x"}}),
        ("DELETE", f"/api/v1/leads/{HUGE}", {}),
        ("GET", f"/api/v1/meetings/{HUGE}", {}),
        ("POST", f"/api/v1/meetings/{HUGE}/cancel", {}),
        ("DELETE", f"/api/v1/meetings/{HUGE}", {}),
        ("GET", f"/api/v1/calls/{HUGE}", {}),
        ("GET", f"/api/v1/campaigns/{HUGE}", {}),
        ("GET", f"/api/v1/campaigns/{HUGE}/stats", {}),
        ("POST", f"/api/v1/campaigns/{HUGE}/leads", {"json": {"lead_ids": [1]}}),
        ("POST", f"/api/v1/campaigns/{HUGE}/start", {}),
        ("POST", f"/api/v1/campaigns/{ids['campaign']}/leads", {"json": {"lead_ids": [HUGE]}}),
        ("POST", "/api/v1/meetings", {"json": {"lead_id": HUGE, "start": "2030-01-06T10:00Z"}}),
        (
            "POST",
            "/api/v1/meetings",
            {"json": {"lead_id": ids["lead"], "start": "2030-01-06T10:00Z", "call_id": HUGE}},
        ),
        ("POST", "/api/v1/conversation", {"json": {"message": "שלום", "lead_id": HUGE}}),
        ("POST", "/api/v1/conversation", {"json": {"message": "שלום", "campaign_id": HUGE}}),
        ("GET", "/api/v1/calls", {"params": {"lead_id": str(HUGE)}}),
        ("GET", "/api/v1/calls", {"params": {"campaign_id": str(HUGE)}}),
        ("GET", "/api/v1/meetings", {"params": {"lead_id": str(HUGE)}}),
        ("GET", "/api/v1/leads", {"params": {"offset": str(HUGE)}}),
    ]
    for method, path, kwargs in cases:
        _assert_error_shape(await client.request(method, path, **kwargs))
    for path in ("/api/v1/leads/{}", "/api/v1/calls/{}", "/api/v1/campaigns/{}/stats"):
        _assert_error_shape(await client.get(path.format(JUST_PAST_INT32)))
    ids_query = {"lead_id": str(JUST_PAST_INT32)}
    _assert_error_shape(await client.get("/api/v1/calls", params=ids_query))


@pytest.mark.parametrize("digits", ["²", "١٢", "１２"], ids=["superscript", "arabic", "fullwidth"])
async def test_non_ascii_digits_are_422(client: httpx.AsyncClient, digits: str) -> None:
    """Digits other than ASCII in a query integer are refused (superscript was a 500)."""
    for path, name in [
        ("/api/v1/calls", "lead_id"),
        ("/api/v1/calls", "campaign_id"),
        ("/api/v1/meetings", "lead_id"),
        ("/api/v1/leads", "limit"),
        ("/api/v1/campaigns", "offset"),
    ]:
        _assert_error_shape(await client.get(path, params={name: digits}))
    assert (await client.get(f"/api/v1/leads/{digits}")).status_code == 404


async def test_out_of_range_datetimes_are_422(client: httpx.AsyncClient) -> None:
    """A meeting at 9999-12-31T23:59:59+00:00 (a 500 before), consent in year 1, a range
    ending past year 9999 in UTC."""
    ids = await _seed(client)
    meeting = {"lead_id": ids["lead"], "start": "9999-12-31T23:59:59+00:00"}
    _assert_error_shape(await client.post("/api/v1/meetings", json=meeting))
    lead = {"phone": "054-456-7874", "consent_at": "0001-01-01T00:00:00+14:00"}
    _assert_error_shape(await client.post("/api/v1/leads", json=lead))
    window = {"from": "2026-01-01T00:00:00+00:00", "to": "9999-12-31T23:59:59-10:00"}
    _assert_error_shape(await client.get("/api/v1/meetings", params=window))
    backwards = {"from": "2026-01-02T00:00:00+00:00", "to": "2026-01-01T00:00:00+00:00"}
    _assert_error_shape(await client.get("/api/v1/meetings", params=backwards))


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 1000 + b"]" * 1000,
        b'{"phone": "054-456-7875", "tags": ' + b"[" * 40 + b"]" * 40 + b"}",
        b'{"phone": "054-456-7875", "name": NaN}',
        b'{"phone": "054-456-7875", "name": 1e999}',
        b'{"phone": "054-456-7875", "name": ' + b"9" * 5000 + b"}",
    ],
    ids=["1000-deep", "40-deep", "nan", "infinite", "5000-digits"],
)
async def test_json_that_cannot_be_stored_is_422(client: httpx.AsyncClient, body: bytes) -> None:
    """Deep nesting (~1,000 levels was a 500), NaN, infinities and giant integers."""
    headers = {"content-type": "application/json"}
    _assert_error_shape(await client.post("/api/v1/leads", content=body, headers=headers))
    campaign = b'{"name": "x", "agent_script": {"a": ' + body + b"}}"
    _assert_error_shape(await client.post("/api/v1/campaigns", content=campaign, headers=headers))


async def test_add_leads_refuses_oversized_id_lists(client: httpx.AsyncClient) -> None:
    """40,000 ids in one add-leads request (a 500 on Postgres) are a 422; 10,000 work."""
    ids = await _seed(client)
    path = f"/api/v1/campaigns/{ids['campaign']}/leads"
    _assert_error_shape(await client.post(path, json={"lead_ids": list(range(1, 40_001))}))
    ok = await client.post(path, json={"lead_ids": list(range(1, 10_001))})
    assert ok.status_code == 200, ok.text
    assert ok.json()["added"] == 1


class _Twilio:
    def __init__(self, client: httpx.AsyncClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.validator = RequestValidator(AUTH_TOKEN)

    async def post(
        self, path: str, form: dict[str, str], headers: dict[str, str] | None = None
    ) -> httpx.Response:
        signature = self.validator.compute_signature(self.settings.public_base_url + path, form)
        return await self.client.post(
            path, data=form, headers={"X-Twilio-Signature": signature, **(headers or {})}
        )


@pytest.mark.parametrize(
    ("caller", "callee"),
    [
        ("sip:alice@example.sip.twilio.com", "sip:agent@voicebot.sip.twilio.com"),
        ("client:0544567876", "+97233769999"),
        ("client:alice", "client:voicebot-agent-with-a-long-identity"),
    ],
    ids=["sip", "client-digits", "client"],
)
async def test_sip_and_client_callers_are_answered_without_a_lead(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, caller: str, callee: str
) -> None:
    """A signed voice webhook from a SIP URI or a Twilio Client identity (a 500 on Postgres:
    the column was 20 characters) is answered; the call keeps the addresses; no lead is made."""
    twilio = _Twilio(client, settings)
    form = {
        "CallSid": "CA" + "5" * 32,
        "AccountSid": ACCOUNT_SID,
        "From": caller,
        "To": callee,
        "Direction": "inbound",
        "CallStatus": "ringing",
    }
    response = await twilio.post("/twilio/voice", form)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    async with app.state.voicebot.sessions() as session:
        call = (await session.scalars(select(Call))).one()
        assert (call.from_number, call.to_number) == (caller, callee)
        assert call.lead_id is None
        assert await session.scalar(select(func.count()).select_from(Lead)) == 0


async def test_phone_caller_still_becomes_a_lead(
    app: Starlette, client: httpx.AsyncClient, settings: Settings
) -> None:
    """An inbound call from a real number still creates the caller's lead."""
    twilio = _Twilio(client, settings)
    form = {"CallSid": "CA" + "6" * 32, "From": "+972544567877", "To": "+97233769999"}
    assert (await twilio.post("/twilio/voice", {**form, "Direction": "inbound"})).status_code == 200
    async with app.state.voicebot.sessions() as session:
        lead = (await session.scalars(select(Lead))).one()
        assert lead.phone == "+972544567877"


async def test_twilio_webhooks_refuse_unstorable_fields(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """Signed webhooks with NUL, an address longer than 255, a long idempotency token or a
    non-ASCII CallDuration are a 422 in the error shape; a 64-character token still works."""
    twilio = _Twilio(client, settings)
    base = {"CallSid": "CA" + "7" * 32, "From": "+972544567878", "To": "+97233769999"}
    _assert_error_shape(await twilio.post("/twilio/voice", {**base, "From": "+9725\x0044"}))
    long_sip = "sip:" + "a" * 260 + "@example.sip.twilio.com"
    _assert_error_shape(await twilio.post("/twilio/voice", {**base, "From": long_sip}))
    status = {**base, "CallStatus": "completed"}
    long_token = {"I-Twilio-Idempotency-Token": "t" * 500}
    _assert_error_shape(await twilio.post("/twilio/status", status, headers=long_token))
    _assert_error_shape(await twilio.post("/twilio/status", {**status, "CallDuration": "²"}))
    _assert_error_shape(await twilio.post("/twilio/status", {**status, "CallDuration": "9" * 30}))
    ok = await twilio.post(
        "/twilio/status", status, headers={"I-Twilio-Idempotency-Token": "t" * 64}
    )
    assert ok.status_code == 204
    gather = f"/twilio/gather?call_id={HUGE}"
    _assert_error_shape(await twilio.post(gather, {"CallSid": base["CallSid"]}))
    unsigned = await client.post("/twilio/voice", data=base)
    _assert_error_shape(unsigned, status=403)


async def test_twilio_status_junk_attempt_and_status_never_500(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """A signed status callback whose attempt id is a superscript or Arabic-Indic digit
    string (isdigit() but not an int) is answered 204 by SID, not a 500; an unknown
    CallStatus is a 4xx in the error shape."""
    twilio = _Twilio(client, settings)
    status = {"CallSid": "CA" + "8" * 32, "CallStatus": "completed"}
    for junk in ("²", "١٢", "9" * 40, "-1", "1e3"):
        query = "?attempt=" + urllib.parse.quote(junk)
        response = await twilio.post("/twilio/status" + query, status)
        assert response.status_code == 204, (junk, response.text)
        voice = await twilio.post("/twilio/voice" + query, {**status, "To": "+97233769999"})
        assert voice.status_code == 200, (junk, voice.text)
    _assert_error_shape(await twilio.post("/twilio/status", {**status, "CallStatus": "bogus"}))
