"""Fixtures for the audio tests: real Hebrew speech from espeak-ng, cached on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from voicebot.testing.hebrew_audio import espeak_available

HEBREW_CACHE_DIR = Path(__file__).resolve().parents[3] / ".cache" / "hebrew_audio"


@pytest.fixture(scope="session")
def hebrew_cache_dir() -> Path:
    """Directory where synthesised Hebrew speech is cached between runs.

    Skips the test when espeak-ng is missing, unless VOICEBOT_REQUIRE_SERVICES=1
    (CI), where a missing espeak-ng is a failure.
    """
    if not espeak_available():
        if os.environ.get("VOICEBOT_REQUIRE_SERVICES") == "1":
            pytest.fail("espeak-ng is required (VOICEBOT_REQUIRE_SERVICES=1) but not installed")
        pytest.skip("espeak-ng is not installed")
    return HEBREW_CACHE_DIR
