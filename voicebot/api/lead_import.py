"""Lead import: mapped CSV rows → validated leads in the database, with a per-row report.

Owns :func:`import_leads`, the one implementation behind ``POST /api/v1/leads/import``
and ``voicebot import-leads``, so both give the same report for the same file. Each row
is all-or-nothing. A phone ``phonenumbers`` calls possible but not assigned
(``050-1234567``) is imported with a warning on its row, and so is a phone on the
do-not-call list (the dialer skips it); a phone that is not even possible, a bad e-mail,
a phone already in the file or the database fails its row only.
Rows are written in chunks (one query for the chunk's known phones, one flush), so a
10,000-row file takes seconds, not minutes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import phonenumbers
from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.api.errors import validation_details
from voicebot.api.lead_csv import CsvRow, LeadCsv
from voicebot.db.models import DoNotCall, Lead

DO_NOT_CALL_WARNING: Final = "on the do-not-call list: imported, but it will not be called"
CHUNK_ROWS: Final = 500
MAX_ROWS: Final = 50_000
PHONE_REGION: Final = "IL"
TAG_SEPARATORS: Final = ";,"

ProgressCallback = Callable[[int], None]
"""Called with the number of rows handled so far, after each chunk."""


class ImportedLead(BaseModel):
    """A row's lead fields other than the phone, validated like the lead API's."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    name: str | None = Field(default=None, max_length=200)
    company: str | None = Field(default=None, max_length=200)
    email: EmailStr | None = None
    tags: list[str] = Field(default_factory=list, max_length=50)
    notes: str | None = Field(default=None, max_length=5000)


def _problem(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}


# Excel and pandas write a number column as a float: "501234567.0", "9.72541E+11".
_FLOAT_CELL_RE: Final = re.compile(r"\d+\.0+")
_SCIENTIFIC_CELL_RE: Final = re.compile(r"\d(?:[.,]\d+)?[eE]\+?\d{1,2}")


def _excel_number(raw: str) -> str:
    """The digits of a phone cell Excel wrote as a number; other cells unchanged.

    "501234567.0" → "501234567"; "9.72541234567E+11" → "972541234567" (every digit is
    written); "9.72541E+11" raises ValueError: Excel kept six digits and the rest are gone.
    """
    text = raw.strip()
    if _FLOAT_CELL_RE.fullmatch(text):
        return text.split(".", 1)[0]
    if not _SCIENTIFIC_CELL_RE.fullmatch(text):
        return raw
    try:
        value = Decimal(text.replace(",", "."))
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        return raw
    if value != value.to_integral_value():
        raise ValueError("Excel scientific notation with a fraction is not a phone number")
    digits = str(int(value))
    mantissa_digits = len(re.sub(r"\D", "", text.split("e")[0].split("E")[0]))
    if mantissa_digits < len(digits):  # a rounded mantissa cannot be told from an exact one
        raise ValueError(
            "Excel wrote the number in scientific notation and dropped its last digits; "
            "format the phone column as text in Excel and export the file again"
        )
    return digits


def import_phone(raw: str) -> tuple[str, str | None]:
    """``(E.164, warning or None)``; raises ValueError when it cannot be a phone number.

    A cell Excel wrote as a number is read back ("501234567.0", "9.72541234567E+11"); one
    whose digits Excel rounded away ("9.72541E+11") raises ValueError saying so."""
    raw = _excel_number(raw)
    try:
        number = phonenumbers.parse(raw, PHONE_REGION)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("not a phone number") from exc
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if phonenumbers.is_valid_number(number):
        return e164, None
    if phonenumbers.is_possible_number(number):
        return e164, "possible number, but not assigned to any carrier: imported, check it"
    raise ValueError("not a valid phone number")


class _Report:
    def __init__(self, parsed: LeadCsv) -> None:
        self.parsed = parsed
        self.created = 0
        self.errors: list[dict[str, Any]] = []
        self.warnings: list[dict[str, Any]] = []

    def fail(self, line: int, *problems: dict[str, str]) -> None:
        self.errors.append({"row": line, "errors": list(problems)})

    def as_json(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "failed": len(self.errors),
            "warned": len(self.warnings),
            "errors": sorted(self.errors, key=lambda e: int(e["row"])),
            "warnings": self.warnings,
            "encoding": self.parsed.encoding,
            "delimiter": self.parsed.delimiter,
            "columns": self.parsed.columns,
        }


