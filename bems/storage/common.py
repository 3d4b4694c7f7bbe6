"""What every part of the store shares: times as epoch seconds, quality codes."""

from __future__ import annotations

import datetime as dt
from typing import Any

QUALITY = {"good": 0, "uncertain": 1, "stale": 2, "bad": 3}
QUALITY_NAMES = {v: k for k, v in QUALITY.items()}


def to_epoch(t: dt.datetime | float | int) -> int:
    """Aware datetime or epoch seconds → integer epoch seconds (UTC)."""
    if isinstance(t, dt.datetime):
        if t.tzinfo is None:
            raise ValueError(f"naive datetime {t!r}: times must carry a time zone")
        return int(t.timestamp())
    return int(t)


def from_epoch(ts: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


def now_epoch() -> int:
    return int(dt.datetime.now(dt.timezone.utc).timestamp())


def epoch_or_now(t: dt.datetime | int | None) -> int:
    return to_epoch(t) if t is not None else now_epoch()


def time_range(where: list[str], args: list, since: dt.datetime | int | None,
               until: dt.datetime | int | None, column: str = "ts") -> None:
    """Add [since, until) on a time column to a WHERE clause being built."""
    if since is not None:
        where.append(f"{column} >= ?")
        args.append(to_epoch(since))
    if until is not None:
        where.append(f"{column} < ?")
        args.append(to_epoch(until))


def quality_code(q: Any) -> int:
    if isinstance(q, int):
        return q
    try:
        return QUALITY[q]
    except KeyError:
        raise ValueError(f"unknown quality {q!r}; one of {', '.join(QUALITY)}") from None
