"""The outdoor temperature forecast the simulated centre gets: the weather file's future with a
forecast's error added, never the exact future.

The error of a forecast issued at hour t is an AR(1) path over the lead time: 0.3 K at issue,
growing towards a standard deviation of about 1.4 K after half a day (what day-ahead
temperature forecasts for Vietnamese cities show: 1–2 K mean absolute error). Each issue (one
an hour) draws a new path from a seeded generator, so runs repeat exactly.
"""

from __future__ import annotations

import datetime as dt
import math
import tempfile
from pathlib import Path

import numpy as np

from connectors.simulator.weather import morphed_epw

RHO, SIGMA, SIGMA0 = 0.985, 0.24, 0.3  # per 15-min step; stationary sd 0.24/√(1−ρ²) ≈ 1.4 K


class WeatherFileForecast:
    def __init__(self, latitude: float, longitude: float, seed: int = 1,
                 error: bool = True, workdir: Path | None = None):
        base = workdir or Path(tempfile.gettempdir()) / "bems-weather"
        epw = morphed_epw(base / "hai_phong_morphed.epw", latitude, longitude)
        self.hourly: dict[tuple[int, int, int], float] = {}
        for line in epw.read_text().splitlines()[8:]:
            r = line.split(",")
            if len(r) > 6:
                self.hourly[(int(r[1]), int(r[2]), int(r[3]))] = float(r[6])
        self.seed, self.error = seed, error

    def actual(self, local: dt.datetime) -> float:
        """The weather file's temperature at a local time (hourly values, the hour ending at
        h, linearly interpolated as EnergyPlus does)."""
        h0 = local.replace(minute=0, second=0, microsecond=0)
        f = (local - h0).total_seconds() / 3600
        return (1 - f) * self._hour_end(h0) + f * self._hour_end(h0 + dt.timedelta(hours=1))

    def _hour_end(self, t: dt.datetime) -> float:
        hour = t.hour if t.hour else 24
        d = t if t.hour else t - dt.timedelta(days=1)
        return self.hourly.get((d.month, d.day, hour), math.nan)

    def forecast(self, issued: dt.datetime, start: dt.datetime, steps: int) -> np.ndarray:
        """°C at each 15-min step from `start` (local), as forecast at `issued` (local, the
        issue hour is its floor)."""
        issued = issued.replace(minute=0, second=0, microsecond=0)
        truth = np.array([self.actual(start + dt.timedelta(minutes=15 * k))
                          for k in range(steps)])
        if not self.error:
            return truth
        rng = np.random.default_rng([self.seed, int(issued.timestamp()) // 3600])
        lead0 = int((start - issued).total_seconds() // 900)
        n = lead0 + steps
        err = np.empty(max(n, 1))
        err[0] = rng.normal(0, SIGMA0)
        for k in range(1, len(err)):
            err[k] = RHO * err[k - 1] + rng.normal(0, SIGMA)
        return truth + err[lead0:lead0 + steps]
