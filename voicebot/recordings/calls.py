"""Recording a stream call: whether to, saving it when the call ends, serving it, and
deleting it after the retention period."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot.config import Settings
from voicebot.db.models import Call, Campaign
from voicebot.db.types import utcnow
from voicebot.errors import StorageError
from voicebot.recordings.storage import RecordingStore, build_store
from voicebot.recordings.track import CallAudio

log = structlog.get_logger(__name__)

RETENTION_SWEEP_BATCH = 200


def recording_key(call_id: int) -> str:
    return f"calls/{call_id}.wav"


async def recording_for(session: AsyncSession, call: Call, settings: Settings) -> CallAudio | None:
    """The tracks to fill during this call when its campaign records, else None."""
    if call.campaign_id is None:
        return None
    campaign = await session.get(Campaign, call.campaign_id)
    return start_recording(campaign is not None and campaign.record, settings)


def start_recording(records: bool, settings: Settings) -> CallAudio | None:
    """Started tracks for a call whose campaign ``records``, else None."""
    if not records:
        return None
    audio = CallAudio(max_s=settings.max_call_duration_s)
    audio.start()
    return audio


def store_of(state: Any) -> RecordingStore:
    """The process's recording store (built once, kept in the app state's extras)."""
    store: RecordingStore | None = state.extras.get("recording_store")
    if store is None:
        store = build_store(state.settings)
        state.extras["recording_store"] = store
    return store


async def save_recording(state: Any, call_id: int, audio: CallAudio) -> None:
    """Mix the tracks (in a thread), store the WAV, then note its key on the call.
    A store or database failure is logged: the call itself is already saved."""
    try:
        data = await asyncio.to_thread(audio.wav)
        key = recording_key(call_id)
        await store_of(state).save(key, data)
        async with state.sessions() as session:
            call = await session.get(Call, call_id)
            if call is not None:
                call.recording_key, call.recorded_at = key, utcnow()
                await session.commit()
        log.info("call.recording_saved", call_id=call_id, bytes=len(data), s=audio.duration_s)
    except (StorageError, SQLAlchemyError, OSError) as exc:
        log.error("call.recording_not_saved", call_id=call_id, error=type(exc).__name__)


async def purge_expired(
    sessions: async_sessionmaker[AsyncSession], store: RecordingStore, settings: Settings
) -> int:
    """Delete recordings older than ``RECORDING_RETENTION_DAYS``; returns how many."""
    cutoff = utcnow() - timedelta(days=settings.recording_retention_days)
    async with sessions() as session:
        calls = list(
            (
                await session.scalars(
                    select(Call)
                    .where(Call.recording_key.is_not(None), Call.recorded_at < cutoff)
                    .limit(RETENTION_SWEEP_BATCH)
                )
            ).all()
        )
        for call in calls:
            if call.recording_key:
                await store.delete(call.recording_key)
            call.recording_key = None
        await session.commit()
    if calls:
        log.info("recordings.purged", count=len(calls))
    return len(calls)
