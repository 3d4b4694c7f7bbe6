"""A meter's energy per hour from the store: shared by reports, forecasts and the UI."""

from __future__ import annotations

import datetime as dt

from bems.site import Meter
from bems.storage import Store


def hourly_kwh(store: Store, meter: Meter, start: dt.datetime,
               end: dt.datetime) -> dict[dt.datetime, float]:
    """kWh per hour (keyed by the hour's start, UTC): the mean kW of the hour (kW over one hour
    is kWh), or the register's increase where the meter has no power point. An hour after a gap
    or across a register reset is left out, not guessed."""
    if meter.power:
        return {r["bucket"]: r["mean"] for r in store.rollups("hour", [meter.power], start, end)
                if r["mean"] is not None}
    if meter.energy:
        rows = list(store.rollups("hour", [meter.energy], start - dt.timedelta(hours=1), end))
        out = {}
        for a, b in zip(rows, rows[1:]):
            if b["bucket"] - a["bucket"] == dt.timedelta(hours=1) and b["last"] >= a["last"]:
                out[b["bucket"]] = b["last"] - a["last"]
        return out
    return {}


def quarter_hour_kw(store: Store, meter: Meter, start: dt.datetime,
                    end: dt.datetime) -> list[tuple[dt.datetime, float]]:
    """Mean kW per 15 minutes (keyed by the quarter's start, UTC), from the power point."""
    if not meter.power:
        return []
    return [(r["bucket"], r["mean"]) for r in store.rollups("15min", [meter.power], start, end)
            if r["mean"] is not None]


def quarter_hour_kwh(store: Store, meter: Meter, start: dt.datetime,
                     end: dt.datetime) -> list[tuple[dt.datetime, float]]:
    """kWh per 15 minutes (a quarter's mean kW over a quarter of an hour); a meter with only an
    energy register gives hourly steps instead (its resolution)."""
    if meter.power:
        return [(t, kw * 0.25) for t, kw in quarter_hour_kw(store, meter, start, end)]
    return sorted(hourly_kwh(store, meter, start, end).items())
