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
