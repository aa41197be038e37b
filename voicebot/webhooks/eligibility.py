"""The pre-dial eligibility webhook: may this lead be called now?

Before a campaign dials a lead it POSTs ``{"campaign_id": …, "lead": {…}}`` to the
campaign's ``eligibility_url``, signed like every webhook (``Voicebot-Signature``). An
answer ``{"eligible": false, "reason": …}`` skips the lead; so does an error status, an
unreadable answer or no answer within :data:`ELIGIBILITY_TIMEOUT_S` (the CRM did not say
yes). ``{"eligible": true}`` dials.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

import httpx

from voicebot.webhooks.events import new_event_id
from voicebot.webhooks.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, signature_header

ELIGIBILITY_TIMEOUT_S: Final = 2.0
REASON_MAX_CHARS: Final = 300


@dataclass(frozen=True, slots=True)
class Eligibility:
    eligible: bool
    reason: str | None = None


async def check_eligibility(
    url: str, secret: str | None, *, campaign_id: int, lead: dict[str, Any]
) -> Eligibility:
    """Ask ``url`` about ``lead`` (see the module docstring); never raises."""
    body = json.dumps(
        {"campaign_id": campaign_id, "lead": lead}, ensure_ascii=False, separators=(",", ":")
    ).encode()
    headers = {"Content-Type": "application/json; charset=utf-8", EVENT_ID_HEADER: new_event_id()}
    if secret:
        headers[SIGNATURE_HEADER] = signature_header(secret, body)
    try:
        async with httpx.AsyncClient(timeout=ELIGIBILITY_TIMEOUT_S) as client:
            response = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return Eligibility(False, f"eligibility check failed: {type(exc).__name__}")
    if not 200 <= response.status_code < 300:
        return Eligibility(False, f"eligibility check failed: HTTP {response.status_code}")
    try:
        answer = response.json()
    except ValueError:
        return Eligibility(False, "eligibility check failed: not JSON")
    if not isinstance(answer, dict) or not isinstance(answer.get("eligible"), bool):
        return Eligibility(False, "eligibility check failed: no boolean 'eligible'")
    reason = answer.get("reason")
    text = str(reason)[:REASON_MAX_CHARS] if reason is not None else None
    return Eligibility(answer["eligible"], text)
