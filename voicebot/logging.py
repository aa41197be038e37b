"""structlog set-up: JSON or console output, bound context, phone numbers and secrets masked."""

from __future__ import annotations

import logging
import re
import sys
import unicodedata
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO

import structlog

from voicebot.config import Settings

SECRET_KEYS = frozenset(
    {"api_key", "authorization", "auth_token", "password", "secret", "token", "x-api-key"}
)
MASK_KEEP_HEAD_DIGITS = 3
"""Leading digits of the international form left visible (about the country code)."""
MASK_KEEP_TAIL_DIGITS = 4
MIN_PHONE_DIGITS = 9
MAX_PHONE_DIGITS = 17
"""Digit counts a phone-like run may have (``00`` + the 15 digits of E.164)."""
DEFAULT_COUNTRY_CODE = "972"
LIBRARY_LOGGERS = (
    "uvicorn.access",
    "twilio",
    "twilio.http_client",
    "httpx",
    "httpcore",
    "openai",
    "urllib3",
    "hpack",
    "websockets",
    "dramatiq",
    "alembic",
)
"""Libraries that log every request or frame at INFO/DEBUG (alembic: two lines on every
/health/ready schema check): kept at WARNING."""

# A run of digits with the separators people and URLs put in phone numbers: spaces,
# dashes, dots, slashes, brackets, '+' (form encoding) and their %-escapes. It starts
# after no letter or digit, so ids like ``CA0541234567`` are left alone.
_SEPARATOR = r"(?:[\s\-./()+_\u2010-\u2015\u2212]|%20|%2[dD]|%28|%29)"
PHONE_RE = re.compile(
    r"(?<![0-9A-Za-z])(?P<plus>\+|%2[bB])?\(?[0-9]"
    rf"(?:{_SEPARATOR}{{0,3}}[0-9]){{{MIN_PHONE_DIGITS - 2},{MAX_PHONE_DIGITS + 4}}}"
    r"(?![0-9])"
)
_ANY_DIGIT = re.compile(r"\d")
_TOKEN = re.compile(r"\S+")
_FULL_WIDTH_TO_ASCII = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_ASCII_CONTROL_TO_SPACE = dict.fromkeys((*range(0x20), 0x7F), " ")
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf"})
"""Control and format characters: invisible in a log line, ignored by phonenumbers."""


def _ascii_digits(text: str) -> str:
    """Every Unicode decimal digit (Arabic-Indic, Persian, full-width, …) as its ASCII
    digit, full-width punctuation as ASCII and control and format characters (zero-width
    space, soft hyphen, bidi marks: phonenumbers ignores them) as a space, one character
    for one, so positions in the result match ``text``."""
    if text.isascii():
        return text.translate(_ASCII_CONTROL_TO_SPACE)
    text = text.translate(_FULL_WIDTH_TO_ASCII)
    text = "".join(" " if unicodedata.category(ch) in _INVISIBLE_CATEGORIES else ch for ch in text)
    return _ANY_DIGIT.sub(lambda m: str(unicodedata.decimal(m.group(), 0)), text)


def international_digits(candidate: str) -> str | None:
    """The international digits (country code first) of a phone-like string, or None
    when it does not look like a phone number (a date, a duration, a short id).

    Accepts ``+``/``%2B`` E.164, ``00`` international, ``972…`` without a plus, Israeli
    local ``0X…`` (9-10 digits) and mobile numbers without the trunk zero (``5XXXXXXXX``).
    """
    ascii_text = _ascii_digits(candidate).strip()
    plus = ascii_text.startswith(("+", "%2B", "%2b"))
    digits = re.sub(r"[^0-9]", "", _PERCENT_ESCAPE.sub(" ", ascii_text))
    if plus and 8 <= len(digits) <= 15:
        return digits
    if digits.startswith("00") and digits[2:3] not in ("", "0") and 10 <= len(digits) <= 17:
        return digits[2:]
    if digits.startswith(DEFAULT_COUNTRY_CODE) and len(digits) in (11, 12):
        return digits
    if digits.startswith("0") and digits[1:2] in tuple("23456789") and len(digits) in (9, 10):
        return DEFAULT_COUNTRY_CODE + digits[1:]
    if digits.startswith("5") and len(digits) == 9:
        return DEFAULT_COUNTRY_CODE + digits
    return None


