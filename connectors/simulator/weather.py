"""A stand-in weather year for Hai Phong: a hot-humid TMY3 file morphed to the site's monthly means.

No public typical-year file exists for Hai Phong. The Tampa TMY3 file shipped with
pyenergyplus has a similar annual swing (16-28 °C); each hour's dry-bulb and dew point are
shifted by the difference of monthly means (interpolated between mid-months, so there is no
step at month ends), relative humidity is recomputed, and the location header is set to the
site (latitude, longitude, UTC+7). Solar radiation is Tampa's, as measured.
"""

from __future__ import annotations

import math
from pathlib import Path

from connectors.simulator.energyplus import weather_files

BASE = "usa_fl_tampa"
# Monthly mean dry-bulb, Phu Lien station (WMO 48826), °C (DOMAIN.md; unverified).
HAI_PHONG_MONTHLY_C = (16.4, 17.0, 19.7, 23.3, 27.1, 28.6, 28.9, 28.2, 27.2, 24.7, 21.3, 18.0)
_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _rh(db: float, dp: float) -> float:
    def es(t: float) -> float:
        return 6.112 * math.exp(17.62 * t / (243.12 + t))
    return max(1.0, min(100.0, 100.0 * es(dp) / es(db)))


def _shift_for(day_of_year: float, deltas: list[float]) -> float:
    """Monthly deltas placed at mid-month, linearly interpolated (wrapping the year)."""
    mids, acc = [], 0
    for d in _DAYS:
        mids.append(acc + d / 2)
        acc += d
    for i in range(12):
        a, b = mids[i], mids[(i + 1) % 12] + (365 if i == 11 else 0)
        x = day_of_year if day_of_year >= mids[0] else day_of_year + 365
        if a <= x < b:
            f = (x - a) / (b - a)
            return deltas[i] * (1 - f) + deltas[(i + 1) % 12] * f
    return deltas[0]


def morphed_epw(dest: Path, latitude: float = 20.86, longitude: float = 106.68,
                monthly_means: tuple[float, ...] = HAI_PHONG_MONTHLY_C) -> Path:
    """Write the morphed weather file to dest (once; reused while it exists)."""
    if dest.exists():
        return dest
    lines = Path(weather_files[BASE]).read_text().splitlines()
    header, rows = lines[:8], [r.split(",") for r in lines[8:] if r.strip()]
    sums, counts = [0.0] * 12, [0] * 12
    for r in rows:
        m = int(r[1]) - 1
        sums[m] += float(r[6])
        counts[m] += 1
    deltas = [monthly_means[m] - sums[m] / counts[m] for m in range(12)]
    out = []
    for r in rows:
        month, day, hour = int(r[1]), int(r[2]), int(r[3])
        doy = sum(_DAYS[: month - 1]) + day - 1 + (hour - 0.5) / 24
        shift = _shift_for(doy, deltas)
        db = float(r[6]) + shift
        dp = min(float(r[7]) + shift, db)
        r[6], r[7], r[8] = f"{db:.1f}", f"{dp:.1f}", f"{_rh(db, dp):.0f}"
        out.append(",".join(r))
    header[0] = (f"LOCATION,Hai Phong (stand-in: Tampa TMY3 morphed to Phu Lien monthly means),-,"
                 f"VNM,morphed,488260,{latitude:.2f},{longitude:.2f},7.0,5.0")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    tmp.write_text("\n".join(header + out) + "\n")
    tmp.replace(dest)
    return dest
