"""Day-ahead forecasters behind one small interface, saved as JSON (never pickle).

A frame has one row per local hour: ds (naive local time), y (kWh in the hour, NaN where
unknown), temp_c (may be all NaN), off (bool: an off-day). `fit(history)` learns from complete
past days; `predict(history, day_frame)` forecasts the hours of `day_frame` (all on days after
the history) using only what the history holds, as at 00:00 of the first day.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from typing import Protocol

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


def _quiet() -> None:
    """Prophet and CmdStan log every fit at INFO (and Prophet its missing plotly)."""
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)
    from cmdstanpy.utils.logging import get_logger

    get_logger()  # it sets itself to DEBUG the first time: let it, then lower it
    for name in ("prophet", "cmdstanpy"):
        logging.getLogger(name).setLevel(logging.WARNING)
KNOTS = (10.0, 15.0, 20.0, 25.0, 30.0)


class Forecaster(Protocol):
    name: str

    def fit(self, history: pd.DataFrame) -> None: ...

    def predict(self, history: pd.DataFrame, future: pd.DataFrame) -> np.ndarray: ...

    def to_json(self) -> str: ...


def _temp(df: pd.DataFrame) -> np.ndarray:
    t = df["temp_c"].to_numpy(dtype=float)
    if np.isnan(t).all():
        return np.zeros(len(t))
    return np.where(np.isnan(t), np.nanmean(t), t)


# --- baselines ----------------------------------------------------------------------------

class SameHourLastWeek:
    """The value at the same hour seven days before (the naive seasonal baseline)."""

    name = "last_week"

    def fit(self, history: pd.DataFrame) -> None:
        pass

    def predict(self, history: pd.DataFrame, future: pd.DataFrame) -> np.ndarray:
        s = history.set_index("ds")["y"]
        back = future["ds"] - pd.Timedelta(days=7)
        vals = s.reindex(back).to_numpy(dtype=float)
        # a hole a week ago: the same hour two weeks ago
        holes = np.isnan(vals)
        if holes.any():
            vals[holes] = s.reindex(back[holes] - pd.Timedelta(days=7)).to_numpy(dtype=float)
        return np.nan_to_num(vals, nan=float(np.nanmean(s.tail(24 * 7))))

    def to_json(self) -> str:
        return json.dumps({"name": self.name})


class TOWT:
    """LBNL time-of-week-and-temperature regression: a coefficient per hour of the week
    (off-days take Sunday's hours) and piecewise-linear temperature terms, separate for
    occupied and unoccupied hours; fitted on the last `weeks` weeks."""

    name = "towt"

    def __init__(self, weeks: int = 8):
        self.weeks = weeks
        self.coef: list[float] = []
        self.occupied: list[bool] = []
        self.has_temp = False

    @staticmethod
    def _tow(df: pd.DataFrame) -> np.ndarray:
        dow = np.where(df["off"].to_numpy(), 6, df["ds"].dt.dayofweek.to_numpy())
        return dow * 24 + df["ds"].dt.hour.to_numpy()

    def _design(self, df: pd.DataFrame) -> np.ndarray:
        tow = self._tow(df)
        X = np.zeros((len(df), 168 + 2 * (len(KNOTS) + 1)))
        X[np.arange(len(df)), tow] = 1.0
        if self.has_temp:
            t = _temp(df)
            occ = np.array(self.occupied)[tow]
            segs = np.column_stack([np.clip(t, None, KNOTS[0])] +
                                   [np.clip(t - lo, 0, hi - lo) for lo, hi in
                                    zip(KNOTS, KNOTS[1:])] + [np.clip(t - KNOTS[-1], 0, None)])
            X[:, 168:168 + segs.shape[1]] = segs * occ[:, None]
            X[:, 168 + segs.shape[1]:] = segs * (~occ)[:, None]
        return X

    def fit(self, history: pd.DataFrame) -> None:
        h = history.dropna(subset=["y"]).tail(self.weeks * 168)
        self.has_temp = not h["temp_c"].isna().all()
        tow = self._tow(h)
        means = pd.Series(h["y"].to_numpy()).groupby(tow).mean().reindex(range(168))
        self.occupied = list((means > means.quantile(0.5)).fillna(False))
        X = self._design(h)
        coef, *_ = np.linalg.lstsq(X, h["y"].to_numpy(), rcond=None)
        self.coef = coef.tolist()

    def predict(self, history: pd.DataFrame, future: pd.DataFrame) -> np.ndarray:
        return self._design(future) @ np.array(self.coef)

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "weeks": self.weeks, "coef": self.coef,
                           "occupied": self.occupied, "has_temp": self.has_temp})

    @classmethod
    def from_dict(cls, d: dict) -> "TOWT":
        m = cls(d["weeks"])
        m.coef, m.occupied, m.has_temp = d["coef"], [bool(x) for x in d["occupied"]], d["has_temp"]
        return m


# --- gradient boosting --------------------------------------------------------------------

def lag_features(frame: pd.DataFrame, daytype: bool) -> pd.DataFrame:
    """Features for each hour, computed only from days before that hour's day."""
    df = frame.reset_index(drop=True)
    s = df.set_index("ds")["y"]
    out = pd.DataFrame({"hour": df["ds"].dt.hour, "dow": df["ds"].dt.dayofweek,
                        "off": df["off"].astype(int), "temp": df["temp_c"]})
    out["cdh"] = np.maximum(out["temp"] - 18.0, 0.0)
    for lag in (24, 48, 168):
        out[f"lag{lag}"] = s.reindex(df["ds"] - pd.Timedelta(hours=lag)).to_numpy()
    if daytype:
        # the same hour on the last day, and on the last 3 days, of the same type (workday or
        # off-day) strictly before this hour's day; yesterday's and last week's mean level
        day = df["ds"].dt.normalize()
        pivot = df.assign(day=day, h=df["ds"].dt.hour).pivot_table(
            index="day", columns="h", values="y", aggfunc="first", dropna=False).reindex(
            index=pd.DatetimeIndex(sorted(day.unique())), columns=range(24))
        day_off = df.assign(day=day).groupby("day")["off"].first().reindex(pivot.index)
        same1 = np.full(len(df), np.nan)
        same3 = np.full(len(df), np.nan)
        row_day = day.to_numpy()
        hours = df["ds"].dt.hour.to_numpy()
        offs = df["off"].to_numpy().astype(bool)
        for flag in (False, True):
            typed = pivot[day_off.to_numpy().astype(bool) == flag]
            if typed.empty:
                continue
            vals = typed.to_numpy()
            mean3 = typed.rolling(3, min_periods=1).mean().to_numpy()
            k = np.searchsorted(typed.index.to_numpy(), row_day, side="left") - 1
            sel = (offs == flag) & (k >= 0)
            same1[sel] = vals[k[sel], hours[sel]]
            same3[sel] = mean3[k[sel], hours[sel]]
        out["same1"] = same1
        out["same3"] = same3
        daily = pivot.mean(axis=1)
        out["yday_mean"] = daily.shift(1).reindex(row_day).to_numpy()
        out["week_mean"] = daily.rolling(7, min_periods=3).mean().shift(1).reindex(
            row_day).to_numpy()
    return out


class GBM:
    """LightGBM on calendar, temperature and lag features. `daytype` adds same-day-type lags
    (the last workday's or off-day's same hour) and recent daily levels; without it this is
    the plain 'gradient boosting on lags' baseline."""

    def __init__(self, daytype: bool = True, days: int = 365, seed: int = 7):
        self.daytype = daytype
        self.days = days
        self.seed = seed
        self.name = "gbm_daytype" if daytype else "gbm_lags"
        self.booster = None

    def fit(self, history: pd.DataFrame) -> None:
        import lightgbm as lgb

        h = history.tail(self.days * 24 + 24 * 8).reset_index(drop=True)
        X = lag_features(h, self.daytype)
        y = h["y"]
        ok = y.notna() & X["lag168"].notna()
        params = {"objective": "regression", "learning_rate": 0.05, "num_leaves": 31,
                  "min_data_in_leaf": 20, "feature_fraction": 0.9, "bagging_fraction": 0.9,
                  "bagging_freq": 1, "seed": self.seed, "verbose": -1, "num_threads": 1}
        self.booster = lgb.train(params, lgb.Dataset(X[ok], y[ok]), num_boost_round=300)

    def predict(self, history: pd.DataFrame, future: pd.DataFrame) -> np.ndarray:
        frame = pd.concat([history.tail(24 * 15), future.assign(y=np.nan)], ignore_index=True)
        X = lag_features(frame, self.daytype).tail(len(future))
        return self.booster.predict(X)

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "daytype": self.daytype, "days": self.days,
                           "model": self.booster.model_to_string()})

    @classmethod
    def from_dict(cls, d: dict) -> "GBM":
        import lightgbm as lgb

        m = cls(d["daytype"], d["days"])
        m.booster = lgb.Booster(model_str=d["model"])
        return m


