"""Fault detection benchmark: faults injected into the virtual centre (EnergyPlus, BEMS's rule
strategies in the loop) on seeded random zone-days, what BEMS reads stored in a real SQLite
file, then BEMS's fault rules and, as the baseline, the alarms BEMS had before (stale device,
zone out of band, AC or lights after hours, setpoint under the floor) scored the NREL way
(NREL/TP-5500-72801): per fault type the share of faulty target-days detected within 24 h
and the median time to detect; false alarms on the fault-free target-days.

    python bench/fdd.py                       # 14 days to learn, then 28 scored days
    python bench/fdd.py --start 2026-07-06 --days 28 --seed 7

A target-day is a zone, an air handler or the building's meters on one local day. A zone-day
is fault-free when neither the zone nor its air handler has a fault that day; the building's
meter-day when no fault of any kind is injected that day (every fault moves the meters).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bems.config import load_site  # noqa: E402
from bems.faults.engine import detect  # noqa: E402
from bems.status import alarms  # noqa: E402
from bems.storage import Store  # noqa: E402
from connectors.simulator.closedloop import run_with_faults  # noqa: E402
from connectors.simulator.faults import FAULT_TYPES, plan  # noqa: E402

SITE = Path(__file__).resolve().parent.parent / "bems" / "data" / "demo_site.toml"
WITHIN_H = 24.0


def run(start: dt.date, days: int, seed: int, warmup: int, db: Path) -> dict:
    site = load_site(SITE)
    tz = site.tz
    injections = plan(site, start, days, seed)
    store = Store(db, site.timezone)
    t = time.perf_counter()
    run_with_faults(site, start - dt.timedelta(days=warmup), days + warmup, injections, store)
    sim_s = time.perf_counter() - t

    def utc(day: dt.date, hour: float = 0.0) -> dt.datetime:
        return (dt.datetime.combine(day, dt.time(0)) + dt.timedelta(hours=hour)).replace(
            tzinfo=tz).astimezone(dt.timezone.utc)

    t = time.perf_counter()
    found = detect(site, store, utc(start), utc(start + dt.timedelta(days=days)))
    detect_s = time.perf_counter() - t
    # the baseline: the alarms as they stood, asked every 15 minutes
    naive: list[tuple[str, str, dt.datetime]] = []  # (kind, zone or target, when)
    zones_of_device = {d.id: [z.id for z in site.zones
                              if site.point(z.temperature).device == d.id] for d in site.devices}
    name_to_zone = {z.name: z.id for z in site.zones}
    t = time.perf_counter()
    now = utc(start)
    while now < utc(start + dt.timedelta(days=days)):
        for a in alarms(site, store, now):
            kind, _, target = a["key"].partition(":")
            for z in zones_of_device.get(target, [target] if target in name_to_zone.values()
                                         else []):
                naive.append((kind, z, now))
        now += dt.timedelta(minutes=15)
    naive_s = time.perf_counter() - t
    store.close()
    return score(site, injections, found, naive, start, days, utc) | {
        "simulate_s": round(sim_s, 1), "detect_s": round(detect_s, 2),
        "baseline_s": round(naive_s, 1)}


def score(site, injections, found, naive, start, days, utc) -> dict:
    zone_ahu = {z: a.id for a in site.air_handlers for z in a.zones}
    ahu_zones = {a.id: set(a.zones) for a in site.air_handlers}
    faulty = {(i.target, i.day): i for i in injections}
    fault_days = {i.day for i in injections}
    tz = site.tz

    def local_day(t: dt.datetime) -> dt.date:
        return t.astimezone(tz).date()

    per_kind: dict[str, dict] = {}
    for i in injections:
        t0 = utc(i.day, i.onset_h)  # time to detect counts from the fault's onset
        hits = [f for f in found if _same_target(f.target, f.target_kind, i, zone_ahu)
                and t0 <= f.detected <= t0 + dt.timedelta(hours=WITHIN_H)]
        base = [w for k, z, w in naive if _naive_hits(z, i, ahu_zones)
                and t0 <= w <= t0 + dt.timedelta(hours=WITHIN_H)]
        k = per_kind.setdefault(i.kind, {"n": 0, "detected": 0, "by_sev": {1: [0, 0], 2: [0, 0]},
                                         "hours": [], "baseline": 0, "rules": {}})
        k["n"] += 1
        k["by_sev"][i.severity][0] += 1
        if hits:
            first = min(hits, key=lambda f: f.detected)
            k["detected"] += 1
            k["by_sev"][i.severity][1] += 1
            k["hours"].append((first.detected - t0).total_seconds() / 3600)
            for rule in {f.rule for f in hits}:
                k["rules"][rule] = k["rules"].get(rule, 0) + 1
            k["diagnosed"] = k.get("diagnosed", 0) + (FAULT_TYPES[i.kind].rule in {f.rule for f in hits})
        if base:
            k["baseline"] += 1
    # fault-free target-days and what was raised on them
    all_days = [start + dt.timedelta(days=d) for d in range(days)]
    free_zone_days = [(z.id, d) for z in site.zones for d in all_days
                      if (z.id, d) not in faulty and (zone_ahu.get(z.id), d) not in faulty]
    free_ahu_days = [(a.id, d) for a in site.air_handlers for d in all_days
                     if (a.id, d) not in faulty]
    free_meter_days = [d for d in all_days if d not in fault_days]
    raised = {}
    for f in found:  # a finding is about the day it starts (a day's total is known at 24:00)
        key = (f.target if f.target_kind != "meter" else "_meters", local_day(f.first))
        raised.setdefault(key, []).append(f.rule)
    false_zone = {k: raised[k] for k in free_zone_days if k in raised}
    false_ahu = {k: raised[k] for k in free_ahu_days if k in raised}
    false_meter = {d: raised[("_meters", d)] for d in free_meter_days if ("_meters", d) in raised}
    naive_days = {(z, local_day(w)) for _, z, w in naive}
    base_false = sum(1 for k in free_zone_days if k in naive_days)
    free_total = len(free_zone_days) + len(free_ahu_days) + len(free_meter_days)
    false_total = len(false_zone) + len(false_ahu) + len(false_meter)
    faulty_n = len(injections)
    return {"per_kind": per_kind, "faulty": faulty_n,
            "faulty_zone_days": sum(1 for i in injections if i.target_kind == "zone"),
            "free_zone_days": len(free_zone_days), "free_ahu_days": len(free_ahu_days),
            "free_meter_days": len(free_meter_days), "false_zone": false_zone,
            "false_ahu": false_ahu, "false_meter": false_meter, "free_total": free_total,
            "false_total": false_total, "baseline_false_zone": base_false}


def _same_target(target: str, kind: str, inj, zone_ahu) -> bool:
    if inj.target_kind == "meter":
        return kind == "meter"  # any meter finding: a building-level fault
    if inj.target_kind == "ahu":  # the unit, or the zones it serves (the symptom)
        return target == inj.target or zone_ahu.get(target) == inj.target
    return target == inj.target


def _naive_hits(zone: str, inj, ahu_zones) -> bool:
    if inj.target_kind == "zone":
        return zone == inj.target
    if inj.target_kind == "ahu":
        return zone in ahu_zones.get(inj.target, set())
    return False  # the old alarms know no meters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--start", default="2026-07-06", help="first scored day (a Monday)")
    ap.add_argument("--days", type=int, default=28)
    ap.add_argument("--warmup", type=int, default=14,
                    help="fault-free days to learn from first (the rules look 14 days back)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--db", type=Path, help="keep the database here (default: a temporary one)")
    args = ap.parse_args()
    start = dt.date.fromisoformat(args.start)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "fdd.sqlite"
        if db.exists():
            db.unlink()
        r = run(start, args.days, args.seed, args.warmup, db)
    print(f"{args.days} scored days from {start} (after {args.warmup} to learn), seed {args.seed}:"
          f" {r['faulty']} faulty target-days ({r['faulty_zone_days']} zone-days); fault-free: "
          f"{r['free_zone_days']} zone-days, {r['free_ahu_days']} air-handler-days, "
          f"{r['free_meter_days']} meter-days")
    print(f"simulation {r['simulate_s']} s, BEMS rules {r['detect_s']} s, baseline alarms "
          f"{r['baseline_s']} s")
    print(f"{'fault type':<20}{'target':<7}{'n':>4}{'sev1':>8}{'sev2':>8}{'detected':>10}"
          f"{'median h':>10}{'right rule':>11}{'baseline':>10}  rules that fired (zone-days)")
    det = n = base = diag = 0
    hours: list[float] = []
    for kind, k in sorted(r["per_kind"].items()):
        s1, s2 = k["by_sev"][1], k["by_sev"][2]
        med = statistics.median(k["hours"]) if k["hours"] else float("nan")
        print(f"{kind:<20}{FAULT_TYPES[kind].target:<7}{k['n']:>4}{f'{s1[1]}/{s1[0]}':>8}"
              f"{f'{s2[1]}/{s2[0]}':>8}{100 * k['detected'] / k['n']:>9.0f}%{med:>10.1f}"
              f"{100 * k.get('diagnosed', 0) / k['n']:>10.0f}%"
              f"{100 * k['baseline'] / k['n']:>9.0f}%  "
              + ", ".join(f"{rule} {c}" for rule, c in sorted(k["rules"].items())))
        det += k["detected"]
        n += k["n"]
        base += k["baseline"]
        diag += k.get("diagnosed", 0)
        hours += k["hours"]
    false_pct = 100 * r["false_total"] / max(1, r["free_total"])
    print(f"false alarms: {len(r['false_zone'])} of {r['free_zone_days']} fault-free zone-days, "
          f"{len(r['false_ahu'])} of {r['free_ahu_days']} air-handler-days, "
          f"{len(r['false_meter'])} of {r['free_meter_days']} meter-days "
          f"({false_pct:.1f} % of fault-free target-days)")
    for key, rules_ in list(r["false_zone"].items())[:10] + list(r["false_ahu"].items())[:5] + \
            list(r["false_meter"].items())[:5]:
        print(f"  false: {key}: {', '.join(sorted(set(rules_)))}")
    base_false_pct = 100 * r["baseline_false_zone"] / max(1, r["free_zone_days"])
    print(f"baseline (the old alarms): {100 * base / n:.0f} % detected, false alarms on "
          f"{base_false_pct:.1f} % of fault-free zone-days")
    print(json.dumps({"fault_types": len(r["per_kind"]), "faulty_zone_days": r["faulty_zone_days"],
                      "faulty_target_days": n,
                      "detected_pct": round(100 * det / n, 1),
                      "median_detect_h": round(statistics.median(hours), 2) if hours else None,
                      "right_rule_pct": round(100 * diag / n, 1),
                      "false_alarm_pct": round(false_pct, 1),
                      "baseline_detected_pct": round(100 * base / n, 1),
                      "baseline_false_alarm_pct": round(base_false_pct, 1)}))


if __name__ == "__main__":
    main()
