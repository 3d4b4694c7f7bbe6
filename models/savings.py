"""Savings for the monthly report, in the IPMVP Option C sense: a TOWT model of the whole
building trained on the baseline period, given the month's weather and working days, minus
what was measured; with the model's CV(RMSE) and NMBE so the reader knows how far to trust it.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from bems.reports.monthly import Savings
from bems.site import Meter, Site
from bems.storage import Store
from models.backtest import cv_rmse, nmbe
from models.data import DataError, DayTypes, clean_hourly
from models.forecasters import TOWT
from models.service import meter_series


def option_c(site: Site, store: Store, main: Meter, start: dt.datetime,
             end: dt.datetime) -> Savings:
    """IPMVP Option C: a model of the whole building trained on the baseline period (site file
    [reports] baseline_from / baseline_to), given this month's weather and working days."""
    rep = site.reports
    if not rep.baseline_from or not rep.baseline_to:
        return Savings(False, "no_baseline")
    b0 = dt.datetime.combine(rep.baseline_from, dt.time(0), site.tz)
    b1 = dt.datetime.combine(rep.baseline_to, dt.time(0), site.tz) + dt.timedelta(days=1)
    days = DayTypes.for_site(site)
    try:
        base, _ = clean_hourly(meter_series(site, store, main.id, b0, b1), name="baseline")
        month, _ = clean_hourly(meter_series(site, store, main.id, start, end), name="month")
    except DataError as err:
        return Savings(False, f"baseline_unusable: {err}")
    base["off"] = days.off_series(base["ds"]).to_numpy()
    month["off"] = days.off_series(month["ds"]).to_numpy()
    weeks = max(1, int((b1 - b0).days // 7))
    model = TOWT(weeks=weeks)
    model.fit(base)
    fit = base.dropna(subset=["y"])
    fitted = model.predict(fit, fit)
    pred = model.predict(base, month)
    ok = month["y"].notna().to_numpy()
    return Savings(True, "", float(pd.Series(pred)[ok].sum()), float(month["y"][ok].sum()),
                   "TOWT (LBNL time-of-week-and-temperature)",
                   cv_rmse(fit["y"], fitted), nmbe(fit["y"], fitted))