class HourlyRidge:
    """A linear model per hour of the day (ridge), on the same features as the day-type GBM
    (the last same-type day's hour, the last three's, yesterday's and last week's level, the
    same hour a day and a week before), heating and cooling degrees and the weekday: the classic
    day-ahead load model. Its errors differ from the trees' (it extrapolates a level the
    trees have not seen), which is what a stack wants (bench/fleet.py)."""

    name = "ridge_hourly"
    FEATURES = ("off", "lag24", "lag168", "same1", "same3", "yday_mean", "week_mean", "cdh",
                "hdh", "mon", "fri", "sat", "sun")
    MIN_ROWS = 30  # an hour with fewer usable rows is its mean

    def __init__(self, lam: float = 1.0, days: int = 365):
        self.lam, self.days = lam, days
        self.mu = self.sd = self.w = None

    @classmethod
    def _design(cls, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        X = lag_features(frame.reset_index(drop=True), daytype=True)
        X["cdh"] = X["cdh"].fillna(0.0)  # no temperature: no degrees
        X["hdh"] = np.maximum(15.0 - X["temp"].astype(float), 0.0).fillna(0.0)
        for name, d in (("mon", 0), ("fri", 4), ("sat", 5), ("sun", 6)):
            X[name] = (X["dow"] == d).astype(float)
        X["off"] = X["off"].astype(float)
        return X[list(cls.FEATURES)].to_numpy(dtype=float), X["hour"].to_numpy()

    def fit(self, history: pd.DataFrame) -> None:
        h = history.tail(self.days * 24 + 24 * 8).reset_index(drop=True)
        X, hour = self._design(h)
        y = h["y"].to_numpy(dtype=float)
        ok = np.isfinite(y) & np.isfinite(X).all(axis=1)
        if ok.sum() < self.MIN_ROWS:
            raise ValueError("too little history for the hourly ridge model")
        self.mu = X[ok].mean(axis=0)
        sd = X[ok].std(axis=0)
        self.sd = np.where(sd > 0, sd, 1.0)
        Z = np.c_[np.ones(len(X)), (X - self.mu) / self.sd]
        self.w = np.zeros((24, Z.shape[1]))
        for hr in range(24):
            m = ok & (hour == hr)
            n = int(m.sum())
            if n < self.MIN_ROWS:
                self.w[hr, 0] = float(y[ok].mean())
                continue
            A, b = Z[m], y[m]
            reg = self.lam * n / 100 * np.eye(A.shape[1])
            reg[0, 0] = 0.0  # the intercept is not shrunk
            self.w[hr] = np.linalg.solve(A.T @ A + reg, A.T @ b)

    def predict(self, history: pd.DataFrame, future: pd.DataFrame) -> np.ndarray:
        frame = pd.concat([history.tail(24 * 15), future.assign(y=np.nan)], ignore_index=True)
        X, hour = self._design(frame)
        X, hour = X[-len(future):], hour[-len(future):]
        Z = np.c_[np.ones(len(X)), np.nan_to_num((X - self.mu) / self.sd, nan=0.0)]
        return np.einsum("ij,ij->i", Z, self.w[hour])

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "lam": self.lam, "days": self.days,
                           "mu": self.mu.tolist(), "sd": self.sd.tolist(),
                           "w": self.w.tolist()})

    @classmethod
    def from_dict(cls, d: dict) -> "HourlyRidge":
        m = cls(d["lam"], d["days"])
        m.mu, m.sd, m.w = (np.asarray(d[k], float) for k in ("mu", "sd", "w"))
        return m


