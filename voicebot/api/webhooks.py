"""The webhook delivery log: list deliveries, replay one."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voicebot.api.body import parse_path, parse_query
from voicebot.api.fields import Id, Line
from voicebot.api.schemas import Page, iso
from voicebot.api.spec import Returns, operation
from voicebot.api.state import app_state
from voicebot.db.models import WebhookDelivery
from voicebot.errors import NotFoundError
from voicebot.webhooks.delivery import replay


class DeliveryQuery(Page):
    status: Literal["pending", "sending", "delivered", "failed"] | None = None
    event_type: Line | None = Field(default=None, max_length=32)
    campaign_id: Id | None = None


class DeliveryPath(BaseModel):
    delivery_id: Id


class DeliveryOut(BaseModel):
    id: int
    event_id: str
    event_type: str
    campaign_id: int | None
    url: str
    status: str
    attempts: int
    next_attempt_at: str | None
    expires_at: str | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: str | None
    created_at: str | None
    payload: dict[str, Any]


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    limit: int
    offset: int


def delivery_json(d: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "campaign_id": d.campaign_id,
        "url": d.url,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": iso(d.next_attempt_at),
        "expires_at": iso(d.expires_at),
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "delivered_at": iso(d.delivered_at),
        "created_at": iso(d.created_at),
        "payload": d.payload,
    }


@operation(
    summary="List webhook deliveries",
    tags=("webhooks",),
    description="The delivery log, newest first: every event, its target, attempts and "
    "last answer; filters by status, event type and campaign.",
    query=DeliveryQuery,
    replies=(Returns(200, DeliveryPage),),
)
async def list_deliveries(request: Request) -> Response:
    q = parse_query(request, DeliveryQuery)
    stmt = select(WebhookDelivery).order_by(WebhookDelivery.id.desc())
    if q.status is not None:
        stmt = stmt.where(WebhookDelivery.status == q.status)
    if q.event_type is not None:
        stmt = stmt.where(WebhookDelivery.event_type == q.event_type)
    if q.campaign_id is not None:
        stmt = stmt.where(WebhookDelivery.campaign_id == q.campaign_id)
    async with app_state(request).sessions() as session:
        rows = (await session.scalars(stmt.limit(q.limit).offset(q.offset))).all()
        items = [delivery_json(d) for d in rows]
    return JSONResponse({"items": items, "limit": q.limit, "offset": q.offset})


@operation(
    summary="Replay a webhook delivery",
    tags=("webhooks",),
    description="Send the event again now, with the same Voicebot-Event-Id (receivers "
    "de-duplicate on it) and a fresh retry window.",
    path=DeliveryPath,
    replies=(Returns(202, DeliveryOut),),
    errors=(404, 422),
)
async def replay_delivery(request: Request) -> Response:
    delivery_id = parse_path(request, DeliveryPath).delivery_id
    state = app_state(request)
    async with state.sessions() as session:
        delivery = await replay(session, state.settings, delivery_id)
        if delivery is None:
            raise NotFoundError(f"webhook delivery {delivery_id} not found")
        await session.commit()
        body = delivery_json(delivery)
    runner = getattr(state.extras.get("jobs"), "webhooks", None)
    dispatcher = getattr(runner, "dispatcher", None)
    if dispatcher is not None:
        dispatcher.wake()
    return JSONResponse(body, status_code=202)


routes = [
    Route("/webhooks/deliveries", list_deliveries, methods=["GET"]),
    Route("/webhooks/deliveries/{delivery_id:int}/replay", replay_delivery, methods=["POST"]),
]
