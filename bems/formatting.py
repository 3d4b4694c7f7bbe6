"""Numbers in the reader's language: 1,234.5 in English, 1.234,5 in Vietnamese."""

from __future__ import annotations

import math

from babel.numbers import format_decimal


def number(value: float, lang: str, digits: int = 1) -> str:
    """1.234,5 (vi) / 1,234.5 (en); a value that is not a finite number (a device can send
    one) is shown as a dash, never an error."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(value) or abs(value) >= 1e15:
        return "–"
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return format_decimal(round(float(value), digits), format=pattern, locale=lang)
