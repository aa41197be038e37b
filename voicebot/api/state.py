"""What the lifespan builds and every route reads: engine, sessions, settings, metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from voicebot.config import Settings
from voicebot.metrics import Metrics
from voicebot.store.resilient import ResilientStore


@dataclass
class AppState:
    settings: Settings
    metrics: Metrics
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    # Each statement commits on its own (voicebot.db.engine.create_autocommit_engine).
    autocommit: async_sessionmaker[AsyncSession]
    store: ResilientStore
    redis: Any = None
    extras: dict[str, Any] = field(default_factory=dict)


def app_state(conn: HTTPConnection) -> AppState:
    state: AppState = conn.app.state.voicebot
    return state
