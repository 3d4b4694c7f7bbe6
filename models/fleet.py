"""Day-ahead models for a fleet of meters: one global model learned across meters
(cross-learning), the per-meter models, and their stack; fitted on Dask.

The global model is LightGBM on the per-meter features of `forecasters.lag_features` made
scale-free: every load feature and the target are divided by the meter's own level (the mean
of its last 28 days before the day, known a day ahead), so one model learns the shapes of all
meters (workday/off-day profiles, the response to heat) and a meter with a short history
borrows them. Its forecast is multiplied back by the meter's level. The stacks average the
global model with the meter's own models (`STACKS`); `DEFAULT_STACK` is what the city runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.backtest import cv_rmse, nmbe, prepare
from models.data import DayTypes, infer_closures
from models.forecasters import GBM, HourlyRidge, lag_features

LOAD_FEATURES = ("lag24", "lag48", "lag168", "same1", "same3", "yday_mean", "week_mean")
LEVEL_DAYS = 28
POOL_DAYS = 365  # each meter's most recent days in the pooled training set
OWN = ("gbm_lags", "gbm_daytype", HourlyRidge.name)  # a meter's own models
# the means compared in bench/fleet.py; the default: the best on the held-out meters as first
# scored (stack_ridge was better on the tuned ones, 0.926×, and worse held out, 0.966×)
STACKS = {"stack": ("global", "gbm_daytype"),
          "stack3": ("global", "gbm_lags", "gbm_daytype"),
          "stack_ridge": ("global", "gbm_lags", HourlyRidge.name)}
DEFAULT_STACK = "stack3"


def _level(frame: pd.DataFrame) -> np.ndarray:
    """Each row's meter level: the mean load of the 28 days before its day (floored)."""
    day = frame["ds"].dt.normalize()
    daily = frame.assign(day=day).groupby("day")["y"].mean()
    daily = daily.reindex(pd.date_range(daily.index.min(), daily.index.max(), freq="D"))
    lvl = daily.rolling(LEVEL_DAYS, min_periods=7).mean().shift(1)
    out = lvl.reindex(day).to_numpy()
    floor = np.nanmean(frame["y"].to_numpy()) * 0.05 if frame["y"].notna().any() else 1.0
    return np.where(np.isfinite(out), np.maximum(out, floor), np.nan)


