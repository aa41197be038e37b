"""The signed-in mark a session cookie carries says nothing about the API key by itself."""

from __future__ import annotations

import hashlib
import hmac

from tests.conftest import make_settings
from voicebot.ui.auth import key_fingerprint

API_KEY = "console-key-" + "k" * 24


def test_fingerprint_depends_on_the_server_secret() -> None:
    one = key_fingerprint(make_settings(api_key=API_KEY, secret_key="a" * 40))
    other = key_fingerprint(make_settings(api_key=API_KEY, secret_key="b" * 40))
    assert one and other and one != other


def test_fingerprint_is_not_the_unkeyed_hash_anyone_can_compute() -> None:
    public = hmac.new(b"voicebot-console", API_KEY.encode(), "sha256").hexdigest()[:32]
    assert key_fingerprint(make_settings(api_key=API_KEY, secret_key="a" * 40)) != public
    assert hashlib.sha256(API_KEY.encode()).hexdigest()[:32] != public  # sanity of the probe
