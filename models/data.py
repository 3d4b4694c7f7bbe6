"""Load and repair hourly meter series: clear errors for what cannot be fixed, documented repairs
for what can. Every repair is counted in `Repairs`, so nothing is changed silently.

Repairs:
- duplicate timestamps (the daylight-saving fall-back hour, or a meter reporting twice): the
  values of one label are averaged;
- missing hours: gaps of up to 3 hours are interpolated linearly; longer gaps stay missing, are
  left out of training and out of the scores;
- negative values and absurd spikes (above 10x the 99.5th percentile): set missing;
- 15-minute (or finer) data: summed to hourly energy when the file holds energy per interval,
  averaged when it holds mean power (`kind`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import holidays
import numpy as np
import pandas as pd

from bems.calendar import makeup_workdays
from bems.errors import BemsError

MIN_HISTORY_DAYS = 28


class DataError(BemsError):
    """The series cannot be used for forecasting as it is."""


@dataclass
class Repairs:
    duplicates: int = 0
    interpolated: int = 0
    left_missing: int = 0
    negative: int = 0
    spikes: int = 0
    resampled_from_minutes: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{v} {k.replace('_', ' ')}" for k, v in self.__dict__.items()
                 if isinstance(v, int) and v]
        return ", ".join(parts) or "none"


def load_csv(path: str | Path, kind: str | None = None) -> tuple[pd.DataFrame, Repairs]:
    """A CSV in the shared format (ds, y, temp_c; ds local wall-clock) → clean hourly frame."""
    p = Path(path)
    try:
        raw = pd.read_csv(p)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"{p}: cannot read as CSV: {err}") from err
    missing = {"ds", "y"} - set(raw.columns)
    if missing:
        raise DataError(f"{p}: missing column(s) {', '.join(sorted(missing))} "
                        "(expected ds,y,temp_c)")
    try:
        raw["ds"] = pd.to_datetime(raw["ds"])
    except (ValueError, TypeError) as err:
        raise DataError(f"{p}: column ds holds something that is not a date-time: {err}") from err
    raw["y"] = pd.to_numeric(raw["y"], errors="coerce")
    if "temp_c" not in raw:
        raw["temp_c"] = np.nan
    raw["temp_c"] = pd.to_numeric(raw["temp_c"], errors="coerce")
    if kind is None:
        kind = "power" if "15min" in p.name else "energy"
    return clean_hourly(raw[["ds", "y", "temp_c"]], kind=kind, name=str(p))


def clean_hourly(frame: pd.DataFrame, kind: str = "energy",
                 name: str = "series") -> tuple[pd.DataFrame, Repairs]:
    """Repair a (ds, y, temp_c) frame into a complete hourly index. `kind`: 'energy' (y is
    kWh per interval) or 'power' (y is mean kW over the interval)."""
    rep = Repairs()
    df = frame.dropna(subset=["ds"]).sort_values("ds")
    if df.empty:
        raise DataError(f"{name}: no data")
    step = df["ds"].diff().dt.total_seconds().median()
    if step and step < 3600:
        rep.resampled_from_minutes = int(step // 60)
        grouped = df.set_index("ds").resample("h")
        y = grouped["y"].mean() if kind == "power" else grouped["y"].sum(min_count=1)
        df = pd.DataFrame({"ds": y.index, "y": y.values,
                           "temp_c": grouped["temp_c"].mean().values})
    dup = df["ds"].duplicated(keep=False)
    if dup.any():
        rep.duplicates = int(df["ds"].duplicated().sum())
        rep.notes.append("duplicate hours (daylight saving fall-back) averaged")
        df = df.groupby("ds", as_index=False).mean()
    full = pd.date_range(df["ds"].iloc[0].floor("h"), df["ds"].iloc[-1].floor("h"), freq="h")
    df = df.set_index("ds").reindex(full)
    df.index.name = "ds"
    neg = df["y"] < 0
    rep.negative = int(neg.sum())
    df.loc[neg, "y"] = np.nan
    valid = df["y"].dropna()
    if len(valid):
        limit = 10 * max(valid.quantile(0.995), 1e-9)
        spikes = df["y"] > limit
        rep.spikes = int(spikes.sum())
        df.loc[spikes, "y"] = np.nan
    missing_before = int(df["y"].isna().sum())
    df["y"] = _fill_short_gaps(df["y"], 3)
    rep.interpolated = missing_before - int(df["y"].isna().sum())
    rep.left_missing = int(df["y"].isna().sum())
    df["temp_c"] = _fill_short_gaps(df["temp_c"], 6)
    days = df["y"].notna().sum() / 24
    if days < MIN_HISTORY_DAYS:
        raise DataError(f"{name}: only {days:.0f} days of usable data; at least "
                        f"{MIN_HISTORY_DAYS} are needed for a day-ahead model")
    return df.reset_index(), rep


def _fill_short_gaps(s: pd.Series, longest: int) -> pd.Series:
    """Interpolate runs of at most `longest` missing values; longer runs stay missing."""
    na = s.isna()
    run_id = (na != na.shift()).cumsum()
    run_len = na.groupby(run_id).transform("sum")
    filled = s.interpolate(limit_area="inside")
    return s.where(~(na & (run_len <= longest)), filled)


@lru_cache(maxsize=32)
def _holidays(country: str, year: int) -> frozenset[dt.date]:
    try:
        return frozenset(holidays.country_holidays(country, years=[year]).keys())
    except NotImplementedError as err:
        raise DataError(f"unknown country code {country!r} for public holidays") from err


@dataclass(frozen=True)
class DayTypes:
    """Which days are off-days: weekends, public holidays, the site's closures; make-up
    working days (the government's and the site's) are workdays even on a Saturday."""

    country: str = "VN"
    closures: frozenset[dt.date] = frozenset()
    workdays: frozenset[dt.date] = frozenset()

    def is_off(self, day: dt.date) -> bool:
        if day in self.workdays or day in makeup_workdays(self.country, day.year):
            return False
        if day in self.closures or day in _holidays(self.country, day.year):
            return True
        return day.weekday() >= 5

    def off_series(self, ds: pd.Series) -> pd.Series:
        days = pd.Series(pd.to_datetime(ds).dt.date.unique())
        table = {d: self.is_off(d) for d in days}
        return pd.to_datetime(ds).dt.date.map(table).astype(bool)

    @classmethod
    def for_site(cls, site) -> "DayTypes":
        return cls(site.calendar.country,
                   frozenset(d for d, _ in site.calendar.closures),
                   frozenset(d for d, _ in site.calendar.workdays))


def infer_closures(df: pd.DataFrame, days: DayTypes) -> frozenset[dt.date]:
    """Past working days whose whole-day load looks like an off-day (a Christmas or Tết
    closure not in the public-holiday list). Used to label training data only: the future
    relies on the calendar."""
    daily = df.assign(day=df["ds"].dt.date).groupby("day")["y"].agg(["sum", "count"])
    daily = daily[daily["count"] >= 20]
    if daily.empty:
        return frozenset()
    off = pd.Series({d: days.is_off(d) for d in daily.index})
    if off.sum() < 4 or (~off).sum() < 4:
        return frozenset()
    out = set()
    for d, row in daily.iterrows():
        if off[d]:
            continue
        window = daily.loc[[x for x in daily.index if abs((x - d).days) <= 28]]
        w_off = window[off[window.index].values]["sum"].median()
        w_on = window[~off[window.index].values]["sum"].median()
        if w_on > w_off * 1.15 and row["sum"] < w_off + 0.3 * (w_on - w_off):
            out.add(d)
    return frozenset(out)