# --- Prophet ------------------------------------------------------------------------------

class ProphetModel:
    """Prophet set up for a building: separate daily shapes for workdays and off-days, an
    off-day level shift, temperature and cooling-degree regressors, yearly seasonality when a
    year is there; no intervals unless asked (tenfold cheaper predictions)."""

    name = "prophet"

    def __init__(self, days: int = 365, intervals: bool = False):
        self.days, self.intervals = days, intervals
        self.model = None
        self.has_temp = False

    def _frame(self, df: pd.DataFrame) -> pd.DataFrame:
        t = _temp(df)
        out = pd.DataFrame({"ds": df["ds"].to_numpy(), "off": df["off"].astype(float).to_numpy(),
                            "work": (~df["off"].astype(bool)).to_numpy(),
                            "off_cond": df["off"].astype(bool).to_numpy()})
        if self.has_temp:
            out["temp"] = t
            out["cdh"] = np.maximum(t - 18.0, 0.0)
        if "y" in df:
            out["y"] = df["y"].to_numpy()
        return out

    def fit(self, history: pd.DataFrame) -> None:
        _quiet()
        from prophet import Prophet

        h = history.dropna(subset=["y"]).tail(self.days * 24)
        self.has_temp = not h["temp_c"].isna().all()
        m = Prophet(daily_seasonality=False, weekly_seasonality=False,
                    # a yearly shape needs two years to be told apart from the trend; with
                    # less, temperature carries the seasons
                    yearly_seasonality=len(h) > 700 * 24,
                    uncertainty_samples=1000 if self.intervals else 0)
        m.add_seasonality("daily_work", period=1, fourier_order=10, condition_name="work")
        m.add_seasonality("daily_off", period=1, fourier_order=6, condition_name="off_cond")
        m.add_regressor("off")
        if self.has_temp:
            m.add_regressor("temp")
            m.add_regressor("cdh")
        out = tempfile.mkdtemp(prefix="bems-prophet-")
        try:
            m.fit(self._frame(h), output_dir=out)
        finally:
            shutil.rmtree(out, ignore_errors=True)  # CmdStan's files, cleaned every fit
        self.model = m

    def predict(self, history: pd.DataFrame, future: pd.DataFrame) -> np.ndarray:
        fc = self.model.predict(self._frame(future).drop(columns=["y"], errors="ignore"))
        return fc["yhat"].to_numpy()

    def to_json(self) -> str:
        from prophet.serialize import model_to_json

        return json.dumps({"name": self.name, "days": self.days, "has_temp": self.has_temp,
                           "model": model_to_json(self.model)})

    @classmethod
    def from_dict(cls, d: dict) -> "ProphetModel":
        from prophet.serialize import model_from_json

        m = cls(d["days"])
        m.has_temp, m.model = d["has_temp"], model_from_json(d["model"])
        return m


