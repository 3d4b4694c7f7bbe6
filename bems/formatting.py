"""Numbers in the reader's language: 1,234.5 in English, 1.234,5 in Vietnamese."""

from __future__ import annotations

from babel.numbers import format_decimal


def number(value: float, lang: str, digits: int = 1) -> str:
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return format_decimal(round(float(value), digits), format=pattern, locale=lang)
