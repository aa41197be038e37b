"""Shared set-up for the voice-webhook tests against the real databases: an app whose
Twilio credentials sign the webhook, in Media Streams mode, and the signed POST."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

from tests.conftest import make_settings
from voicebot.api.state import AppState
from voicebot.config import Settings
from voicebot.testing.twilio_caller import post_voice_webhook

ACCOUNT_SID = "AC" + "6" * 32
AUTH_TOKEN = "voice-webhook-auth-token"


def stream_settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for ``database_url`` with our Twilio credentials, conversation on streams."""
    return make_settings(
        database_url=database_url,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        tts_cache_dir=str(tmp_path / "tts"),
        conversation_mode="stream",
    )


def app_state(app: Starlette) -> AppState:
    state: AppState = app.state.voicebot
    return state


async def post_voice(
    client: httpx.AsyncClient, settings: Settings, sid: str, **fields: Any
) -> httpx.Response:
    """The signed voice webhook for call ``sid`` (``fields``: post_voice_webhook's own)."""
    return await post_voice_webhook(
        client,
        "http://testserver",
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        call_sid=sid,
        public_base_url=settings.public_base_url,
        **fields,
    )
