"""Text that crosses a boundary (a form, the CLI, a device, a file): bounded, printable, and
safe to put in a spreadsheet."""

from __future__ import annotations

import unicodedata

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def clean_text(value: object, limit: int) -> str:
    """Printable text of at most `limit` characters: control characters (NUL, newlines,
    escapes) become spaces, white space is folded, and the rest is cut with an ellipsis."""
    s = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in str(value or ""))
    s = " ".join(s.split())
    return s if len(s) <= limit else s[: max(0, limit - 1)] + "…"


def cell(value: object) -> object:
    """A value for a CSV or XLSX cell: text that a spreadsheet would run as a formula
    (=, +, -, @ first) is given a leading apostrophe; numbers and dates pass unchanged."""
    if isinstance(value, str):
        s = clean_text(value, 32_000) if any(unicodedata.category(c)[0] == "C" for c in value) \
            else value
        if s.startswith(FORMULA_START) and not _is_number(s):
            return "'" + s
        return s
    return value


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def safe_rows(rows):
    """Rows for csv.writer with every cell made safe (`cell`)."""
    return ([cell(v) for v in row] for row in rows)


def neutralise_workbook(wb) -> None:
    """Every text cell of an openpyxl workbook made safe (`cell`), just before it is saved."""
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if isinstance(c.value, str):
                    c.value = cell(c.value)


# --- numbers and times typed by people ---------------------------------------------------------

import datetime as _dt  # noqa: E402
import math as _math  # noqa: E402
import re as _re  # noqa: E402

# ASCII digits only (Python's float() also takes Arabic-Indic and full-width digits and "2_5"),
# one decimal separator: a point, or the Vietnamese decimal comma ("25,5": the UI shows numbers
# that way to a Vietnamese user, and its forms send them back so); never a thousands group
# ("1,000" would silently be 1.0)
_NUMBER = _re.compile(r"[+-]?(?:[0-9]+(?:[.,][0-9]+)?|[.,][0-9]+)(?:[eE][+-]?[0-9]{1,3})?")
_THOUSANDS = _re.compile(r"[+-]?[0-9]{1,3},[0-9]{3}")
FIRST_YEAR, LAST_YEAR = 2000, 2100  # dates people and devices give BEMS lie in between


class InputError(ValueError):
    """A value a person typed that BEMS cannot take; the message says why in one line."""


def parse_number(text: object, limit: int = 40) -> float:
    """A finite number typed by a person: ASCII digits, a decimal point or comma, an
    optional exponent. Raises InputError otherwise (NaN, inf, other digits, '2_5', '1,000')."""
    s = str(text if text is not None else "").strip()
    if not s or len(s) > limit or not _NUMBER.fullmatch(s) or _THOUSANDS.fullmatch(s):
        raise InputError(f"{clean_text(s, 20)!r} is not a number: digits 0-9 and one decimal "
                         "point or comma")
    value = float(s.replace(",", "."))
    if not _math.isfinite(value):
        raise InputError(f"{clean_text(s, 20)!r} is too large")
    return value


def check_year(when: _dt.date, what: str = "date") -> None:
    if not FIRST_YEAR <= when.year <= LAST_YEAR:
        raise InputError(f"{what} {when.isoformat()}: the year must be {FIRST_YEAR}-{LAST_YEAR}")


def _iso(text: object, parse, limit: int, hint: str):
    s = str(text if text is not None else "").strip()
    try:
        if len(s) > limit:
            raise ValueError
        when = parse(s)
    except ValueError:
        raise InputError(f"{clean_text(s, 30)!r}: use {hint}") from None
    check_year(when)
    return when


def parse_local_datetime(text: object, tz) -> _dt.datetime:
    """A date and time typed by a person, ISO 8601 (YYYY-MM-DD[THH:MM]): aware, in `tz`.
    A time with an offset keeps its instant (converted, never replaced by the site's zone);
    without one it is the site's local time. Years outside 2000-2100 are refused."""
    when = _iso(text, _dt.datetime.fromisoformat, 40, "YYYY-MM-DD or YYYY-MM-DDTHH:MM")
    return when.astimezone(tz) if when.tzinfo is not None else when.replace(tzinfo=tz)


def parse_date(text: object) -> _dt.date:
    return _iso(text, _dt.date.fromisoformat, 20, "YYYY-MM-DD")
