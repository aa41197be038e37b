"""``GET /api/v1/dead-letters``: jobs that exhausted their retries, newest first.

Reads the store the broker's :class:`~voicebot.jobs.dead_letters.DeadLetterRecorder`
writes (in-process for the stub, the Redis list or the RabbitMQ queue otherwise), in a
thread under :data:`DEAD_LETTERS_TIMEOUT_S`. A backend that is down or stalls answers
503 ``broker_unavailable`` in the one error shape. Authenticated like all of /api.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import dramatiq
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voicebot.api.body import parse_query
from voicebot.api.schemas import DeadLetterPage, DeadLetterQuery
from voicebot.api.spec import Returns, operation
from voicebot.api.state import AppState, app_state
from voicebot.errors import BrokerUnavailableError
from voicebot.jobs.dead_letters import DEAD_LETTERS_KEPT, dead_letter_store

DEAD_LETTERS_TIMEOUT_S: Final = 3.0


def app_broker(state: AppState) -> dramatiq.Broker | None:
    """The Dramatiq broker the lifespan built (None before it runs)."""
    broker = state.extras.get("broker")
    if broker is None and state.extras.get("jobs") is not None:
        broker = getattr(state.extras["jobs"], "broker", None)
    return broker if isinstance(broker, dramatiq.Broker) else None


@operation(
    summary="List dead letters",
    tags=("ops",),
    description="Jobs that exhausted their retries, newest first; 503 when the broker's "
    "store is down.",
    query=DeadLetterQuery,
    replies=(Returns(200, DeadLetterPage),),
    errors=(422, 503),
)
async def list_dead_letters(request: Request) -> Response:
    query = parse_query(request, DeadLetterQuery)
    limit, offset, actor = query.limit, query.offset, query.actor or None
    broker = app_broker(app_state(request))
    store = dead_letter_store(broker) if broker is not None else None
    if store is None:
        raise BrokerUnavailableError("no job broker is running")
    try:
        async with asyncio.timeout(DEAD_LETTERS_TIMEOUT_S):
            letters = await asyncio.to_thread(store.newest, DEAD_LETTERS_KEPT)
    except TimeoutError as exc:
        message = f"{store.kind}: no answer in {DEAD_LETTERS_TIMEOUT_S}s"
        raise BrokerUnavailableError(message) from exc
    except store.errors as exc:
        raise BrokerUnavailableError(f"{store.kind}: {type(exc).__name__}: {exc}"[:300]) from exc
    if actor is not None:
        letters = [letter for letter in letters if letter.actor == actor]
    page = letters[offset : offset + limit]
    body: dict[str, Any] = {
        "items": [letter.to_json() for letter in page],
        "total": len(letters),
        "limit": limit,
        "offset": offset,
        "broker": store.kind,
    }
    return JSONResponse(body)


routes = [Route("/dead-letters", list_dead_letters, methods=["GET"])]
