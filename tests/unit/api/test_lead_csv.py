"""Lead CSV files as Israeli businesses export them: encodings, delimiters, headers, mapping."""

from __future__ import annotations

import codecs

import pytest

from voicebot.api.lead_csv import decode_csv, parse_lead_csv, parse_mapping
from voicebot.errors import InvalidInputError

HEBREW = "טלפון,שם,חברה\n050-1234567,דנה כהן,מספרת דנה\n"


@pytest.mark.parametrize(
    ("raw", "encoding"),
    [
        (HEBREW.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + HEBREW.encode("utf-8"), "utf-8-sig"),
        (HEBREW.encode("utf-16"), "utf-16"),
        (HEBREW.encode("utf-16-le"), "utf-16-le"),
        ("phone,name\n0541234567,Dana\n".encode("utf-16-be"), "utf-16-be"),
        (HEBREW.encode("cp1255"), "cp1255"),
        ("טלפון;שם\n0501234567;דנה\n".encode("cp1255"), "cp1255"),
    ],
)
def test_encodings_are_detected(raw: bytes, encoding: str) -> None:
    """UTF-8 with or without BOM, UTF-16 with or without BOM and Windows-1255 all decode."""
    text, found = decode_csv(raw)
    assert found == encoding
    assert text.lstrip("\ufeff").startswith(("טלפון", "phone"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("טלפון,שם,חברה,אימייל\n", {"phone", "name", "company", "email"}),
        ("Phone,Name,Company,Email\n", {"phone", "name", "company", "email"}),
        ("PHONE,NAME\n", {"phone", "name"}),
        ("Mobile,Full Name,E-mail\n", {"phone", "name", "email"}),
        ("Cell,First Name,Last Name\n", {"phone", "first_name", "last_name"}),
        ("נייד,שם מלא,מייל\n", {"phone", "name", "email"}),
        ("פלאפון,שם פרטי,שם משפחה,הערות\n", {"phone", "first_name", "last_name", "notes"}),
        ("phone_number,company_name\n", {"phone", "company"}),
    ],
)
def test_header_synonyms(text: str, expected: set[str]) -> None:
    """Hebrew and English headers, any case, common CRM synonyms map to lead fields."""
    parsed = parse_lead_csv(text.encode())
    assert {v for v in parsed.columns.values() if v != "custom"} == expected


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_sniffed(delimiter: str) -> None:
    """Comma, semicolon, tab and pipe files read the same rows."""
    text = delimiter.join(["טלפון", "שם", "עיר"]) + "\n"
    text += delimiter.join(["050-1234567", "דנה, כהן" if delimiter != "," else "דנה", "חיפה"])
    parsed = parse_lead_csv(text.encode())
    assert parsed.delimiter == delimiter
    [row] = list(parsed.rows())
    assert row.fields["phone"] == "050-1234567"
    assert row.custom == {"עיר": "חיפה"}


def test_first_and_last_make_the_name() -> None:
    """First + Last columns become one name; unknown columns are kept as custom fields."""
    parsed = parse_lead_csv(b"Mobile,First Name,Last Name,Source\n0541234567,Dana,Cohen,expo\n")
    [row] = list(parsed.rows())
    assert row.fields == {"phone": "0541234567", "name": "Dana Cohen"}
    assert row.custom == {"Source": "expo"}


def test_explicit_mapping_wins() -> None:
    """A mapping names the phone column a file calls something else, and may reassign one."""
    raw = "מספר,איש קשר,טלפון משרד\n0541234567,דנה,03-5551234\n".encode()
    with pytest.raises(InvalidInputError):
        parse_lead_csv(raw)  # "טלפון משרד" and "מספר" are not phone synonyms
    parsed = parse_lead_csv(raw, {"phone": "מספר"})
    [row] = list(parsed.rows())
    assert row.fields == {"phone": "0541234567", "name": "דנה"}
    assert row.custom == {"טלפון משרד": "03-5551234"}


@pytest.mark.parametrize(
    ("mapping", "word"),
    [({"phone": "nope"}, "column"), ({"shoe_size": "מספר"}, "field")],
)
def test_bad_mapping_is_refused(mapping: dict[str, str], word: str) -> None:
    """A mapping to a missing column or an unknown field is a clear input error."""
    with pytest.raises(InvalidInputError, match=word):
        parse_lead_csv("מספר,שם\n1,2\n".encode(), mapping)


def test_cli_mapping_pairs() -> None:
    """--map FIELD=COLUMN pairs parse; a pair without '=' is refused."""
    assert parse_mapping(["phone=מספר", "name = Full Name"]) == {
        "phone": "מספר",
        "name": "Full Name",
    }
    with pytest.raises(InvalidInputError):
        parse_mapping(["phone"])


@pytest.mark.parametrize("raw", [b"", b"\n\n", b"name,company\nx,y\n"])
def test_unusable_files(raw: bytes) -> None:
    """An empty file or one without a phone column is an input error, not a crash."""
    with pytest.raises(InvalidInputError):
        parse_lead_csv(raw)


def test_unreadable_line_is_an_input_error() -> None:
    """A file the csv reader cannot read past some line fails naming that line, no traceback."""
    huge = "x" * 200_000
    parsed = parse_lead_csv(f"phone,notes\n0541234567,a\n0541234568,{huge}\n".encode())
    with pytest.raises(InvalidInputError, match="after line 2"):
        list(parsed.rows())
