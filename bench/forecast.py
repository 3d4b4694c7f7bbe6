"""Forecast benchmark: day-ahead backtests over every meter in ../shared/data/loads/.

    python bench/forecast.py                   # 42 test days per meter, weekly refits
    python bench/forecast.py --days 14 --meters cambridge-b0,cambridge-b1

Test windows: 42 days ending 2019-11-30 for the 2018-19 files, 2013-11-30 for Sacramento.
The model used for each meter is selected on the 28 days *before* its test window (a separate
backtest), so the selected model's test score is not flattered by the choice. Meters run in
parallel, one process per core.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOADS = ROOT.parent / "shared" / "data" / "loads"
COUNTRY = {"cambridge": "GB", "sacramento": "US", "bangkok": "TH"}
WHOLE_BUILDING = ("cambridge", "sacramento")


def _end(name: str) -> dt.date:
    return dt.date(2013, 11, 30) if name.startswith("sacramento") else dt.date(2019, 11, 30)


def run_meter(path: str, days: int, refit: int, select_days: int) -> dict:
    from models.backtest import run_backtest
    from models.data import DayTypes, load_csv

    name = Path(path).stem
    cal = DayTypes(COUNTRY[name.split("-")[0]])
    df, rep = load_csv(path)
    end = _end(name)
    test = run_backtest(df, cal, days, end, refit_every=refit, meter=name)
    val = run_backtest(df, cal, select_days, end - dt.timedelta(days=days),
                       refit_every=refit, meter=name)
    return {"meter": name, "repairs": rep.summary(), "selected": val.selected,
            "models": {k: v.as_dict() for k, v in test.scores.items()},
            "whole_building": name.startswith(WHOLE_BUILDING)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=42)
    ap.add_argument("--refit", type=int, default=7, help="refit every N days")
    ap.add_argument("--select-days", type=int, default=28)
    ap.add_argument("--meters", default="", help="comma-separated file stems (default: all)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    files = sorted(LOADS.glob("*.csv"))
    if args.meters:
        wanted = set(args.meters.split(","))
        files = [f for f in files if f.stem in wanted]
    if not files:
        sys.exit(f"no meter files found in {LOADS}")
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(run_meter, [str(f) for f in files], [args.days] * len(files),
                                [args.refit] * len(files), [args.select_days] * len(files)))
    models = list(results[0]["models"])
    print(f"Day-ahead backtest, {args.days} days per meter, refit every {args.refit} days; "
          "hourly CV(RMSE) % / NMBE %; * = selected (on the 28 days before the test window)")
    head = f"{'meter':<34}" + "".join(f"{m:>17}" for m in models)
    print(head)
    for r in results:
        cells = ""
        for m in models:
            s = r["models"][m]
            mark = "*" if m == r["selected"] else " "
            cells += f"{s['cv_rmse']:>8.1f}/{s['nmbe']:>6.1f}{mark} "
        print(f"{r['meter']:<34}{cells}")
    print("-" * len(head))
    median = {m: statistics.median(r["models"][m]["cv_rmse"] for r in results) for m in models}
    mean = {m: statistics.mean(r["models"][m]["cv_rmse"] for r in results) for m in models}
    mnmbe = {m: statistics.median(r["models"][m]["nmbe"] for r in results) for m in models}
    fit = {m: statistics.mean(r["models"][m]["fit_seconds"] for r in results) for m in models}
    daily = {m: statistics.median(r["models"][m]["daily_cv_rmse"] for r in results) for m in models}
    for label, vals in (("median CV(RMSE) %", median), ("mean CV(RMSE) %", mean),
                        ("median NMBE %", mnmbe), ("median daily CV(RMSE) %", daily),
                        ("mean fit seconds", fit)):
        print(f"{label:<34}" + "".join(f"{vals[m]:>17.2f}" for m in models))
    sel = [r["models"][r["selected"]] for r in results]
    sel_median = statistics.median(s["cv_rmse"] for s in sel)
    whole = [r for r in results if r["whole_building"]]
    meets = [r for r in whole if r["models"][r["selected"]]["cv_rmse"] <= 30
             and abs(r["models"][r["selected"]]["nmbe"]) <= 10]
    print(f"{'selected model, median CV(RMSE) %':<34}{sel_median:>17.2f}")
    print(f"{'vs gbm_lags median':<34}{(1 - sel_median / median['gbm_lags']) * 100:>16.1f}% lower")
    print(f"whole-building meters meeting ASHRAE G14 hourly (CV(RMSE) <= 30 %, |NMBE| <= 10 %): "
          f"{len(meets)} of {len(whole)}")
    for r in results:
        if r["repairs"] != "none":
            print(f"repairs {r['meter']}: {r['repairs']}")
    print(json.dumps({"meters": len(results),
                      "median_cv_rmse": {m: round(v, 2) for m, v in median.items()},
                      "selected_median_cv_rmse": round(sel_median, 2),
                      "meters_meeting_g14": len(meets)}))


if __name__ == "__main__":
    main()
