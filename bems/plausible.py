"""What a plausible reading is, per point: the site file's limits where it gives them, else
the physical range of the point's kind. A finite number outside it (1e20 from a glitch, the
3.4e38 some controllers send for "no sensor", a meter's 1e10 kW) is stored as a `bad`
reading without a value, so it never reaches a rollup, a chart, a report, a strategy or the
city; the raw number is kept beside it for the record (`Store.implausible`)."""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

from bems.site import Point, Site

_AIR = (-50.0, 100.0)  # °C: any air a building's sensors meet, with room for a hot duct
_PERCENT = (-5.0, 105.0)  # a little over and under: sensors' own noise around 0 and 100 %
_BINARY = (0.0, 1.0)
KIND_RANGES: dict[str, tuple[float, float]] = {
    "temperature": _AIR, "outdoor_temperature": _AIR, "setpoint": _AIR,
    "supply_air_temperature": _AIR, "supply_air_setpoint": _AIR,
    "mixed_air_temperature": _AIR, "return_air_temperature": _AIR,
    "humidity": (0.0, 100.0),
    "status": _BINARY, "lighting": _BINARY, "occupancy": _BINARY, "outdoor_air": _BINARY,
    "mode": (0.0, 255.0),
    "dimming": _PERCENT, "outdoor_air_fraction": _PERCENT, "fan_speed": _PERCENT,
    "power": (-1e6, 1e6),  # kW: a centre draws kilowatts to a few megawatts (PV may export)
    "energy": (-1e3, 1e12),  # kWh, an accumulating register
    "heartbeat": (0.0, 1e6),
}
OTHER = (-1e9, 1e9)


def valid_range(point: Point) -> tuple[float, float]:
    lo, hi = KIND_RANGES.get(point.kind, OTHER)
    if point.min is not None:
        lo = point.min
    if point.max is not None:
        hi = point.max
    return lo, hi


class Screen:
    """Splits readings into the stored ones (an implausible value becomes a `bad` reading
    without a value) and the implausible raw values."""

    def __init__(self, site: Site):
        self.ranges = {p.id: valid_range(p) for p in site.points}

    def plausible(self, point: str, value: Any) -> bool:
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return True  # nothing to judge (a missing or non-numeric reading is handled apart)
        if not math.isfinite(value):
            return False
        lo, hi = self.ranges.get(point, OTHER)
        return lo <= value <= hi

    def rows(self, rows: Iterable[Sequence]) -> tuple[list[tuple], list[tuple]]:
        """(rows to store, [(point, time, raw value)] that were implausible)."""
        keep, odd = [], []
        for r in rows:
            v = r[2]
            if self.plausible(r[0], v):
                keep.append(tuple(r))
            else:
                keep.append((r[0], r[1], None, "bad"))
                if isinstance(v, (int, float)) and math.isfinite(v):
                    odd.append((r[0], r[1], float(v)))
        return keep, odd
