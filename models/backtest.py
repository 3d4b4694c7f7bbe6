"""Rolling-origin day-ahead backtests with ASHRAE Guideline 14 metrics.

Each test day is forecast as at 00:00 local, 24 hourly values, from models fitted only on the
days before it (refitted daily or weekly). Temperatures of the forecast day are the measured
ones (a perfect weather forecast), as is usual for comparing load models; hours whose actual
value is missing are left out of the scores.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.data import DataError, DayTypes, infer_closures
from models.forecasters import Ensemble, catalogue

G14_HOURLY = (30.0, 10.0)  # CV(RMSE) %, |NMBE| %
G14_MONTHLY = (15.0, 5.0)


def cv_rmse(y: np.ndarray, yhat: np.ndarray) -> float:
    """100 * sqrt(mean((y - yhat)^2)) / mean(y)."""
    y, yhat = np.asarray(y, float), np.asarray(yhat, float)
    return float(100.0 * np.sqrt(np.mean((y - yhat) ** 2)) / np.mean(y))


def nmbe(y: np.ndarray, yhat: np.ndarray) -> float:
    """100 * sum(y - yhat) / (n * mean(y)): positive when the model forecasts too low."""
    y, yhat = np.asarray(y, float), np.asarray(yhat, float)
    return float(100.0 * np.sum(y - yhat) / (len(y) * np.mean(y)))


@dataclass
class ModelScore:
    cv_rmse: float
    nmbe: float
    daily_cv_rmse: float
    fit_seconds: float

    @property
    def meets_g14_hourly(self) -> bool:
        return self.cv_rmse <= G14_HOURLY[0] and abs(self.nmbe) <= G14_HOURLY[1]

    def as_dict(self) -> dict:
        return {"cv_rmse": round(self.cv_rmse, 2), "nmbe": round(self.nmbe, 2),
                "daily_cv_rmse": round(self.daily_cv_rmse, 2),
                "fit_seconds": round(self.fit_seconds, 3)}


@dataclass
class BacktestResult:
    meter: str
    days: int
    first_day: dt.date
    last_day: dt.date
    scores: dict[str, ModelScore]
    selected: str
    forecasts: pd.DataFrame = field(repr=False)  # ds, y, and one column per model

    def as_dict(self) -> dict:
        return {"meter": self.meter, "days": self.days, "selected": self.selected,
                "models": {k: v.as_dict() for k, v in self.scores.items()}}


def prepare(df: pd.DataFrame, days: DayTypes) -> pd.DataFrame:
    """Add the off-day flag from the calendar."""
    out = df.copy()
    out["off"] = days.off_series(out["ds"]).to_numpy()
    return out


def score(frame: pd.DataFrame, column: str, fit_seconds: float) -> ModelScore:
    ok = frame["y"].notna() & frame[column].notna()
    f = frame[ok]
    daily = f.assign(day=f["ds"].dt.date).groupby("day")[["y", column]].sum()
    return ModelScore(cv_rmse(f["y"], f[column]), nmbe(f["y"], f[column]),
                      cv_rmse(daily["y"], daily[column]), fit_seconds)


def run_backtest(df: pd.DataFrame, days: DayTypes, test_days: int, end: dt.date | None = None,
                 refit_every: int = 7, models: dict | None = None, meter: str = "meter",
                 ensemble_of: tuple[str, ...] = ("gbm_lags", "gbm_daytype", "prophet"),
                 select_on: str = "cv_rmse") -> BacktestResult:
    """Forecast each of `test_days` days ending the day before `end` (default: after the last
    full day of data). `ensemble_of` models are also averaged as 'ensemble'."""
    frame = prepare(df, days)
    last_full = (frame.dropna(subset=["y"])["ds"].max() + pd.Timedelta(hours=1)).normalize()
    end_ts = pd.Timestamp(end) if end else last_full
    first_ts = end_ts - pd.Timedelta(days=test_days)
    if first_ts - frame["ds"].min() < pd.Timedelta(days=28):
        raise DataError(f"{meter}: not enough history before {first_ts.date()} for "
                        f"{test_days} test days (at least 28 days are needed)")
    if end_ts > last_full:
        raise DataError(f"{meter}: data ends {last_full.date()}, before --end {end_ts.date()}")
    models = models if models is not None else catalogue()
    fit_time = {k: 0.0 for k in models}
    fits = {k: 0 for k in models}
    preds: dict[str, list] = {k: [] for k in models}
    rows = []
    closed: frozenset = frozenset()
    for i in range(test_days):
        day = first_ts + pd.Timedelta(days=i)
        history = frame[frame["ds"] < day]
        if closed:  # the same labels for predicting as for training
            history = history.copy()
            history.loc[history["ds"].dt.date.isin(closed), "off"] = True
        target = frame[(frame["ds"] >= day) & (frame["ds"] < day + pd.Timedelta(days=1))]
        if i % refit_every == 0:
            # closures seen in the past are off-days for training, whatever the calendar says
            closed = infer_closures(history.tail(400 * 24), days)
            if closed:
                history = history.copy()
                history.loc[history["ds"].dt.date.isin(closed), "off"] = True
            for name, model in models.items():
                t = time.perf_counter()
                model.fit(history)
                fit_time[name] += time.perf_counter() - t
                fits[name] += 1
        for name, model in models.items():
            preds[name].append(model.predict(history, target))
        rows.append(target[["ds", "y"]])
    out = pd.concat(rows, ignore_index=True)
    for name in models:
        out[name] = np.concatenate(preds[name])
    members = [m for m in ensemble_of if m in models]
    if len(members) >= 2:
        out["ensemble"] = out[members].mean(axis=1)
    scores = {name: score(out, name, fit_time[name] / max(fits[name], 1)) for name in models}
    if "ensemble" in out:
        scores["ensemble"] = score(out, "ensemble",
                                   sum(scores[m].fit_seconds for m in members))
    selected = min(scores, key=lambda k: getattr(scores[k], select_on))
    return BacktestResult(meter, test_days, first_ts.date(),
                          (end_ts - pd.Timedelta(days=1)).date(), scores, selected, out)


def build(name: str, prophet: bool = True):
    """A fresh model by name, including the ensemble."""
    if name == "ensemble":
        cat = catalogue(prophet)
        return Ensemble([cat[m] for m in ("gbm_lags", "gbm_daytype", "prophet") if m in cat])
    return catalogue(prophet)[name]
