"""Lead CSV files as Israeli businesses export them: bytes → decoded text → mapped rows.

Owns the wire side of lead import, shared by ``POST /api/v1/leads/import`` and
``voicebot import-leads``: the encoding (UTF-8 with or without BOM, UTF-16, Windows-1255,
detected with ``charset-normalizer``), the delimiter (``,`` ``;`` tab ``|``, sniffed), and
which column is which lead field (Hebrew or English headers in any case and their common
synonyms, or an explicit mapping). Columns that map to no field are kept as the lead's
custom fields. Errors are :class:`~voicebot.errors.InvalidInputError` (a 422, or exit 2).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

import charset_normalizer

from voicebot.api.fields import UNSTORABLE_CHARS
from voicebot.errors import InvalidInputError

# Single-byte encodings worth telling apart after UTF-8 failed: Hebrew Windows exports, and
# Western European ones (a file with "café" in it).
SINGLE_BYTE_CANDIDATES: Final = ("cp1255", "cp1252")
DELIMITERS: Final = ",;\t|"
SNIFF_SAMPLE_CHARS: Final = 16_384
UTF16_SNIFF_BYTES: Final = 512
MAX_CUSTOM_FIELDS = 50
MAX_CUSTOM_KEY_CHARS = 100
MAX_CUSTOM_VALUE_CHARS = 1000

LEAD_FIELDS: Final = (
    "phone", "name", "first_name", "last_name", "company", "email", "tags", "notes",
)  # fmt: skip
"""Targets a column may map to; first_name + last_name make ``name``."""

_SYNONYMS: Final[dict[str, tuple[str, ...]]] = {
    "phone": (
        "phone", "mobile", "cell", "cellphone", "cell phone", "mobile phone", "phone number",
        "mobile number", "tel", "telephone", "טלפון", "נייד", "פלאפון", "טלפון נייד",
        "מספר טלפון", "מס טלפון", "מס' טלפון", "סלולרי", "סלולארי", "טל", "מספר נייד",
    ),
    "name": (
        "name", "full name", "fullname", "contact", "contact name", "שם", "שם מלא",
        "איש קשר", "שם איש קשר", "שם הלקוח", "לקוח",
    ),
    "first_name": ("first name", "firstname", "first", "given name", "שם פרטי"),
    "last_name": ("last name", "lastname", "last", "surname", "family name", "שם משפחה"),
    "company": (
        "company", "company name", "business", "business name", "organization",
        "organisation", "account", "חברה", "שם החברה", "שם חברה", "עסק", "שם העסק", "ארגון",
    ),
    "email": (
        "email", "e-mail", "mail", "email address", "e-mail address", "אימייל", "מייל",
        'דוא"ל', "דואל", "דוא״ל", "דואר אלקטרוני", "כתובת מייל",
    ),
    "tags": ("tags", "tag", "labels", "תגיות", "תגית"),
    "notes": ("notes", "note", "comments", "comment", "הערות", "הערה"),
}  # fmt: skip
_SEPARATORS = re.compile(r"[\s_\-.]+")


def _clean(cell: str) -> str:
    """Without the characters no field may store (NUL, which Postgres refuses, and other
    controls but tab and line breaks): nothing a person typed into a spreadsheet cell."""
    return UNSTORABLE_CHARS.sub("", cell).strip()


def _header_key(header: str) -> str:
    """Headers compare without case, BOM, quotes or separators: "Phone_Number" == "phone number"."""
    text = header.replace("\ufeff", "").strip().strip("\"'").casefold()
    return _SEPARATORS.sub(" ", text).strip()


_BY_KEY: Final = {_header_key(s): target for target, names in _SYNONYMS.items() for s in names}


@dataclass(frozen=True, slots=True)
class CsvRow:
    """One data row: its line number, the lead fields it gives, and its other columns."""

    line: int
    fields: dict[str, str]
    custom: dict[str, str]


@dataclass(slots=True)
class LeadCsv:
    """A decoded file with its columns resolved; iterate :meth:`rows` once."""

    encoding: str
    delimiter: str
    columns: dict[str, str]  # header → lead field, or "custom"
    _reader: Iterator[list[str]] = field(repr=False)
    _headers: list[str] = field(repr=False)
    total_rows: int = 0

    def rows(self) -> Iterator[CsvRow]:
        """Rows with any non-empty cell; a row longer than the header keeps what fits.
        Control characters (NUL, BEL…; not tab or line breaks) are dropped from cells.

        Raises InvalidInputError when the file cannot be read past some line (a NUL byte,
        an unclosed quote at the end)."""
        for index, cells in enumerate(self._checked(), start=2):
            if not any(c.strip() for c in cells):
                continue
            fields: dict[str, str] = {}
            custom: dict[str, str] = {}
            for header, cell in zip(self._headers, cells, strict=False):
                value = _clean(cell)
                if not value or not header:
                    continue
                target = self.columns[header]
                if target == "custom":
                    if len(custom) < MAX_CUSTOM_FIELDS:
                        custom[header[:MAX_CUSTOM_KEY_CHARS]] = value[:MAX_CUSTOM_VALUE_CHARS]
                else:
                    fields[target] = value
            first, last = fields.pop("first_name", ""), fields.pop("last_name", "")
            if "name" not in fields and (first or last):
                fields["name"] = f"{first} {last}".strip()
            yield CsvRow(line=index, fields=fields, custom=custom)

    def _checked(self) -> Iterator[list[str]]:
        line = 1
        try:
            for cells in self._reader:
                line += 1
                yield cells
        except csv.Error as exc:
            raise InvalidInputError(
                f"the file cannot be read after line {line}: {exc}",
                details=[{"field": "file", "message": str(exc)}],
            ) from exc


def decode_csv(raw: bytes) -> tuple[str, str]:
    """``(text, encoding)``: BOMs first, then UTF-16 without a BOM (zero bytes), then
    strict UTF-8, then the likelier of Windows-1255 and Windows-1252. Raises InvalidInputError."""
    if raw.startswith(codecs.BOM_UTF8):
        return _decode(raw[len(codecs.BOM_UTF8) :], "utf-8"), "utf-8-sig"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _decode(raw, "utf-16"), "utf-16"
    head = raw[:UTF16_SNIFF_BYTES]
    if 0 in head and len(raw) % 2 == 0:  # UTF-16 without a BOM: ASCII has a zero byte
        odd_zeros, even_zeros = head[1::2].count(0), head[0::2].count(0)
        encoding = "utf-16-le" if odd_zeros > even_zeros else "utf-16-be"
        with contextlib.suppress(UnicodeDecodeError):
            return raw.decode(encoding), encoding
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    best = charset_normalizer.from_bytes(raw, cp_isolation=list(SINGLE_BYTE_CANDIDATES)).best()
    if best is None:
        raise InvalidInputError(
            "cannot tell the file's text encoding; save it as UTF-8 CSV",
            details=[{"field": "file", "message": "unknown encoding"}],
        )
    return str(best), best.encoding


def _decode(raw: bytes, encoding: str) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"the file is not valid {encoding}",
            details=[{"field": "file", "message": f"bad {encoding} at byte {exc.start}"}],
        ) from exc


def _sniff_delimiter(text: str) -> str:
    sample = text[:SNIFF_SAMPLE_CHARS]
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        first_line = sample.split("\n", 1)[0]
        counts = {d: first_line.count(d) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


def resolve_columns(headers: list[str], mapping: Mapping[str, str] | None) -> dict[str, str]:
    """header → lead field (or "custom"); an explicit ``mapping`` (field → header) wins.

    Raises InvalidInputError for a mapping to an unknown field or header, and when no
    column is the phone.
    """
    columns = {h: _BY_KEY.get(_header_key(h), "custom") for h in headers if h}
    taken: set[str] = set()
    for header in list(columns):  # the first column of a kind wins; later ones stay custom
        if columns[header] in taken:
            columns[header] = "custom"
        taken.add(columns[header])
    for target, header in (mapping or {}).items():
        if target not in LEAD_FIELDS:
            raise InvalidInputError(
                f"unknown lead field in mapping: {target!r}",
                details=[{"field": "mapping", "message": f"fields are {', '.join(LEAD_FIELDS)}"}],
            )
        match = next((h for h in columns if _header_key(h) == _header_key(header)), None)
        if match is None:
            raise InvalidInputError(
                f"mapping names a column the file does not have: {header!r}",
                details=[{"field": "mapping", "message": f"columns are {', '.join(columns)}"}],
            )
        for other, was in columns.items():
            if was == target:
                columns[other] = "custom"
        columns[match] = target
    if "phone" not in columns.values():
        raise InvalidInputError(
            "no phone column: name one טלפון/נייד/Phone/Mobile, or map it explicitly",
            details=[{"field": "file", "message": f"columns are {', '.join(columns) or 'none'}"}],
        )
    return columns


def parse_lead_csv(raw: bytes, mapping: Mapping[str, str] | None = None) -> LeadCsv:
    """Decode, sniff and map a whole file; raises InvalidInputError for an unusable file."""
    text, encoding = decode_csv(raw)
    if not text.strip():
        raise InvalidInputError(
            "the file is empty", details=[{"field": "file", "message": "no header row"}]
        )
    delimiter = _sniff_delimiter(text)
    total = max(0, sum(1 for line in text.splitlines() if line.strip()) - 1)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        headers = [_clean(h.replace("\ufeff", "")) for h in next(reader)]
    except csv.Error as exc:  # a header cell beyond the field limit, say
        raise InvalidInputError(
            f"the header row cannot be read: {exc}",
            details=[{"field": "file", "message": str(exc)}],
        ) from exc
    columns = resolve_columns(headers, mapping)
    return LeadCsv(
        encoding=encoding,
        delimiter=delimiter,
        columns=columns,
        _reader=reader,
        _headers=headers,
        total_rows=total,
    )


def parse_mapping(pairs: list[str]) -> dict[str, str]:
    """``["phone=מספר", "name=Full Name"]`` → ``{"phone": "מספר", "name": "Full Name"}``."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        target, sep, header = pair.partition("=")
        if not sep or not target.strip() or not header.strip():
            raise InvalidInputError(
                f"mapping must be FIELD=COLUMN, got {pair!r}",
                details=[{"field": "mapping", "message": "FIELD=COLUMN expected"}],
            )
        mapping[target.strip()] = header.strip()
    return mapping