def _validate(row: CsvRow, report: _Report) -> tuple[Lead, str | None] | None:
    raw_phone = row.fields.get("phone")
    if not raw_phone:
        report.fail(row.line, _problem("phone", "missing phone"))
        return None
    try:
        phone, warning = import_phone(raw_phone)
    except ValueError as exc:
        report.fail(row.line, _problem("phone", f"{exc}: {raw_phone!r}"))
        return None
    payload: dict[str, Any] = {k: v for k, v in row.fields.items() if k != "phone"}
    if "tags" in payload:
        payload["tags"] = [t.strip() for t in _split_tags(payload["tags"]) if t.strip()]
    try:
        data = ImportedLead.model_validate(payload)
    except ValidationError as exc:
        report.fail(row.line, *validation_details(exc))
        return None
    lead = Lead(phone=phone, custom_fields=row.custom, **data.model_dump())
    return lead, warning


def _split_tags(text: str) -> list[str]:
    for sep in TAG_SEPARATORS:
        text = text.replace(sep, ";")
    return text.split(";")


async def _write_chunk(
    session: AsyncSession,
    chunk: list[tuple[int, Lead, str | None]],
    report: _Report,
    created_phones: list[str] | None,
) -> None:
    phones = [lead.phone for _, lead, _ in chunk]
    known = set((await session.scalars(select(Lead.phone).where(Lead.phone.in_(phones)))).all())
    blocked = set(
        (await session.scalars(select(DoNotCall.phone).where(DoNotCall.phone.in_(phones)))).all()
    )
    fresh = []
    for line, lead, warning in chunk:
        if lead.phone in known:
            report.fail(line, _problem("phone", "a lead with this phone already exists"))
        else:
            fresh.append((line, lead, warning))
    try:
        async with session.begin_nested():
            session.add_all([lead for _, lead, _ in fresh])
        written = fresh
    except IntegrityError:  # a concurrent import took a phone: find it row by row
        written = []
        for line, lead, warning in fresh:
            try:
                async with session.begin_nested():
                    session.add(Lead(**_columns(lead)))
                written.append((line, lead, warning))
            except IntegrityError:
                report.fail(line, _problem("phone", "a lead with this phone already exists"))
    await session.commit()
    if created_phones is not None:
        created_phones.extend(lead.phone for _, lead, _ in written)
    for line, lead, warning in written:
        report.created += 1
        problems = [_problem("phone", text) for text in (warning,) if text is not None]
        if lead.phone in blocked:
            problems.append(_problem("phone", DO_NOT_CALL_WARNING))
        if problems:
            report.warnings.append({"row": line, "warnings": problems})


def _columns(lead: Lead) -> dict[str, Any]:
    keys = ("phone", "name", "company", "email", "tags", "notes", "custom_fields")
    return {key: getattr(lead, key) for key in keys}


async def import_leads(
    session: AsyncSession,
    parsed: LeadCsv,
    *,
    on_progress: ProgressCallback | None = None,
    created_phones: list[str] | None = None,
) -> dict[str, Any]:
    """Import every row of ``parsed``; the report lists each failed or warned row by line.
    ``created_phones``, when given, receives the phone of every lead created.

    Raises InvalidInputError (from the CSV reader) when the file breaks mid-way.
    """
    report = _Report(parsed)
    seen: dict[str, int] = {}
    chunk: list[tuple[int, Lead, str | None]] = []
    handled = 0
    for row in parsed.rows():
        handled += 1
        if handled > MAX_ROWS:
            report.fail(row.line, _problem("file", f"row limit {MAX_ROWS} reached; split the file"))
            break
        checked = _validate(row, report)
        if checked is None:
            continue
        lead, warning = checked
        if lead.phone in seen:
            report.fail(row.line, _problem("phone", f"same phone as row {seen[lead.phone]}"))
            continue
        seen[lead.phone] = row.line
        chunk.append((row.line, lead, warning))
        if len(chunk) >= CHUNK_ROWS:
            await _write_chunk(session, chunk, report, created_phones)
            chunk = []
            if on_progress is not None:
                on_progress(handled)
    if chunk:
        await _write_chunk(session, chunk, report, created_phones)
    if on_progress is not None:
        on_progress(handled)
    return report.as_json()
