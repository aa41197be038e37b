"""A webhook receiver for tests and the demo: verifies ``Voicebot-Signature`` and keeps
every event once by ``Voicebot-Event-Id``, the way a CRM integration should.

It answers 204 for a good delivery (also for a duplicate, which it counts and drops),
401 for a bad signature, and ``fail_status`` while :attr:`failing` is set (a receiver
that is up but broken). A receiver that is down altogether is a socket nobody listens
on yet: see the tests.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from voicebot.webhooks.signing import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    SignatureMismatchError,
    verify_signature,
)


@dataclass
class WebhookReceiver:
    secret: str
    failing: bool = False
    fail_status: int = 503
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Event id → event, each kept once (first delivery)."""
    order: list[str] = field(default_factory=list)
    received_at: dict[str, float] = field(default_factory=dict)
    """Event id → when it was first kept (``time.monotonic()``)."""
    duplicates: int = 0
    bad_signatures: int = 0
    requests: int = 0

    def __post_init__(self) -> None:
        self.app = Starlette(routes=[Route("/hooks", self._hook, methods=["POST"])])

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [self.events[i] for i in self.order if self.events[i]["type"] == event_type]

    async def _hook(self, request: Request) -> Response:
        self.requests += 1
        if self.failing:
            return Response(status_code=self.fail_status)
        body = await request.body()
        try:
            verify_signature(self.secret, body, request.headers.get(SIGNATURE_HEADER))
        except SignatureMismatchError:
            self.bad_signatures += 1
            return Response(status_code=401)
        event_id = request.headers.get(EVENT_ID_HEADER, "")
        if event_id in self.events:
            self.duplicates += 1
            return Response(status_code=204)
        event = json.loads(body)
        if event.get("id") != event_id:
            return Response(status_code=400)
        self.events[event_id] = event
        self.order.append(event_id)
        self.received_at[event_id] = time.monotonic()
        return Response(status_code=204)
