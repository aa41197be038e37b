"""Log masking: phone numbers hidden, dates and ids left alone, secrets dropped."""

from __future__ import annotations

import contextlib
import io
import logging
import re

import pytest
import structlog

from tests.conftest import make_settings
from voicebot.logging import configure_logging, mask_phone, mask_processor, mask_text, quiet


def test_mask_phone_keeps_country_code_and_last_four() -> None:
    """+972541234567 is logged as +972***4567."""
    assert mask_phone("+972541234567") == "+972***4567"


def test_mask_text_hides_local_and_e164_numbers_but_not_dates() -> None:
    """Numbers in free text are masked; ISO dates and plain ids are not."""
    text = mask_text("from 054-4567890 to +972525551234 on 2026-11-24T10:00, call 42")
    assert "4567890" not in text.replace("***7890", "")
    assert "+972***1234" in text
    assert "2026-11-24T10:00" in text
    assert "call 42" in text


def test_processor_drops_secrets_by_key() -> None:
    """Values under secret-like keys never reach the renderer."""
    event = mask_processor(None, "info", {"event": "x", "api_key": "sk-123", "auth_token": "t"})
    assert event["api_key"] == "***"
    assert event["auth_token"] == "***"


PHONE_FORMS = [
    "972544567870",
    "+972544567870",
    "00972544567870",
    "+972 54-456-7870",
    "972-54-456-7870",
    "0544567870",
    "054-456-7870",
    "054 456 7870",
    "054.456.7870",
    "(054) 456-7870",
    "054/4567870",
    "544567870",
    "%2B972544567870",
    "054%20456%207870",
    "054+456+7870",
    "٠٥٤٤٥٦٧٨٧٠",
    "٩٧٢٥٤٤٥٦٧٨٧٠",
    "۰۵۴۴۵۶۷۸۷۰",
    "０５４－４５６－７８７０",
    "+９７２５４４５６７８７０",
]


@pytest.mark.parametrize("form", PHONE_FORMS)
@pytest.mark.parametrize("context", ["{}", "/api/v1/do-not-call/{}", "phone={}&x=1", "call {} now"])
def test_every_form_of_a_phone_is_masked_alike(form: str, context: str) -> None:
    """Separators, 00972, 972, local 05x, %-escapes, Arabic-Indic and full-width digits:
    all mask to +972***7870, leaving no run of the hidden digits."""
    masked = mask_text(context.format(form))
    assert "+972***7870" in masked
    assert re.sub(r"\D", "", masked.replace("+972***7870", "")) in ("", "1")


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-24T10:00:00+02:00",
        "2026-11-24 10:00:00.123456",
        "duration_ms=1234.5678",
        "0.1234567890",
        "CA0544567870abcdef",
        "lead 12345678901 at 1764400000000",
        "127.0.0.1:8000",
        "24/11/2026 10:30",
    ],
)
def test_dates_durations_and_ids_are_left_alone(text: str) -> None:
    """Timestamps, floats, SIDs, large ids and addresses are not taken for phones."""
    assert mask_text(text) == text


def test_phones_in_dict_keys_and_nested_values_are_masked() -> None:
    """Structured values (bodies, headers) are masked at every depth, keys included."""
    event = mask_processor(
        None,
        "info",
        {"event": "x", "body": {"0544567870": ["054.456.7870", {"to": "+972544567870"}]}},
    )
    assert "4567870" not in repr(event).replace("***7870", "")


@pytest.mark.parametrize(
    "form",
    [
        "054\u200b4567870",  # zero-width space: a number copied from a web page
        "054\u00ad456\u00ad7870",  # soft hyphen
        "\u200e054-456-7870\u200e",  # left-to-right marks around a number in Hebrew text
        "054\u2060456\u20607870",  # word joiner
        "\u202a+972 54 456 7870\u202c",  # bidi embedding
        "054\x05456\x1f7870",  # control characters
        "0544567870\ufeff",
    ],
)
def test_invisible_characters_do_not_hide_a_phone_from_the_mask(form: str) -> None:
    """Format and control characters between digits (which phonenumbers, and so the API,
    ignores) are separators to the mask too: no run of the hidden digits is left."""
    masked = mask_text(f"DELETE /api/v1/do-not-call/{form}")
    assert "+972***7870" in masked
    assert re.sub(r"\D", "", masked.replace("+972***7870", "")) in ("", "1")


def test_logging_outlives_a_swapped_and_closed_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    """Logging configured while stderr is swapped keeps writing to the stderr of each
    moment: after the swapped stream is closed and stderr restored, structlog and stdlib
    lines reach the current stderr (no "I/O operation on closed file")."""
    swapped = io.StringIO()
    try:
        with contextlib.redirect_stderr(swapped):
            configure_logging(make_settings(log_level="INFO"))
            structlog.get_logger("voicebot.test").info("during.structlog")
            logging.getLogger("voicebot.test").warning("during.stdlib")
        during = swapped.getvalue()
        swapped.close()
        structlog.get_logger("voicebot.test").info("after.structlog", phone="+972541234567")
        logging.getLogger("voicebot.test").warning("after.stdlib")
        err = capsys.readouterr().err
    finally:
        configure_logging(make_settings())
    assert "during.structlog" in during and "during.stdlib" in during
    assert "after.structlog" in err and "after.stdlib" in err and "+972***4567" in err
    assert "Logging error" not in err


def test_quiet_drops_info_events_but_not_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    """Inside quiet() an info event is dropped and a warning still goes out; after it, info
    events go out again."""
    configure_logging(make_settings(log_level="INFO"))
    try:
        log = structlog.get_logger("test")
        with quiet():
            log.info("inside.info")
            log.warning("inside.warning")
        log.info("after.info")
        err = capsys.readouterr().err
    finally:
        configure_logging(make_settings())
    assert "inside.info" not in err
    assert "inside.warning" in err
    assert "after.info" in err
