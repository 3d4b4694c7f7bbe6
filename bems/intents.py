"""What strategies, operators and commands ask the writer for. Pure data: no store, no bus."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WriteIntent:
    """A value wanted at a point, with why; value None means release."""

    point: str
    value: float | None
    reason: str
    source: str = "strategy"
    priority: int | None = None
