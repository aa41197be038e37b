"""The text conversation endpoint: the same brain as on calls, over JSON.

State between requests lives under ``conversation_id`` in a bounded store (Redis when
configured, else process memory; bytes per conversation and in total, with a TTL: see
:mod:`voicebot.api.conversation_store`); without one, the state is rebuilt from the given
history (both formats accepted).
With ``campaign_id`` the agent speaks that campaign's script (404 for an unknown one);
with an LLM configured the brain is the LLM brain, falling back to the rules per turn.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voicebot.api.body import parse_body
from voicebot.api.conversation_store import ConversationStore
from voicebot.api.fields import Id, Line, Text
from voicebot.api.spec import Returns, operation
from voicebot.api.state import AppState, app_state
from voicebot.brain import state as stages
from voicebot.brain.base import ChatTurn, ConversationState, LeadContext
from voicebot.brain.script import AgentScript
from voicebot.db.booking_tools import DbBookingTools
from voicebot.db.models import Lead
from voicebot.db.scripts import load_agent_script
from voicebot.errors import ConflictError, NotFoundError
from voicebot.store.redis import RedisStore

MAX_HISTORY_TURNS = 100


class RoleTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"]
    content: str = Field(max_length=4000)


class ConversationIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"message": "שלום, מי זה?", "lead_id": 1}]},
    )
    message: Text = Field(min_length=1, max_length=4000)
    history: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_HISTORY_TURNS)
    lead_id: Id | None = None
    campaign_id: Id | None = None
    conversation_id: Line | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _history_shape(self) -> ConversationIn:
        self.turns = normalize_history(self.history)
        return self

    turns: list[RoleTurn] = Field(default_factory=list, exclude=True)


def normalize_history(history: list[dict[str, Any]]) -> list[RoleTurn]:
    """Accept ``[{"user": …, "agent": …}]`` (legacy) and ``[{"role", "content"}]``."""
    turns: list[RoleTurn] = []
    for item in history:
        if "role" in item:
            turns.append(RoleTurn.model_validate(item))
            continue
        if not set(item) <= {"user", "agent"} or not item:
            raise ValueError("history items are {role, content} or {user, agent}")
        if not all(isinstance(text, str | None) for text in item.values()):
            raise ValueError("history texts are strings")
        if item.get("user"):
            turns.append(RoleTurn(role="user", content=str(item["user"])))
        if item.get("agent"):
            turns.append(RoleTurn(role="assistant", content=str(item["agent"])))
    return turns


class ActionOut(BaseModel):
    kind: str
    data: Any


class ChatTurnOut(BaseModel):
    role: str
    content: str


class ConversationOut(BaseModel):
    conversation_id: str
    reply: str
    intent: str | None
    actions: list[ActionOut]
    end_call: bool
    transfer: bool
    stage: str
    history: list[ChatTurnOut]


@operation(
    summary="Talk to the agent over text",
    tags=("conversation",),
    description="One caller turn in, the agent's reply out. Pass conversation_id back to "
    "continue; without it the state is rebuilt from history. campaign_id speaks that "
    "campaign's script.",
    body=ConversationIn,
    replies=(Returns(200, ConversationOut),),
    errors=(404, 409, 422),
)
async def converse(request: Request) -> Response:
    data = await parse_body(request, ConversationIn)
    state = app_state(request)
    lead_ctx = None
    script: AgentScript | None = None
    async with state.sessions() as session:
        if data.lead_id is not None:
            lead = await session.get(Lead, data.lead_id)
            if lead is None:
                raise NotFoundError(f"lead {data.lead_id} not found")
            lead_ctx = LeadContext(
                lead_id=lead.id, name=lead.name, company=lead.company, phone=lead.phone
            )
        if data.campaign_id is not None:
            script = await load_agent_script(session, data.campaign_id)
            if script is None:
                raise NotFoundError(f"campaign {data.campaign_id} not found")
    conversation_id = data.conversation_id or uuid.uuid4().hex
    store = conversation_store(state)
    stored = await store.load(conversation_id)
    if stored is not None:
        convo = ConversationState.from_dict(stored)
        owner = convo.lead.lead_id if convo.lead is not None else None
        if data.lead_id is not None and owner is not None and owner != data.lead_id:
            # The agent would greet one lead by name and book, call back or opt out another.
            raise ConflictError(f"conversation {conversation_id} is with lead {owner}")
        lead_id = data.lead_id or owner
    else:
        convo = ConversationState(
            stage=stages.PERMISSION,
            history=[ChatTurn(role=t.role, content=t.content) for t in data.turns],
            lead=lead_ctx,
        )
        lead_id = data.lead_id
    tools = DbBookingTools(settings=state.settings, sessions=state.sessions, lead_id=lead_id)
    brain = state.extras["call_services"].brain_factory(tools, script=script)
    reply = await brain.respond(convo, data.message, now=datetime.now(state.settings.tz))
    kept = await store.save(conversation_id, convo.to_dict())
    return JSONResponse(
        {
            "conversation_id": conversation_id,
            "reply": reply.text,
            "intent": reply.intent,
            "actions": [{"kind": a.kind, "data": _jsonable(a.data)} for a in reply.actions],
            "end_call": reply.end_call,
            "transfer": reply.transfer,
            "stage": convo.stage,
            "history": [
                {"role": t["role"], "content": t["content"]} for t in kept.get("history", [])
            ],
        }
    )


def conversation_store(state: AppState) -> ConversationStore:
    """The app's conversation store, made on first use over the lifespan's Redis client."""
    store = state.extras.get("conversation_store")
    if not isinstance(store, ConversationStore):
        settings = state.settings
        store = ConversationStore(
            redis=RedisStore(state.redis) if state.redis is not None else None,
            ttl_s=settings.turn_state_ttl_s,
            max_conversation_bytes=settings.conversation_max_bytes,
            max_memory_bytes=settings.conversation_memory_max_bytes,
        )
        state.extras["conversation_store"] = store
    return store


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


routes = [Route("/conversation", converse, methods=["POST"])]
