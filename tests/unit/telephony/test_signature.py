"""Twilio signatures: webhooks and stream handshakes verified against the public URL."""

from __future__ import annotations

from typing import Any

import pytest
from twilio.request_validator import RequestValidator

from tests.conftest import make_settings
from voicebot.config import Settings
from voicebot.errors import SignatureError
from voicebot.telephony.signature import (
    public_url,
    verify_stream_handshake,
    verify_twilio_request,
)

TOKEN = "12345678901234567890123456789012"
PUBLIC = "https://bot.example.co.il"
FORM = {
    "CallSid": "CA1234",
    "AccountSid": "AC1234",
    "From": "+972501234567",
    "To": "+97233769999",
    "CallStatus": "in-progress",
}


def _settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {"twilio_auth_token": TOKEN, "public_base_url": PUBLIC}
    base.update(overrides)
    return make_settings(**base)


def _sign(url: str, params: dict[str, str]) -> str:
    return RequestValidator(TOKEN).compute_signature(url, params)


def test_correctly_signed_webhook_is_accepted() -> None:
    """A request signed over the public URL and its form passes."""
    signature = _sign(PUBLIC + "/twilio/voice?lead=7", FORM)
    verify_twilio_request(
        _settings(),
        url_path_and_query="/twilio/voice?lead=7",
        form_params=FORM,
        signature_header=signature,
    )


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/twilio/voice?lead=7", {**FORM, "To": "+97299999999"}),
        ("/twilio/voice?lead=8", FORM),
        ("/twilio/status?lead=7", FORM),
    ],
)
def test_tampered_params_or_url_are_rejected(path: str, params: dict[str, str]) -> None:
    """Changing a form value, the query or the path breaks the signature."""
    signature = _sign(PUBLIC + "/twilio/voice?lead=7", FORM)
    with pytest.raises(SignatureError):
        verify_twilio_request(
            _settings(), url_path_and_query=path, form_params=params, signature_header=signature
        )


def test_missing_header_is_rejected() -> None:
    """No X-Twilio-Signature header means no entry."""
    with pytest.raises(SignatureError, match="missing"):
        verify_twilio_request(
            _settings(), url_path_and_query="/twilio/voice", form_params=FORM, signature_header=None
        )


def test_behind_a_proxy_the_public_url_is_what_counts() -> None:
    """Twilio signed https://public/...; the app's own http://127.0.0.1:8000 view is ignored."""
    signature = _sign(PUBLIC + "/twilio/voice", FORM)
    verify_twilio_request(
        _settings(),
        url_path_and_query="/twilio/voice",
        form_params=FORM,
        signature_header=signature,
    )
    internal = _sign("http://127.0.0.1:8000/twilio/voice", FORM)
    with pytest.raises(SignatureError):
        verify_twilio_request(
            _settings(),
            url_path_and_query="/twilio/voice",
            form_params=FORM,
            signature_header=internal,
        )


def test_public_base_with_path_prefix() -> None:
    """A public base URL under a path prefix is joined with the request path."""
    settings = _settings(public_base_url="https://proxy.example.com/bot/")
    assert (
        public_url(settings, "/twilio/voice?x=1")
        == "https://proxy.example.com/bot/twilio/voice?x=1"
    )


def test_json_body_is_checked_with_body_sha256() -> None:
    """JSON posts are signed over the URL carrying bodySHA256, and the body must match it."""
    body = '{"a": 1}'
    validator = RequestValidator(TOKEN)
    path = f"/twilio/events?bodySHA256={validator.compute_hash(body)}"
    signature = validator.compute_signature(PUBLIC + path, {})
    verify_twilio_request(
        _settings(), url_path_and_query=path, raw_body=body, signature_header=signature
    )
    with pytest.raises(SignatureError):
        verify_twilio_request(
            _settings(), url_path_and_query=path, raw_body='{"a": 2}', signature_header=signature
        )


def test_unset_token_rejects_when_validation_is_on() -> None:
    """Without TWILIO_AUTH_TOKEN nothing can be verified, so everything is refused."""
    with pytest.raises(SignatureError, match="TWILIO_AUTH_TOKEN"):
        verify_twilio_request(
            _settings(twilio_auth_token=None),
            url_path_and_query="/twilio/voice",
            form_params=FORM,
            signature_header="x",
        )


def test_disabled_validation_accepts_anything() -> None:
    """TWILIO_VALIDATE_SIGNATURES=false lets unsigned requests through (development only)."""
    settings = _settings(twilio_auth_token=None, twilio_validate_signatures=False)
    verify_twilio_request(
        settings, url_path_and_query="/twilio/voice", form_params=FORM, signature_header=None
    )
    assert verify_stream_handshake(settings, signature_header="junk") is False


def test_stream_handshake_is_signed_over_the_wss_url() -> None:
    """The handshake signature covers wss://public/twilio/media with no parameters."""
    settings = _settings()
    assert settings.media_stream_url == "wss://bot.example.co.il/twilio/media"
    good = _sign("wss://bot.example.co.il/twilio/media", {})
    assert verify_stream_handshake(settings, signature_header=good) is True
    with pytest.raises(SignatureError):
        verify_stream_handshake(
            settings, signature_header=_sign("https://bot.example.co.il/twilio/media", {})
        )


def test_stream_handshake_without_header_is_refused() -> None:
    """Twilio always signs the handshake: with validation on, an unsigned one is refused."""
    with pytest.raises(SignatureError, match="X-Twilio-Signature"):
        verify_stream_handshake(_settings(), signature_header=None)
    with pytest.raises(SignatureError):
        verify_stream_handshake(_settings(), signature_header="")
