"""Fleet forecasting: one global model across meters against the per-meter models, on meters
held out of all tuning.

    python bench/fleet.py                    # both groups, 42 test days, weekly refits
    python bench/fleet.py --group held_out --days 14

The meters of ../shared/data/loads are split once: TUNED (where the global model's features
and settings were chosen) and HELD_OUT (never looked at while choosing; scored here only).
Every model forecasts each test day from the data before it (day-ahead), refitted weekly; the
global model learns from every meter's past (the held-out meters' own past included, as in
production). Runs on a Dask LocalCluster (2 workers). The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
LOADS = ROOT.parent / "shared" / "data" / "loads"
COUNTRY = {"cambridge": "GB", "sacramento": "US", "bangkok": "TH"}
TUNED = ["cambridge-b0", "cambridge-b1", "cambridge-b15", "cambridge-b2", "cambridge-b4",
         "sacramento-office-201"]
HELD_OUT = ["cambridge-b112", "cambridge-b119", "cambridge-b25", "cambridge-b9",
            "cambridge-b91", "bangkok-office-floor4-zone1"]
MODELS = ("gbm_lags", "gbm_daytype", "ridge_hourly", "global", "stack", "stack3", "stack_ridge")
# what `bems portfolio forecast` runs (city/fleet.py: refit_fleet(model="stack"), the mean of
# the global model and the meter's own models of models.fleet.DEFAULT_STACK)
DEFAULT = "stack3"


def _end(name: str):
    import pandas as pd

    return pd.Timestamp("2013-11-30") if name.startswith("sacramento") else \
        pd.Timestamp("2019-11-30")


def load_meters(names):
    from models.data import DayTypes, load_csv

    out = {}
    for n in names:
        df, _ = load_csv(LOADS / f"{n}.csv")
        out[n] = (df, DayTypes(COUNTRY[n.split("-")[0]]), _end(n))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=42)
    ap.add_argument("--refit", type=int, default=7)
    ap.add_argument("--group", choices=("tuned", "held_out", "both"), default="both")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    from dask.distributed import Client, LocalCluster

    from models.fleet import DEFAULT_STACK, fleet_backtest

    assert DEFAULT == DEFAULT_STACK, "the benchmark scores what production runs"

    meters = load_meters(TUNED + HELD_OUT)
    groups = {"tuned": TUNED, "held_out": HELD_OUT}
    if args.group != "both":
        groups = {args.group: groups[args.group]}
    results = {}
    t0 = time.perf_counter()
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        for g, names in groups.items():
            scores = fleet_backtest(meters, names, args.days, args.refit, client=client)
            results[g] = scores
    seconds = time.perf_counter() - t0
    print(f"{'group':9} {'meter':30} " + " ".join(f"{m:>12}" for m in MODELS))
    summary = {}
    for g, scores in results.items():
        ratios = {m: [] for m in MODELS}
        for s in scores:
            base = s.cv_rmse["gbm_lags"]
            print(f"{g:9} {s.meter:30} " + " ".join(
                f"{s.cv_rmse[m]:6.2f} ({s.cv_rmse[m] / base:4.2f})" for m in MODELS))
            for m in MODELS:
                ratios[m].append(s.cv_rmse[m] / base)
        med = {m: round(statistics.median(v), 3) for m, v in ratios.items()}
        best = min(MODELS, key=lambda m: med[m])
        print(f"{g:9} {'median ratio to gbm_lags':30} " + " ".join(f"{med[m]:>12.3f}"
                                                                  for m in MODELS))
        summary[g] = {"meters": [s.meter for s in scores], "median_ratio": med, "best": best,
                      "cv_rmse": {s.meter: {m: round(s.cv_rmse[m], 2) for m in MODELS}
                                  for s in scores}}
    print(f"{seconds:.0f} s on {args.workers} Dask workers")
    default = {g: summary[g]["median_ratio"][DEFAULT] for g in summary}
    print(f"default (what `bems portfolio forecast` runs): {DEFAULT}, median ratio to "
          "gbm_lags " + ", ".join(f"{g} {v:.3f}" for g, v in default.items())
          + " (aim on held-out meters: <= 0.90, stretch 0.85)")
    print(json.dumps({"test_days": args.days, "refit_every": args.refit, **summary,
                      "default": {"model": DEFAULT, **default},
                      "seconds": round(seconds, 1)}))


if __name__ == "__main__":
    main()
