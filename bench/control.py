"""Control benchmark: `bems simulate` for the baseline and for BEMS over the same 14 days in the
hot season (July) and in the mild season (November); KPIs and the ratios bems / baseline.

    python bench/control.py
    python bench/control.py --hot 2026-07-06 --mild 2026-11-09 --days 14
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

KEYS = ("energy_kwh", "hvac_kwh", "fans_kwh", "cooling_kwh", "lighting_kwh", "ener_kwh_m2",
        "tdis_kh_per_zone", "tdis_operative_kh_per_zone", "peak_kw", "cost_vnd",
        "policy_violations")


def simulate(start: str, days: int, strategy: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "bems", "simulate", "--start", start, "--days",
                          str(days), "--strategy", strategy, "--json"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hot", default="2026-07-06", help="first day of the hot window (a Monday)")
    ap.add_argument("--mild", default="2026-11-09", help="first day of the mild window")
    ap.add_argument("--days", type=int, default=14)
    args = ap.parse_args()
    result = {}
    for season, start in (("hot", args.hot), ("mild", args.mild)):
        base = simulate(start, args.days, "baseline")
        bems = simulate(start, args.days, "bems")
        result[season] = {"baseline": {k: base[k] for k in ("days",) + KEYS},
                          "bems": {k: bems[k] for k in ("days",) + KEYS}}
        print(f"{season} season: {args.days} days from {start}")
        print(f"  {'KPI':<28}{'baseline':>14}{'bems':>14}{'bems/base':>11}")
        for k in KEYS:
            b, m = base[k], bems[k]
            ratio = f"{m / b:>11.3f}" if b else f"{'-':>11}"
            print(f"  {k:<28}{b:>14,.2f}{m:>14,.2f}{ratio}")
    print("aims: hvac_kwh <= 0.80x, peak_kw <= 0.85x, air discomfort <= baseline, "
          "0 policy violations")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
