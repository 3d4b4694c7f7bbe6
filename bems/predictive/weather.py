"""The outdoor temperature forecast: a provider (an HTTP JSON source set in the site file's
[weather] table, fetched by `connectors.weather`), cached in the store, with persistence — yesterday's readings at the same
hours — when the provider is absent, silent or stale.

The provider's reply crosses a boundary: it is read up to 2 MB, must be JSON in the
Open-Meteo layout (`{"hourly": {"time": [...], "temperature_2m": [...]}}`, times in UTC with
`timezone=UTC` or with `utc_offset_seconds`), at most 16 days of hours, every temperature a
finite number in −40…60 °C. Anything else is refused with a clear error and the cache keeps
what it had.
"""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np

from bems.errors import BemsError
from bems.site import Weather
from bems.state import WEATHER_FORECAST
from bems.text import FIRST_YEAR, LAST_YEAR

MAX_BYTES = 2_000_000
MAX_HOURS = 16 * 24
STALE_H = 12.0  # an older forecast is not used
TEMP_RANGE = (-40.0, 60.0)


class WeatherError(BemsError):
    pass


def parse(payload: bytes) -> list[tuple[int, float]]:
    """(UTC epoch, °C) hourly from a provider's reply; raises WeatherError."""
    if len(payload) > MAX_BYTES:
        raise WeatherError(f"weather reply too large ({len(payload)} bytes, at most {MAX_BYTES})")
    try:
        doc = json.loads(payload.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise WeatherError(f"weather reply is not JSON: {str(exc)[:120]}") from None
    hourly = doc.get("hourly") if isinstance(doc, dict) else None
    if not isinstance(hourly, dict):
        raise WeatherError("weather reply has no 'hourly' object")
    times, temps = hourly.get("time"), hourly.get("temperature_2m")
    if not isinstance(times, list) or not isinstance(temps, list) or len(times) != len(temps):
        raise WeatherError("weather reply needs 'time' and 'temperature_2m' lists of one length")
    if not 0 < len(times) <= MAX_HOURS:
        raise WeatherError(f"weather reply has {len(times)} hours (1 to {MAX_HOURS})")
    offset = doc.get("utc_offset_seconds", 0)
    if isinstance(offset, bool) or not isinstance(offset, int) or abs(offset) > 14 * 3600:
        raise WeatherError("weather reply's utc_offset_seconds is not a whole number of "
                           "seconds within ±14 h")
    out: list[tuple[int, float]] = []
    for t, v in zip(times, temps):
        if not isinstance(t, str) or len(t) > 40:
            raise WeatherError(f"weather time {str(t)[:40]!r} is not a date and time")
        try:
            when = dt.datetime.fromisoformat(t)
        except ValueError:
            raise WeatherError(f"weather time {t[:40]!r} is not a date and time") from None
        if not FIRST_YEAR <= when.year <= LAST_YEAR:
            raise WeatherError(f"weather time {t[:40]!r} is not in {FIRST_YEAR}..{LAST_YEAR}")
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc) - dt.timedelta(seconds=offset)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                or not TEMP_RANGE[0] <= v <= TEMP_RANGE[1]:
            raise WeatherError(f"weather temperature {str(v)[:40]} at {t[:40]} is not a "
                               f"temperature in {TEMP_RANGE[0]:g}…{TEMP_RANGE[1]:g} °C")
        out.append((int(when.timestamp()), float(v)))
    if any(b[0] <= a[0] for a, b in zip(out, out[1:])):
        raise WeatherError("weather times are not in increasing order")
    return out


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number")


def refresh(store, source: Weather, now: dt.datetime, fetch) -> list[tuple[int, float]]:
    """Fetch (the connector's `fetch`) and cache; on an error the cache is left as it was and
    the error raised."""
    points = fetch(source)
    cache(store, source, points, now)
    return points


def cache(store, source: Weather, points: list[tuple[int, float]], now: dt.datetime) -> None:
    store.put(WEATHER_FORECAST, {"fetched_at": now.isoformat(), "source": source.url[:200],
                               "points": points})


def cached(store, now: dt.datetime) -> tuple[list[tuple[int, float]], str] | None:
    d = store.get(WEATHER_FORECAST)
    if not isinstance(d, dict):
        return None
    try:
        fetched = dt.datetime.fromisoformat(d["fetched_at"])
        pts = [(int(t), float(v)) for t, v in d["points"]]
    except (KeyError, TypeError, ValueError):
        return None
    if (now - fetched).total_seconds() > STALE_H * 3600:
        return None
    return pts, d.get("fetched_at", "")


def outdoor_forecast(site, store, now: dt.datetime, steps: int,
                     measured: float | None) -> tuple[np.ndarray | None, str]:
    """°C for each 15-min step from `now` (aware, floored to the step), and where it came
    from: "forecast" (the provider, cached), "persistence" (the same hours yesterday, gaps
    interpolated), "current" (the measured temperature held: a site without a yesterday), or
    None when there is nothing."""
    from bems.storage.common import to_epoch

    t0 = to_epoch(now) // 900 * 900
    grid = t0 + 900 * np.arange(steps)
    c = cached(store, now)
    if c is not None:
        pts, _ = c
        ts = np.array([t for t, _ in pts], float)
        vs = np.array([v for _, v in pts], float)
        if len(ts) >= 2 and ts[0] <= grid[0] + 3600 and ts[-1] >= grid[-1]:
            return align(np.interp(grid, ts, vs), measured), "forecast"
    out = persistence(site, store, t0, steps)
    if out is not None:
        return align(out, measured), "persistence"
    if measured is not None and math.isfinite(measured) and \
            TEMP_RANGE[0] <= measured <= TEMP_RANGE[1]:
        return np.full(steps, float(measured)), "current"  # a new site: no yesterday yet
    return None, ""


def persistence(site, store, t0: int, steps: int) -> np.ndarray | None:
    """The outdoor temperature 24 h before each step, from the 15-minute means."""
    pid = next((p.id for p in site.points if p.kind == "outdoor_temperature"), None)
    if pid is None:
        return None
    vals = np.array(store.rollup_grid("15min", [pid], t0 - 86400, steps)[pid], float)
    ok = np.isfinite(vals)
    if ok.sum() < max(2, steps * 0.5):
        return None
    idx = np.arange(steps)
    return np.interp(idx, idx[ok], vals[ok])


def align(forecast: np.ndarray, measured: float | None, hours: float = 2.0) -> np.ndarray:
    """Bring a forecast's start to the measured outdoor temperature, the correction fading
    over `hours` (a forecast is often off by a bias the thermometer shows)."""
    fc = np.asarray(forecast, float)
    if measured is None or not math.isfinite(measured) or not len(fc):
        return fc
    k = np.arange(len(fc))
    return fc + (measured - fc[0]) * np.exp(-k / (hours * 4))