def mask_phone(value: str) -> str:
    """Any form of one number → ``+972***4567`` (the same mask for every form of it);
    something too short or not a phone is fully hidden."""
    digits = international_digits(value)
    if digits is None:
        return "***"
    return f"+{digits[:MASK_KEEP_HEAD_DIGITS]}***{digits[-MASK_KEEP_TAIL_DIGITS:]}"


def _mask_candidate(candidate: str) -> str:
    """Mask ``candidate`` if it is a phone; else mask the phones among its space-separated
    parts (a number beside a date or a count), longest first from the left."""
    if international_digits(candidate) is not None:
        return mask_phone(candidate)
    spans = [m.span() for m in _TOKEN.finditer(candidate)]
    out: list[str] = []
    last = 0
    i = 0
    while i < len(spans):
        for j in range(len(spans), i, -1):
            start, end = spans[i][0], spans[j - 1][1]
            if international_digits(candidate[start:end]) is not None:
                out += [candidate[last:start], mask_phone(candidate[start:end])]
                last, i = end, j
                break
        else:
            i += 1
    return "".join(out) + candidate[last:]


def mask_text(text: str) -> str:
    """Every phone number in ``text``, in any form or digits, replaced by its mask."""
    if not _ANY_DIGIT.search(text):
        return text
    ascii_text = _ascii_digits(text)
    pieces: list[str] = []
    last = 0
    for match in PHONE_RE.finditer(ascii_text):
        start, end = match.span()
        pieces.append(text[last:start])
        pieces.append(_mask_candidate(text[start:end]))
        last = end
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {
            _mask(k): ("***" if str(k).lower() in SECRET_KEYS else _mask(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    return value


def mask_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Mask phone numbers in every value and drop secrets by key name."""
    for key, value in list(event_dict.items()):
        if key.lower() in SECRET_KEYS:
            event_dict[key] = "***"
        else:
            event_dict[key] = _mask(value)
    return event_dict


class CurrentStderr:
    """A text stream that writes to whatever ``sys.stderr`` is at each write.

    Logging is configured once, but ``sys.stderr`` is swapped and restored by test
    capture, ``contextlib.redirect_stderr`` and daemons; a handler holding the stream of
    the moment of configuration would later write to a closed one ("I/O operation on
    closed file"). When ``sys.stderr`` is None or closed, the interpreter's original
    ``sys.__stderr__`` is used; when that is gone too, the line is dropped.
    """

    @staticmethod
    def target() -> TextIO | None:
        """The stream a write goes to now, or None when there is none open."""
        for stream in (sys.stderr, sys.__stderr__):
            if stream is not None and not getattr(stream, "closed", False):
                return stream
        return None

    def write(self, text: str) -> int:
        stream = self.target()
        try:
            return stream.write(text) if stream is not None else len(text)
        except ValueError:  # closed by another thread since target() looked
            fallback = sys.__stderr__
            return fallback.write(text) if fallback is not None else len(text)

    def flush(self) -> None:
        stream = self.target()
        if stream is not None:
            stream.flush()

    def isatty(self) -> bool:
        stream = self.target()
        return stream is not None and stream.isatty()


_QUIET: ContextVar[bool] = ContextVar("voicebot_log_quiet", default=False)
_QUIET_LEVELS = frozenset({"debug", "info"})


@contextmanager
def quiet() -> Iterator[None]:
    """Drop this task's debug and info events while inside (warnings and errors still go
    out): for start-up work on rows that are rolled back, whose events describe nothing."""
    reset = _QUIET.set(True)
    try:
        yield
    finally:
        _QUIET.reset(reset)


def quiet_processor(
    _logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Drop the event inside :func:`quiet` when it is below a warning."""
    if _QUIET.get() and method_name in _QUIET_LEVELS:
        raise structlog.DropEvent
    return event_dict


def configure_logging(settings: Settings) -> None:
    """Route structlog and stdlib logging through one masked renderer, to the current
    ``sys.stderr`` at each write (:class:`CurrentStderr`)."""
    stream: Any = CurrentStderr()
    renderer: Any
    if settings.resolved_log_format == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    shared: list[Any] = [
        quiet_processor,
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        mask_processor,
    ]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[settings.log_level]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=shared,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for noisy in LIBRARY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # pika logs one refused connection as four ERROR lines; the broker probe and the
    # worker report the failure themselves, once.
    logging.getLogger("pika").setLevel(logging.CRITICAL)
