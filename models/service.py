"""Forecasts for a site's meters from its own store: choose by backtest, refit, write 48 h ahead.

Run nightly by the runtime, one process per core across meters. A meter's hourly energy is the
hourly mean of its power point (kW over an hour is kWh), or the hourly increase of its energy
register where it has no power point; the outdoor temperature is the hourly mean of the site's
outdoor-temperature points. Future temperatures are taken as the same hours of the last day
(persistence): the site has no weather-forecast feed.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from bems.metering import hourly_kwh
from bems.site import Site
from bems.storage import Store
from models.backtest import build, run_backtest
from models.data import DataError, DayTypes, clean_hourly

log = logging.getLogger(__name__)
UTC = dt.timezone.utc
CANDIDATES = ("last_week", "towt", "gbm_lags", "gbm_daytype", "prophet", "ensemble")


def meter_series(site: Site, store: Store, meter_id: str, start: dt.datetime,
                 end: dt.datetime) -> pd.DataFrame:
    """Hourly (ds local naive, y kWh, temp_c) for a meter from the store's hourly rollups."""
    meter = site.meter(meter_id)
    tz = site.tz
    if not (meter.power or meter.energy):
        raise DataError(f"meter {meter_id} has no power or energy point")
    y = pd.Series(hourly_kwh(store, meter, start, end), dtype=float)
    temps = [p.id for p in site.points if p.kind == "outdoor_temperature"]
    t = pd.Series(dtype=float)
    if temps:
        trows = list(store.rollups("hour", temps[:1], start, end))
        t = pd.Series({r["bucket"]: r["mean"] for r in trows}, dtype=float)
    if y.empty:
        raise DataError(f"meter {meter_id}: no readings in the store")
    idx = y.index.union(t.index)
    df = pd.DataFrame({"y": y.reindex(idx), "temp_c": t.reindex(idx)})
    df.index = pd.DatetimeIndex(df.index).tz_convert(tz).tz_localize(None)
    return df.rename_axis("ds").reset_index()


def forecast_horizon(model, history: pd.DataFrame, start: pd.Timestamp, hours: int,
                     days: DayTypes) -> pd.DataFrame:
    """Recursive day by day: each day is forecast as at its midnight, with the days before it
    filled by the forecast, so every model sees the inputs it was trained with."""
    hist = history.copy()
    out = []
    first_day = start.normalize()
    n_days = int(np.ceil((start - first_day + pd.Timedelta(hours=hours)) / pd.Timedelta(days=1)))
    for i in range(n_days):
        day = first_day + pd.Timedelta(days=i)
        ds = pd.date_range(day, periods=24, freq="h")
        last_day = hist[hist["ds"] >= hist["ds"].max().normalize()]
        temp = last_day.set_index(last_day["ds"].dt.hour)["temp_c"]
        fut = pd.DataFrame({"ds": ds, "temp_c": temp.reindex(ds.hour).to_numpy()})
        fut["off"] = days.off_series(fut["ds"]).to_numpy()
        fut["y"] = model.predict(hist[hist["ds"] < day], fut)
        hist = pd.concat([hist[hist["ds"] < day], fut], ignore_index=True)
        out.append(fut)
    res = pd.concat(out, ignore_index=True)
    return res[(res["ds"] >= start) & (res["ds"] < start + pd.Timedelta(hours=hours))]


def refit_meter(site: Site, db: Path, meter_id: str, now: dt.datetime, horizon_h: int = 48,
                select_days: int = 14, candidates: tuple[str, ...] = CANDIDATES) -> dict:
    """Backtest the candidates on the last `select_days`, keep the best, refit it on all the
    history, and store it with its scores and forecasts from today's midnight to `horizon_h`
    hours from now (the hours already gone as forecast from the days before today: a baseline
    for faults takes only forecasts issued before their hour, so these serve the charts)."""
    days = DayTypes.for_site(site)
    with Store(db, site.timezone) as store:
        raw = meter_series(site, store, meter_id, now - dt.timedelta(days=400), now)
        df, rep = clean_hourly(raw, name=f"meter {meter_id}")
        local_now = pd.Timestamp(now.astimezone(site.tz).replace(tzinfo=None)).floor("h")
        df = df[df["ds"] < local_now.normalize()]
        available = (local_now.normalize() - df["ds"].min()).days
        select_days = min(select_days, available - 28)  # the first 28 days train
        if select_days < 3:
            raise DataError(f"meter {meter_id}: {available} days of data; a model is chosen "
                            "once there are 31")
        use_prophet = "prophet" in candidates
        models = {n: build(n, use_prophet) for n in candidates if n != "ensemble"}
        bt = run_backtest(df, days, select_days, local_now.normalize().date(), refit_every=7,
                          models=models, meter=meter_id,
                          ensemble_of=("gbm_lags", "gbm_daytype", "prophet"))
        name = bt.selected
        model = build(name, use_prophet)
        train = df.assign(off=days.off_series(df["ds"]).to_numpy())
        model.fit(train)
        # history up to now; each day is forecast from the days before it, so today's hours
        # so far are kept too (what was expected of them as at midnight: the overview sets the
        # day against it even on the day a site starts), then `horizon_h` hours from now
        recent = raw[raw["ds"] < local_now].copy()
        recent["off"] = days.off_series(recent["ds"]).to_numpy()
        midnight = local_now.normalize()
        fc = forecast_horizon(model, recent, midnight,
                              horizon_h + int((local_now - midnight) / pd.Timedelta(hours=1)),
                              days)
        when = now.astimezone(UTC)
        rows = [(pd.Timestamp(ts).tz_localize(site.tz).to_pydatetime(), float(v))
                for ts, v in zip(fc["ds"], fc["y"])]
        store.save_forecast(meter_id, when, name, rows)
        scores = {k: v.as_dict() for k, v in bt.scores.items()}
        store.save_model(meter_id, name, model.to_json() if hasattr(model, "to_json") else "",
                         {"selected": name, "select_days": select_days, "scores": scores,
                          "repairs": rep.summary()}, when)
    return {"meter": meter_id, "selected": name, "scores": scores, "forecast_hours": len(rows)}


def refit_all(site: Site, db: Path, now: dt.datetime, workers: int | None = None,
              candidates: tuple[str, ...] = CANDIDATES) -> list[dict]:
    """Every meter, in parallel processes (one per core); a meter that fails is reported and
    the others go on."""
    meters = [m.id for m in site.meters if m.power or m.energy]
    workers = workers or os.cpu_count() or 1
    results = []
    with ProcessPoolExecutor(min(workers, len(meters) or 1)) as pool:
        futs = {m: pool.submit(refit_meter, site, db, m, now, candidates=candidates)
                for m in meters}
        for m, fut in futs.items():
            try:
                results.append(fut.result())
            except Exception as err:  # noqa: BLE001 - one meter must not stop the others
                log.warning("forecast for meter %s failed: %s", m, err)
                results.append({"meter": m, "error": str(err)})
    return results


def describe(result: dict) -> str:
    if "error" in result:
        return f"{result['meter']}: {result['error']}"
    s = result["scores"][result["selected"]]
    return (f"{result['meter']}: {result['selected']} (CV(RMSE) {s['cv_rmse']:.1f} %, "
            f"NMBE {s['nmbe']:.1f} % on the last days), {result['forecast_hours']} h ahead")

