"""Checks that webhooks and Media Stream handshakes really come from Twilio.

Twilio signs each request with HMAC-SHA1 (keyed by the account auth token) over
the full URL *it requested* plus the sorted form parameters, and sends the
result in ``X-Twilio-Signature``. Behind a proxy or tunnel the host, scheme and
port the app sees differ from that URL, so the URL is always rebuilt from
``settings.public_base_url`` plus the request's path and query, never from the
``Host`` header.

The Media Stream websocket handshake carries the same header, computed over
the ``wss://`` URL of the ``<Stream>`` with no parameters; that URL is
``settings.media_stream_url``.
"""

from __future__ import annotations

from collections.abc import Mapping

from twilio.request_validator import RequestValidator

from voicebot.config import Settings
from voicebot.errors import SignatureError

SIGNATURE_HEADER = "X-Twilio-Signature"

FormParams = Mapping[str, str]
"""Form fields as posted. A Starlette ``FormData`` also works: repeated keys are honoured."""


def public_url(settings: Settings, url_path_and_query: str) -> str:
    """The URL Twilio requested: the public base URL plus path and query as received."""
    if not url_path_and_query.startswith("/"):
        raise ValueError("url_path_and_query must start with '/'")
    return settings.public_base_url + url_path_and_query


def verify_twilio_request(
    settings: Settings,
    *,
    url_path_and_query: str,
    signature_header: str | None,
    form_params: FormParams | None = None,
    raw_body: str | None = None,
) -> None:
    """Raise :class:`SignatureError` unless Twilio signed this webhook request.

    Pass ``form_params`` for ``application/x-www-form-urlencoded`` posts (the
    usual case) or ``raw_body`` for JSON posts, whose URL carries ``bodySHA256``.
    Accepts everything when ``settings.twilio_validate_signatures`` is off.
    """
    validator = _validator(settings)
    if validator is None:
        return
    if not signature_header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    url = public_url(settings, url_path_and_query)
    params: FormParams | str = raw_body if raw_body is not None else (form_params or {})
    if not validator.validate(url, params, signature_header):
        raise SignatureError(
            "Twilio signature does not match this request",
            details={"signed_url": url},
        )


def verify_stream_handshake(settings: Settings, *, signature_header: str | None) -> bool:
    """Check the signature of a Media Stream websocket handshake.

    Twilio signs every handshake, so with validation on a missing or wrong signature
    raises :class:`SignatureError` (as does validation without an auth token). Returns
    ``True`` when a signature was verified, ``False`` when validation is off.
    """
    validator = _validator(settings)
    if validator is None:
        return False
    if not signature_header:
        raise SignatureError("the media stream handshake carries no X-Twilio-Signature")
    url = settings.media_stream_url
    if not validator.validate(url, {}, signature_header):
        raise SignatureError(
            "Twilio signature does not match the media stream URL",
            details={"signed_url": url},
        )
    return True


def _validator(settings: Settings) -> RequestValidator | None:
    """The validator for this account, or ``None`` when validation is switched off."""
    if not settings.twilio_validate_signatures:
        return None
    token = settings.twilio_auth_token
    if token is None or not token.get_secret_value():
        raise SignatureError(
            "cannot verify Twilio signatures: TWILIO_AUTH_TOKEN is not set "
            "(set it, or TWILIO_VALIDATE_SIGNATURES=false for local development only)"
        )
    return RequestValidator(token.get_secret_value())