def scaled_features(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    X = lag_features(frame, daytype=True)
    lvl = _level(frame.reset_index(drop=True))
    for c in LOAD_FEATURES:
        X[c] = X[c].to_numpy() / lvl
    X["month"] = frame["ds"].dt.month.to_numpy()
    return X, lvl


@dataclass
class GlobalGBM:
    """One LightGBM over many meters' scale-free features."""
    rounds: int = 400
    seed: int = 7
    meter_ids: bool = True  # each meter's id as a category: shared shapes, own quirks
    booster: object = field(default=None, repr=False)
    codes: dict = field(default_factory=dict, repr=False)
    name: str = "global"

    def fit(self, histories: dict[str, pd.DataFrame]) -> None:
        codes = {k: i for i, k in enumerate(sorted(histories))}
        self.fit_parts([training_part(h, codes[k] if self.meter_ids else None)
                        for k, h in histories.items()], codes)

    def fit_parts(self, parts: list[tuple[pd.DataFrame, np.ndarray]], codes: dict,
                  threads: int = 1) -> None:
        """Fit on `training_part`s made elsewhere (in parallel, on Dask workers)."""
        import lightgbm as lgb

        self.codes = codes
        X = pd.concat([p[0] for p in parts], ignore_index=True)
        y = np.concatenate([p[1] for p in parts])
        params = {"objective": "regression_l2", "learning_rate": 0.05, "num_leaves": 63,
                  "min_data_in_leaf": 50, "feature_fraction": 0.9, "bagging_fraction": 0.8,
                  "bagging_freq": 1, "lambda_l2": 1.0, "seed": self.seed, "verbose": -1,
                  "num_threads": threads}
        cat = ["meter"] if self.meter_ids else "auto"
        self.booster = lgb.train(params, lgb.Dataset(X, y, categorical_feature=cat),
                                 num_boost_round=self.rounds)

    def predict(self, history: pd.DataFrame, future: pd.DataFrame,
                meter: str | None = None) -> np.ndarray:
        frame = pd.concat([history.tail(24 * 40), future.assign(y=np.nan)], ignore_index=True)
        X, lvl = scaled_features(frame)
        if self.meter_ids:
            X["meter"] = self.codes.get(meter, -1)  # a meter it never saw: the shared model
        n = len(future)
        return self.booster.predict(X.tail(n)) * lvl[-n:]


def training_part(h: pd.DataFrame, code: int | None) -> tuple[pd.DataFrame, np.ndarray]:
    """One meter's rows of the pooled training set (its last POOL_DAYS)."""
    h = h.tail(POOL_DAYS * 24 + 24 * 40).reset_index(drop=True)
    X, lvl = scaled_features(h)
    if code is not None:
        X["meter"] = code
    y = h["y"].to_numpy() / lvl
    ok = np.isfinite(y) & X["lag168"].notna().to_numpy()
    return X[ok], y[ok]


# --- one meter's work (runs on a Dask worker) -----------------------------------------------

def _labelled(history: pd.DataFrame, days: DayTypes) -> pd.DataFrame:
    closed = infer_closures(history.tail(400 * 24), days)
    if closed:
        history = history.copy()
        history.loc[history["ds"].dt.date.isin(closed), "off"] = True
    return history


def fit_meter(frame: pd.DataFrame, days: DayTypes, day: pd.Timestamp,
              names: tuple[str, ...] = OWN) -> dict:
    """Fit the per-meter models on everything before `day`."""
    history = _labelled(frame[frame["ds"] < day], days)
    out = {}
    for name in names:
        m = HourlyRidge() if name == HourlyRidge.name else GBM(daytype=(name == "gbm_daytype"))
        m.fit(history)
        out[name] = m
    return out


def forecast_meter(frame: pd.DataFrame, days: DayTypes, day: pd.Timestamp, n_days: int,
                   models: dict, global_model: GlobalGBM | None,
                   meter: str | None = None) -> pd.DataFrame:
    """Day-ahead forecasts of `n_days` days from `day`, each from the data before it."""
    rows = []
    for i in range(n_days):
        d = day + pd.Timedelta(days=i)
        history = _labelled(frame[frame["ds"] < d], days)
        target = frame[(frame["ds"] >= d) & (frame["ds"] < d + pd.Timedelta(days=1))]
        if target.empty:
            continue
        out = target[["ds", "y"]].copy()
        for name, m in models.items():
            out[name] = m.predict(history, target)
        if global_model is not None:
            out["global"] = global_model.predict(history, target, meter)
            for name, members in STACKS.items():
                if all(m in out for m in members):
                    out[name] = sum(out[m] for m in members) / len(members)
        rows.append(out)
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def _fit_global(frames: dict[str, pd.DataFrame], day: pd.Timestamp, dayss: list[DayTypes],
                rounds: int) -> GlobalGBM:
    g = GlobalGBM(rounds=rounds)
    g.fit({k: _labelled(f[f["ds"] < day], d) for (k, f), d in zip(frames.items(), dayss)})
    return g


def _meter_window(frame, days, day, n, names, g, meter) -> pd.DataFrame:
    return forecast_meter(frame, days, day, n, fit_meter(frame, days, day, names), g, meter)


@dataclass
class FleetScore:
    meter: str
    cv_rmse: dict[str, float]
    nmbe: dict[str, float]


def fleet_backtest(meters: dict[str, tuple[pd.DataFrame, DayTypes, pd.Timestamp]],
                   scored: list[str], test_days: int = 42, refit_every: int = 7,
                   client=None, rounds: int = 400) -> list[FleetScore]:
    """Backtest the per-meter models, the global model and their stack on the `scored`
    meters. `meters` maps name → (hourly frame, day types, end of its test window); the
    global model learns from every meter's history before each refit day (the scored
    meters' own past included, as in production). `client`: a Dask client (else in-process).
    """
    prepared = {k: prepare(f, d) for k, (f, d, _) in meters.items()}
    names = list(meters)
    windows = []  # (meter, refit day, days in window)
    for k in scored:
        end = meters[k][2]
        first = end - pd.Timedelta(days=test_days)
        for i in range(0, test_days, refit_every):
            windows.append((k, first + pd.Timedelta(days=i), min(refit_every, test_days - i)))
    # the global model per refit day, aligned by each meter's own test calendar: the pool
    # holds every meter's data before its own window day with the same offset
    offsets = sorted({(w[1] - (meters[w[0]][2] - pd.Timedelta(days=test_days))) for w in windows})

    def pool_day(k, off):
        return meters[k][2] - pd.Timedelta(days=test_days) + off

    submit = client.submit if client is not None else (lambda f, *a, **kw: _Done(f(*a, **kw)))
    globals_ = {}
    for off in offsets:
        frames = {k: prepared[k][prepared[k]["ds"] < pool_day(k, off)] for k in names}
        globals_[off] = submit(_fit_global, frames, pd.Timestamp.max, [meters[k][1] for k in names],
                               rounds, pure=False)
    futures = []
    for k, day, n in windows:
        off = day - (meters[k][2] - pd.Timedelta(days=test_days))
        futures.append((k, submit(_meter_window, prepared[k], meters[k][1], day, n,
                                  OWN, globals_[off], k, pure=False)))
    results: dict[str, list] = {}
    for k, fut in futures:
        results.setdefault(k, []).append(fut.result())
    out = []
    for k in scored:
        f = pd.concat(results[k], ignore_index=True).dropna(subset=["y"])
        cols = [c for c in f.columns if c not in ("ds", "y")]
        out.append(FleetScore(k, {c: cv_rmse(f["y"].to_numpy(), f[c].to_numpy()) for c in cols},
                              {c: nmbe(f["y"].to_numpy(), f[c].to_numpy()) for c in cols}))
    return out


class _Done:
    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


# --- production: tomorrow for every meter ---------------------------------------------------

POOL_METERS = 200


def _part(frame, days, code):
    return training_part(_labelled(frame, days), code)


def _fit_from_parts(parts, codes, rounds, threads) -> GlobalGBM:
    g = GlobalGBM(rounds=rounds)
    g.fit_parts(parts, codes, threads)
    return g


def refit_fleet(frames: dict[str, pd.DataFrame], days: DayTypes, day: pd.Timestamp,
                client=None, model: str = "global", rounds: int = 400, threads: int = 2,
                ) -> tuple[dict[str, np.ndarray], dict]:
    """Fit on everything before `day` and forecast its 24 hours for every meter.
    `model`: "global" (one model across meters), "per_meter" (gbm_daytype each) or "stack"
    (the mean of the global model and the meter's own models of `DEFAULT_STACK`)."""
    t = time.perf_counter()
    prepared = {k: prepare(f, days) for k, f in frames.items()}
    submit = client.submit if client is not None else (lambda f, *a, **kw: _Done(f(*a, **kw)))
    hours = pd.date_range(day, periods=24, freq="h")
    off = days.off_series(pd.Series(hours)).to_numpy()

    def future_of(frame: pd.DataFrame) -> pd.DataFrame:
        """The day's 24 hours, their outdoor temperature that of the same hours the day
        before (persistence: the city has the centres' thermometers, not a forecast)."""
        past = frame.set_index("ds")["temp_c"] if "temp_c" in frame else pd.Series(dtype=float)
        temps = past.reindex(hours - pd.Timedelta(days=1)).to_numpy(dtype=float)
        return pd.DataFrame({"ds": hours, "y": np.nan, "temp_c": temps, "off": off})
    if model in ("global", "stack"):
        # learn from at most POOL_METERS meters (every n-th): more adds time, not accuracy;
        # the others are forecast by the shared part of the model
        keys = sorted(prepared)
        pool = keys[::max(1, -(-len(keys) // POOL_METERS))]
        codes = {k: i for i, k in enumerate(pool)}
        parts = [submit(_part, prepared[k][prepared[k]["ds"] < day], days, codes[k], pure=False)
                 for k in pool]
        g = submit(_fit_from_parts, parts, codes, rounds, threads, pure=False)
        if model == "global":
            futs = {k: submit(_predict_global, g, f[f["ds"] < day], future_of(f), k,
                              pure=False) for k, f in prepared.items()}
        else:
            futs = {k: submit(_stack_meter, g, f, days, day, future_of(f), k, pure=False)
                    for k, f in prepared.items()}
    else:
        futs = {k: submit(_fit_predict_meter, f, days, day, future_of(f), pure=False)
                for k, f in prepared.items()}
    out = {k: np.asarray(v.result()) for k, v in futs.items()}
    return out, {"meters": len(out), "seconds": time.perf_counter() - t, "model": model}


def _predict_global(g: GlobalGBM, history: pd.DataFrame, future: pd.DataFrame,
                    meter: str) -> np.ndarray:
    return np.maximum(g.predict(history, future, meter), 0.0)


def _stack_meter(g: GlobalGBM, frame, days, day, future, meter) -> np.ndarray:
    """The mean of the global model and the meter's own models of `DEFAULT_STACK`
    (bench/fleet.py: chosen on the tuned meters, scored on the held-out ones)."""
    own = fit_meter(frame, days, day, tuple(m for m in STACKS[DEFAULT_STACK] if m != "global"))
    history = _labelled(frame[frame["ds"] < day], days)
    preds = [g.predict(history, future, meter)] + [m.predict(history, future)
                                                    for m in own.values()]
    return np.maximum(np.mean(preds, axis=0), 0.0)


def _fit_predict_meter(frame, days, day, future) -> np.ndarray:
    m = fit_meter(frame, days, day, ("gbm_daytype",))["gbm_daytype"]
    return np.maximum(m.predict(_labelled(frame[frame["ds"] < day], days), future), 0.0)
