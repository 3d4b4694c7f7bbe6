"""Commissioning benchmark: does varying the setpoints for two weeks make the cost of a colder
room identifiable, and does the predictive plan do better with what it learns?

Also per working day of the warm-up: what a colder day cost on the AC meter (kWh/day per K of
setpoint, outdoor temperature held), and the part of it the fitted model leaves unexplained.

On the product's path (`connectors.simulator.closedloop.simulate`: BEMS's runtime, the one
decision path and the one Writer in lock step with the EnergyPlus centre), per window:

- the time clock (baseline) and the rule set at 26, 25.5 and 25 °C (its curve), each after the
  same warm-up days under itself;
- the predictive default after warm-up days under the rule set (as `bench/control.py`);
- the predictive default after the same number of days of commissioning
  (bems/strategies/commissioning.py: the building's setpoint 25-26.5 °C varied by day, each
  floor's cool-down start) — what a site would do: commission, then switch the plan on.

For the rule set at 26 °C and for commissioning, the building's electricity model is fitted
(as the nightly refit does) on the warm-up days: what each teaches the plan. `k_cold` is the
kW the AC draws per kelvin the rooms are held colder while on, for the whole building.

    python bench/commissioning.py                      # the hot window, about 10 min
    python bench/commissioning.py --windows hot=2026-07-06,mild=2026-11-09

Prints a table per window and last one JSON line: {"windows": {"hot": {"rules": [...],
"predictive_default": {...}, "predictive_after_commissioning": {...},
"delta_e_at_d_points": x, "delta_e_at_d_points_after_commissioning": x,
"fit_rules": {...}, "fit_commissioning": {...}}, ...}}
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from control import DEFAULT_WEIGHT, curve_at, row  # noqa: E402

RULES = (("rules 26", 26.0), ("rules 25.5", 25.5), ("rules 25", 25.0))


def run(start: str, days: int, warmup: int, strategy: str, params: dict,
        commissioning_days: int = 0, fit_folder: str | None = None) -> dict:
    """One closed-loop run; with `fit_folder`, also the electricity model fitted on the
    warm-up days (the store is kept there for it)."""
    from bems.config import demo_site_path, load_site
    from connectors.simulator.closedloop import simulate

    site = load_site(demo_site_path())
    first = dt.date.fromisoformat(start)
    db = Path(fit_folder) / f"{strategy}-{commissioning_days}-{start}.sqlite" \
        if fit_folder else None
    k = simulate(site, first, days, strategy, warmup_days=warmup, params=params, db=db,
                 commissioning_days=commissioning_days).as_dict()
    if db is not None:
        k["fit"] = fit_on(site, db, first, warmup)
    return k


def fit_on(site, db: Path, first: dt.date, days: int) -> dict:
    """The model the nightly refit makes at the start of the scored days, from the store."""
    from bems.predictive.model import fit, history_from_store
    from bems.storage import Store

    end = dt.datetime.combine(first, dt.time(0)).replace(tzinfo=site.tz)
    with Store(db, site.timezone) as store:
        h = history_from_store(site, store, end - dt.timedelta(days=days), end)
    m = fit(site, h, end)
    area = sum(z.area_m2 for z in site.zones if z.ac_status)
    return {"k_cold_kw_per_k": round(m.k_cold * area, 2), "on_kw": round(m.fan_kw_m2 * area, 1),
            "base_kw": round(m.p0, 1), "elec_r2": m.elec_r2,
            "zones_fit": len(m.usable()), **by_day(site, h, m)}


def by_day(site, h, m) -> dict:
    """Per working day: the AC's kWh, the mean setpoint in working hours, the mean outdoor
    temperature. What a colder day costs on the meter (kWh/day per K of setpoint, outdoor
    temperature held) and how much of it the fitted model leaves unexplained (its residual
    per K). None where the setpoint did not vary (the rule set)."""
    import numpy as np

    from bems.predictive.model import ac_meter, electricity_terms, local_days, outdoor

    p, to = h.get(ac_meter(site).power), outdoor(site, h)
    resid = p - electricity_terms(site, h, m.zones) @ m.elec_coef()
    sp = np.nanmean(np.array([h.get(z.cooling_setpoint) for z in site.zones
                              if z.cooling_setpoint and z.schedule]), axis=0)
    days, hours = local_days(site, h), h.local_hours(site)
    rows = []
    for d in np.unique(days):
        work = (days == d) & (hours >= 8) & (hours < 17)
        if not np.isfinite(p[work]).any() or np.nanmean(p[work]) < 20:
            continue  # a closed day (the AC is off)
        day = days == d
        rows.append((np.nanmean(p[day]) * 24, np.nanmean(resid[day]) * 24, np.nanmean(sp[work]),
                     np.nanmean(to[day])))
    r = np.array(rows)
    if len(r) < 4 or r[:, 2].std() < 0.1:
        return {"days": len(r), "kwh_per_day_per_k": None, "unexplained_kwh_per_day_per_k": None}
    X = np.column_stack([np.ones(len(r)), r[:, 2], r[:, 3]])
    total = np.linalg.lstsq(X, r[:, 0], rcond=None)[0][1]
    left = np.linalg.lstsq(X, r[:, 1], rcond=None)[0][1]
    return {"days": len(r), "kwh_per_day_per_k": round(float(total), 1),
            "unexplained_kwh_per_day_per_k": round(float(left), 1)}


def working_days(start: str, days: int) -> int:
    """Days of the window on which every floor works (the site's calendar; a Saturday when
    only the reception opens is not one: its AC is a fraction of a day's)."""
    from bems.calendar import SiteCalendar
    from bems.config import demo_site_path, load_site

    site = load_site(demo_site_path())
    cal = SiteCalendar(site)
    first = dt.date.fromisoformat(start)
    floors = {z.floor for z in site.zones if z.schedule}
    return sum(1 for k in range(days)
               if {z.floor for z in site.zones if z.schedule and
                   cal.periods(z.schedule, first + dt.timedelta(days=k))} == floors)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", default="hot=2026-07-06", help="NAME=FIRST-DAY,... (Mondays)")
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--warmup", type=int, default=14, help="also the commissioning's days")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    windows = dict(w.split("=") for w in args.windows.split(","))
    tmp = tempfile.TemporaryDirectory(prefix="bench-commissioning-")  # the kept stores
    folder = tmp.name
    t0 = time.time()
    jobs = {}
    default = {"comfort_weight": DEFAULT_WEIGHT}
    with ProcessPoolExecutor(args.workers) as pool:
        for w, start in windows.items():  # the long runs first
            sim = lambda *a, **kw: pool.submit(run, start, args.days, args.warmup, *a, **kw)  # noqa: E731
            jobs[(w, "commissioned")] = sim("predictive", default, args.warmup,
                                            fit_folder=folder)
            jobs[(w, "default")] = sim("predictive", default)
        for w, start in windows.items():
            sim = lambda *a, **kw: pool.submit(run, start, args.days, args.warmup, *a, **kw)  # noqa: E731
            jobs[(w, "baseline")] = sim("baseline", {})
            for name, sp in RULES:
                jobs[(w, name)] = sim("rules", {"occupied_setpoint": sp},
                                      fit_folder=folder if sp == 26.0 else None)
        runs = {k: f.result() for k, f in jobs.items()}
    tmp.cleanup()
    result = {}
    for w, start in windows.items():
        base = runs[(w, "baseline")]
        rules = [row(name, runs[(w, name)], base) for name, _ in RULES]
        pd = row(f"predictive {DEFAULT_WEIGHT}, after the rule set", runs[(w, "default")], base)
        pc = row(f"predictive {DEFAULT_WEIGHT}, after commissioning",
                 runs[(w, "commissioned")], base)
        d1 = (pd["hvac_ratio"] - curve_at(rules, pd["tdis_operative_kh_per_zone"])) * 100
        d2 = (pc["hvac_ratio"] - curve_at(rules, pc["tdis_operative_kh_per_zone"])) * 100
        fr, fc = runs[(w, "rules 26")]["fit"], runs[(w, "commissioned")]["fit"]
        result[w] = {"rules": rules, "predictive_default": pd,
                     "predictive_after_commissioning": pc,
                     "delta_e_at_d_points": round(d1, 2),
                     "delta_e_at_d_points_after_commissioning": round(d2, 2),
                     "fit_rules": fr, "fit_commissioning": fc}
        print(f"\n{w}: {args.days} days from {start} after {args.warmup} days; baseline HVAC "
              f"{base['hvac_kwh']:,.0f} kWh, peak {base['peak_kw']:.0f} kW")
        print(f"  {'setting':44}{'HVAC/base':>10}{'peak/base':>10}{'tdis op':>9}{'viol':>6}")
        for r in rules + [pd, pc]:
            print(f"  {r['setting']:44}{r['hvac_ratio']:>10.3f}{r['peak_ratio']:>10.3f}"
                  f"{r['tdis_operative_kh_per_zone']:>9.2f}{r['violations']:>6.1f}")
        print(f"  ΔE@D after the rule set {d1:+.2f} points; after commissioning {d2:+.2f}")
        print(f"  {'electricity model fitted on':30}{'k_cold kW/K':>12}{'on kW':>8}"
              f"{'base kW':>9}{'R²':>7}{'zones':>7}{'kWh/day/K':>11}{'unexplained':>12}")
        for name, f in (("the rule set at 26 °C", fr), ("commissioning", fc)):
            show = lambda v: "–" if v is None else f"{v:.1f}"  # noqa: E731
            print(f"  {name:30}{f['k_cold_kw_per_k']:>12.2f}{f['on_kw']:>8.1f}"
                  f"{f['base_kw']:>9.1f}{f['elec_r2']:>7.3f}{f['zones_fit']:>7}"
                  f"{show(f['kwh_per_day_per_k']):>11}"
                  f"{show(f['unexplained_kwh_per_day_per_k']):>12}")
        step = (rules[2]["hvac_ratio"] - rules[0]["hvac_ratio"]) * base["hvac_kwh"] / \
            working_days(start, args.days)
        result[w]["rules_kwh_per_working_day_25_vs_26"] = round(step, 1)
        print(f"  the rule set at 25 against 26 °C: {step:+.1f} kWh per working day "
              "(what commissioning should find, with its sign reversed: per K warmer)")
    print(f"\n{time.time() - t0:.0f} s in all")
    print(json.dumps({"windows": result}))


if __name__ == "__main__":
    main()
