"""Report benchmark: the month's PDF and XLSX for a site with a year of 15-minute data from
200 meters (a main meter and 199 sub-meters), written through the store's batch path.

    python bench/report.py
    python bench/report.py --meters 50
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import tempfile
import time
from pathlib import Path

from bems.config import load_site
from bems.reports.monthly import build_monthly
from models.savings import option_c
from bems.reports.render import render
from bems.site import Device, Meter, Point
from bems.storage import Store


def site_with_meters(n: int):
    base = load_site()
    dev = Device("mtr", "meter gateway", "127.0.0.1", 47999, 9000)
    kinds = ("ac", "lighting", "plugs", "other")
    meters = [Meter("main", "Main", "main", power="m0.kw")]
    points = [Point("m0.kw", "mtr", "analog-input,0", "power", unit="kW")]
    for i in range(1, n):
        meters.append(Meter(f"m{i}", f"Sub-meter {i}", kinds[i % 4], parent="main",
                            floor=1 + i % 3, power=f"m{i}.kw"))
        points.append(Point(f"m{i}.kw", "mtr", f"analog-input,{i}", "power", unit="kW"))
    import dataclasses
    return dataclasses.replace(base, devices=(dev,), points=tuple(points), meters=tuple(meters),
                               zones=())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meters", type=int, default=200)
    ap.add_argument("--month", default="2026-07")
    args = ap.parse_args()
    site = site_with_meters(args.meters)
    tz = site.tz
    start = dt.datetime(2025, 8, 1, tzinfo=tz)
    steps = 365 * 96
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "report.sqlite"
        store = Store(db)
        t = time.perf_counter()
        t0 = int(start.timestamp())
        for day in range(365):
            rows = []
            for k in range(96):
                ts = t0 + (day * 96 + k) * 900
                hour = (k / 4 + 7) % 24
                shape = 1.0 + 0.8 * math.sin(math.pi * max(0.0, min(1.0, (hour - 6) / 12)))
                subs = [(f"m{i}.kw", ts, shape * (1 + i % 7) / 4) for i in range(1, args.meters)]
                total = sum(v for _, _, v in subs) * 1.03
                rows += subs + [("m0.kw", ts, total)]
            store.insert_readings(rows)
        store.refresh_rollups()
        fill_s = time.perf_counter() - t
        t = time.perf_counter()
        report = build_monthly(site, store, args.month, option_c)
        build_s = time.perf_counter() - t
        out = Path(tmp) / "out"
        t = time.perf_counter()
        render(report, "pdf", out, "vi")
        pdf_s = time.perf_counter() - t + build_s
        t = time.perf_counter()
        render(report, "xlsx", out, "vi")
        xlsx_s = time.perf_counter() - t + build_s
        store.close()
    print(f"{'meters x readings':<40}{args.meters} x {steps:,} (15 min, one year)")
    print(f"{'filling the store (s)':<40}{fill_s:>10.1f}")
    print(f"{'monthly figures (s)':<40}{build_s:>10.2f}")
    print(f"{'PDF incl. figures (s)':<40}{pdf_s:>10.2f}")
    print(f"{'XLSX incl. figures (s)':<40}{xlsx_s:>10.2f}")
    print("aim: under 10 s each")
    print(json.dumps({"pdf_s": round(pdf_s, 2), "xlsx_s": round(xlsx_s, 2)}))


if __name__ == "__main__":
    main()
