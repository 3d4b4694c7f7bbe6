"""`bems portfolio forecast`: tomorrow's load of every meter in the portfolio, refitted on Dask.

The meters' hourly energy comes from the portfolio store; the models are `models.fleet`'s (by
default the stack of the global model and each meter's own two: the best on the held-out meters
of bench/fleet.py, 0.955× GBM-lags in median hourly CV(RMSE)). Dask runs the work: a scheduler address in production, a LocalCluster
otherwise. The forecasts land in `forecasts` (mean kW per hour) for the centre pages.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from city.store import CityStore
from models.data import DayTypes
from models.fleet import refit_fleet

MIN_DAYS = 14
HISTORY_DAYS = 400


def meter_frames(rows: list[tuple], end_local: pd.Timestamp,
                 outdoor: list[tuple] = ()) -> dict[tuple[str, str], pd.DataFrame]:
    """Hourly frames (ds local, y kWh, temp_c) per (site, meter) up to `end_local`, with the
    missing hours as NaN; meters with less than MIN_DAYS of data are left out. `outdoor`:
    (site, local hour, °C) of the centres' own outdoor thermometers."""
    by: dict[tuple[str, str], list] = {}
    for site, meter, hour, kwh in rows:
        by.setdefault((site, meter), []).append((hour, kwh))
    temps: dict[str, pd.Series] = {}
    for site, hour, c in outdoor:
        temps.setdefault(site, {})[hour] = c  # type: ignore[index]
    temps = {k: pd.Series(v, dtype=float) for k, v in temps.items()}
    for v in temps.values():
        v.index = pd.DatetimeIndex(v.index)
    out = {}
    for key, values in by.items():
        s = pd.Series(dict(values), dtype=float)
        s.index = pd.DatetimeIndex(s.index)
        s = s[s.index < end_local]
        if s.notna().sum() < MIN_DAYS * 24 * 0.8:
            continue
        idx = pd.date_range(s.index.min().normalize(), end_local - pd.Timedelta(hours=1),
                            freq="h")
        t = temps.get(key[0])
        out[key] = pd.DataFrame({"ds": idx, "y": s.reindex(idx).to_numpy(),
                                 "temp_c": t.reindex(idx).to_numpy() if t is not None
                                 else np.nan})
    return out


def refit_city(dsn: str, client=None, day: dt.date | None = None, model: str = "stack",
               country: str = "VN") -> dict:
    """Forecast `day` (default: tomorrow in Vietnam) for every meter; returns a summary."""
    tz = ZoneInfo("Asia/Ho_Chi_Minh")
    day = day or (dt.datetime.now(tz).date() + dt.timedelta(days=1))
    start = pd.Timestamp(day)
    with CityStore(dsn) as cs:
        cs.migrate()
        zones = cs.site_zones()
        since = dt.datetime.combine(day - dt.timedelta(days=HISTORY_DAYS), dt.time(), tz)
        frames = meter_frames(cs.hourly_energy(since), start, cs.hourly_outdoor(since))
        if not frames:
            return {"meters": 0, "seconds": 0.0, "model": model}
        keys = list(frames)
        preds, info = refit_fleet({f"{s}/{m}": frames[(s, m)] for s, m in keys},
                                  DayTypes(country), start, client=client, model=model)
        issued = dt.datetime.now(dt.timezone.utc)
        rows = []
        for s, m in keys:
            zone = ZoneInfo(zones.get(s, "Asia/Ho_Chi_Minh"))
            for h, kw in enumerate(preds[f"{s}/{m}"]):
                t = dt.datetime.combine(day, dt.time(h), zone)
                rows.append((s, m, t, float(kw), model))
        cs.save_forecasts(rows, issued)
    return info
