"""structlog set-up: JSON or console output, bound context, phone numbers and secrets masked."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from voicebot.config import Settings

# E.164 or Israeli local forms (054-1234567, 0541234567, +972 54 123 4567).
PHONE_RE = re.compile(r"(?<![\w+-])(\+\d[\d -]{7,17}\d|0\d{1,2}[- ]?\d{3}[- ]?\d{4})(?![\w-])")
SECRET_KEYS = frozenset(
    {"api_key", "authorization", "auth_token", "password", "secret", "token", "x-api-key"}
)
MASK_KEEP_HEAD_DIGITS = 5
MASK_KEEP_TAIL_DIGITS = 4


def mask_phone(value: str) -> str:
    """``+972541234567`` → ``+97254***4567``; short strings are fully hidden."""
    digits = re.sub(r"\D", "", value)
    if len(digits) < MASK_KEEP_HEAD_DIGITS + MASK_KEEP_TAIL_DIGITS - 1:
        return "***"
    plus = "+" if value.strip().startswith("+") else ""
    return f"{plus}{digits[:MASK_KEEP_HEAD_DIGITS]}***{digits[-MASK_KEEP_TAIL_DIGITS:]}"


def mask_text(text: str) -> str:
    return PHONE_RE.sub(lambda m: mask_phone(m.group(1)), text)


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: ("***" if str(k).lower() in SECRET_KEYS else _mask(v)) for k, v in value.items()}
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


def configure_logging(settings: Settings) -> None:
    """Route structlog and stdlib logging through one masked renderer."""
    renderer: Any
    if settings.resolved_log_format == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    shared: list[Any] = [
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
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=shared,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).setLevel(logging.WARNING)