class Ensemble:
    """The mean of several forecasters (different errors partly cancel)."""

    def __init__(self, members: list):
        self.members = members
        self.name = "ensemble"

    def fit(self, history: pd.DataFrame) -> None:
        for m in self.members:
            m.fit(history)

    def predict(self, history: pd.DataFrame, future: pd.DataFrame) -> np.ndarray:
        return np.mean([m.predict(history, future) for m in self.members], axis=0)

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "members": [json.loads(m.to_json())
                                                          for m in self.members]})


def from_json(text: str):
    """Rebuild any saved forecaster."""
    d = json.loads(text)
    name = d["name"]
    if name == "last_week":
        return SameHourLastWeek()
    if name == "towt":
        return TOWT.from_dict(d)
    if name in ("gbm_lags", "gbm_daytype"):
        return GBM.from_dict(d)
    if name == HourlyRidge.name:
        return HourlyRidge.from_dict(d)
    if name == "prophet":
        return ProphetModel.from_dict(d)
    if name == "ensemble":
        return Ensemble([from_json(json.dumps(m)) for m in d["members"]])
    raise ValueError(f"unknown forecaster {name!r}")


def catalogue(prophet: bool = True) -> dict[str, object]:
    """Fresh instances of every model a backtest compares."""
    models: dict[str, object] = {"last_week": SameHourLastWeek(), "towt": TOWT(),
                                 "gbm_lags": GBM(daytype=False), "gbm_daytype": GBM(daytype=True)}
    if prophet:
        models["prophet"] = ProphetModel()
    return models
