"""The pre-dial eligibility webhook: may this lead be called now?

Before a campaign dials a lead it POSTs ``{"campaign_id": …, "lead": {…}}`` to the
campaign's ``eligibility_url``, signed like every webhook (``Voicebot-Signature``). An
answer ``{"eligible": false, "reason": …}`` skips the lead; so does an error status, an
unreadable answer or no answer within :data:`ELIGIBILITY_TIMEOUT_S` (the CRM did not say
yes). ``{"eligible": true}`` dials; ``"eligible"`` must be a JSON boolean (``"no"`` or
``"false"`` is unreadable, so skipped). The 2 s bound the whole exchange, body included
(a CRM trickling its answer is cut off), an answer larger than
:data:`ANSWER_MAX_BYTES` is not read past that size (skipped), and a redirect is not
followed (skipped: the dialer never fetches an address the operator did not set).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Final

import httpx

from voicebot.webhooks.events import new_event_id
from voicebot.webhooks.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, signature_header

ELIGIBILITY_TIMEOUT_S: Final = 2.0
REASON_MAX_CHARS: Final = 300
ANSWER_MAX_BYTES: Final = 64 * 1024
"""An eligibility answer is a few dozen bytes; more than this is not a CRM's answer."""


class _TooLarge(Exception):
    """The answer went past ANSWER_MAX_BYTES."""


async def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """The status and (bounded) body of one POST; raises httpx errors and _TooLarge."""
    async with (
        httpx.AsyncClient(timeout=ELIGIBILITY_TIMEOUT_S, follow_redirects=False) as client,
        client.stream("POST", url, content=body, headers=headers) as response,
    ):
        if not 200 <= response.status_code < 300:
            return response.status_code, b""
        data = bytearray()
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) > ANSWER_MAX_BYTES:
                raise _TooLarge
        return response.status_code, bytes(data)


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
        async with asyncio.timeout(ELIGIBILITY_TIMEOUT_S):
            status_code, content = await _post(url, body, headers)
    except (TimeoutError, httpx.TimeoutException):  # whichever 2 s bound fired first
        return Eligibility(
            False, f"eligibility check failed: no answer in {ELIGIBILITY_TIMEOUT_S:g} s"
        )
    except httpx.HTTPError as exc:
        return Eligibility(False, f"eligibility check failed: {type(exc).__name__}")
    except _TooLarge:
        return Eligibility(False, f"eligibility check failed: answer over {ANSWER_MAX_BYTES} bytes")
    if not 200 <= status_code < 300:
        return Eligibility(False, f"eligibility check failed: HTTP {status_code}")
    try:
        answer = json.loads(content)
    except ValueError:
        return Eligibility(False, "eligibility check failed: not JSON")
    if not isinstance(answer, dict) or not isinstance(answer.get("eligible"), bool):
        return Eligibility(False, "eligibility check failed: no boolean 'eligible'")
    reason = answer.get("reason")
    text = str(reason)[:REASON_MAX_CHARS] if reason is not None else None
    return Eligibility(answer["eligible"], text)
