"""Control benchmark at equal comfort: the predictive strategy against the rule set's whole
curve, on the product's own path (`bems simulate`: BEMS's runtime, the one decision path and
the one Writer in lock step with the EnergyPlus centre), over the same days and warm-up.

For each window (hot July, mild November, September, and two periods nothing was tuned on:
June, and December, the coolest weeks in which the centre still cools): the time clock
(baseline); the rule set at `occupied_setpoint` 26, 25.5 and 25 °C and at one per-zone set
(south and west offices 25, east 25.5, north and cores 26); the predictive strategy at three
comfort settings (its energy–comfort slider: comfort_weight 20, 50, 80) and its default (35),
the default with two seeds of the forecast's error, the default with the lunch break off (the
state-agency rule: AC off, restarted at most 30 minutes before work resumes), the default with
its units' on/off continuous (one LP, the fans priced by the cooling) instead of by half hour,
and the default with a daily comfort allowance per zone instead of a price (`predictive_comfort
= "budget"`). Every run has the same warm-up days before, unscored.

Derived per window:
- the rules' curve: HVAC energy (ratio to the baseline) against operative discomfort (K·h per
  zone), piecewise linear between its points;
- ΔE@D: the predictive default's HVAC ratio minus the curve at the default's discomfort, in
  points of the baseline (negative: less energy at equal comfort); where the default is more
  comfortable than every rules point, against the rules' most comfortable point;
- predictive settings at least as comfort-minded as the default that a rules point dominates
  (less or equal energy and discomfort, one of them less).

And: each decision's CPU time (p95 over every predictive run), and one plan of the day for a
synthetic 300-zone site (the demo's 15 zones twenty times over, with their fitted models).

    python bench/control.py                  # about 4.3 h on 2 cores (65 runs)
    python bench/control.py --days 3 --warmup 4 --windows hot=2026-07-06   # a quick look

Each finished run is kept in bench/out/runs/ under its arguments and the git trees of the code
it ran (bems/, connectors/, models/; only from a clean checkout), so a run stopped part way
goes on where it stopped with the same code; `--fresh` runs everything again. Each run's end is
printed on stderr as it comes.

Prints a table per window, writes bench/out/control-WINDOWS.png (the curve; e.g.
control-hot-mild-september-june_untuned-december_untuned.png), and last one JSON line:
{"windows": {"hot": {"rules": [...], "predictive": [...], "predictive_default": {...},
"delta_e_at_d_points": x}, ...}, "decision_cpu_p95_s": x, "plan_300_zones_s": x}
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"
WINDOWS = {"hot": "2026-07-06", "mild": "2026-11-09", "september": "2026-09-14",
           "june_untuned": "2026-06-01", "december_untuned": "2026-12-07"}
RULES = (("rules 26", {"occupied_setpoint": "26"}), ("rules 25.5", {"occupied_setpoint": "25.5"}),
         ("rules 25", {"occupied_setpoint": "25"}), ("rules per zone", "per_zone"))
WEIGHTS = (20, 50, 80)  # the slider's other settings; the default is DEFAULT_WEIGHT
DEFAULT_WEIGHT = 35
PER_ZONE = {"p1": 25.0, "p4": 25.0, "p2": 25.5, "p3": 26.0, "core": 26.0}  # S, W, E, N, core
# the predictive default's options, run after what the aims need: (key, label, parameters)
OPTIONS = (("lunch off", "lunch break off", {"predictive_break": "off"}),
           ("continuous", "units continuous", {"predictive_on_off": "continuous"}),
           ("budget", "daily comfort allowance", {"predictive_comfort": "budget"}))
ROW = ("setting", "hvac_ratio", "peak_ratio", "tdis_operative_kh_per_zone", "violations")


def per_zone_site(folder: Path) -> Path:
    """The demo site with each zone's own occupied setpoint by its façade."""
    from bems.config import demo_site_path

    text = demo_site_path().read_text(encoding="utf-8")

    def add(m: re.Match) -> str:
        zid = m.group(1)
        sp = PER_ZONE[zid.split(".")[1]]
        return f'{m.group(0)}\noccupied_setpoint = {sp}'

    text = re.sub(r'\[\[zones\]\]\nid = "(f\d\.(?:p\d|core))"', add, text)
    path = folder / "per_zone.toml"
    path.write_text(text, encoding="utf-8")
    return path


def code_version() -> str | None:
    """What a run's result depends on: the git trees of the code `bems simulate` runs (its
    site, weather and models included). None where that is not a clean git checkout: then
    nothing is kept or reused."""
    trees = ("bems", "connectors", "models")
    try:
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *trees], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        ids = subprocess.run(["git", "rev-parse", *(f"HEAD:{t}" for t in trees)], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return None
    return None if dirty else hashlib.sha256(" ".join(ids).encode()).hexdigest()[:16]


class Runs:
    """Each finished run kept as a JSON file named by its arguments and the code's version, so
    a benchmark stopped part way (a session's end, a reboot) goes on where it stopped with the
    same code, and a change to the code starts again."""

    def __init__(self, folder: Path | None, version: str | None):
        self.folder = folder if version else None
        self.version = version
        self.reused = 0
        self._lock = threading.Lock()  # runs finish on the pool's threads
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, args: list[str], site_text: str | None) -> Path | None:
        if self.folder is None:
            return None
        key = json.dumps([self.version, args, site_text])
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"

    def run(self, args: list[str], site: Path | None) -> dict:
        site_text = site.read_text(encoding="utf-8") if site is not None else None
        kept = self.path(args, site_text)
        what = " ".join(a for a in args if a != "--json") + (" --site per-zone" if site else "")
        if kept is not None and kept.exists():
            try:
                result = json.loads(kept.read_text(encoding="utf-8"))["result"]
            except (ValueError, KeyError):
                pass  # a damaged file: run again
            else:
                with self._lock:
                    self.reused += 1
                print(f"  done: {what} (kept from an earlier run)", file=sys.stderr, flush=True)
                return result
        t = time.time()
        cmd = [sys.executable, "-m", "bems", "simulate", *args]
        if site is not None:
            cmd += ["--site", str(site)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {out.stderr[-2000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        if kept is not None:
            tmp = kept.with_suffix(".tmp")
            tmp.write_text(json.dumps({"args": args, "code": self.version, "result": result}),
                           encoding="utf-8")
            tmp.replace(kept)
        print(f"  done: {what} ({time.time() - t:.0f} s)", file=sys.stderr, flush=True)
        return result


RUNS = Runs(None, None)


def simulate(start: str, days: int, warmup: int, strategy: str, params: dict | None = None,
             site: Path | None = None, seed: int = 1) -> dict:
    args = ["--start", start, "--days", str(days), "--strategy", strategy, "--warmup-days",
            str(warmup), "--seed", str(seed), "--json"]
    for k, v in (params or {}).items():
        args += ["--param", f"{k}={v}"]
    return RUNS.run(args, site)


def row(name: str, k: dict, base: dict) -> dict:
    return {"setting": name, "hvac_ratio": round(k["hvac_kwh"] / base["hvac_kwh"], 4),
            "peak_ratio": round(k["peak_kw"] / base["peak_kw"], 4),
            "tdis_operative_kh_per_zone": k["tdis_operative_kh_per_zone"],
            # the baseline's 24 °C is under the 25 °C floor: its violations are the policy BEMS
            # enforces
            "violations": k["policy_violations"]}


def curve_at(points: list[dict], tdis: float) -> float:
    """The rules' HVAC ratio at a discomfort, piecewise linear over their (sorted) points;
    outside them, the nearest end (the most comfortable point when `tdis` is lower)."""
    pts = sorted((p["tdis_operative_kh_per_zone"], p["hvac_ratio"]) for p in points)
    if tdis <= pts[0][0]:
        return pts[0][1]
    if tdis >= pts[-1][0]:
        return pts[-1][1]
    for (d0, e0), (d1, e1) in zip(pts, pts[1:]):
        if d0 <= tdis <= d1:
            return e0 + (e1 - e0) * (tdis - d0) / (d1 - d0) if d1 > d0 else min(e0, e1)
    return pts[-1][1]


def delta_e_at_d(p: dict, curve: list[dict]) -> float:
    """A point's HVAC ratio less the rules' curve at its discomfort, in points of baseline."""
    return round((p["hvac_ratio"] - curve_at(curve, p["tdis_operative_kh_per_zone"])) * 100, 2)


def dominated(p: dict, rules: list[dict]) -> list[str]:
    return [r["setting"] for r in rules
            if r["hvac_ratio"] <= p["hvac_ratio"]
            and r["tdis_operative_kh_per_zone"] <= p["tdis_operative_kh_per_zone"]
            and (r["hvac_ratio"] < p["hvac_ratio"]
                 or r["tdis_operative_kh_per_zone"] < p["tdis_operative_kh_per_zone"])]


def plan_300_zones() -> float:
    """CPU seconds of one plan of the day for 300 zones: the demo's fitted zone models (from
    a few days under the rule set, as a site's first days give them) twenty times over."""
    import dataclasses
    import datetime as dt

    import numpy as np

    from bems.calendar import SiteCalendar
    from bems.config import load_site
    from bems.predictive.mpc import make_plan
    from bems.predictive.model import fit, history_from_store
    from bems.storage import Store
    from bems.strategies.plan import Learned
    from connectors.simulator.closedloop import simulate as loop

    site = load_site(None)
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "h.sqlite"
        loop(site, dt.date(2026, 7, 6), 4, "rules", db=db, warmup_days=1)
        with Store(db, site.timezone) as st:
            now = dt.datetime(2026, 7, 10, tzinfo=site.tz)
            model = fit(site, history_from_store(site, st, now - dt.timedelta(days=5), now),
                        now)
    zones, models = [], {}
    for k in range(20):
        for z in site.zones:
            zid = f"{z.id}.{k:02d}"
            zones.append(dataclasses.replace(z, id=zid))
            if z.id in model.zones:
                models[zid] = dataclasses.replace(model.zones[z.id], zone=zid)
    # the air handlers twenty times over too, each serving its floor's copies; their running
    # cost priced even where this short history fitted none (the larger problem is timed)
    units = tuple(dataclasses.replace(a, id=f"{a.id}.{k:02d}",
                                      zones=tuple(f"{z}.{k:02d}" for z in a.zones))
                  for k in range(20) for a in site.air_handlers)
    big = dataclasses.replace(site, zones=tuple(zones), air_handlers=units)
    bm = dataclasses.replace(model, zones=models,
                             ahu_kw_m2=model.ahu_kw_m2 or max(model.fan_kw_m2, 1e-3))
    now = dt.datetime(2026, 7, 13, 6, 0)
    temps = {z.id: 28.0 for z in zones}
    t0 = time.process_time()
    # as the decision path plans: the relaxed and the rounded schedule, and the rule set's
    # own schedule simulated to price against them
    make_plan(big, SiteCalendar(big), bm, zones, temps, dict(temps), np.full(96, 30.0), now,
              now.replace(tzinfo=site.tz), DEFAULT_WEIGHT, time_limit_s=120, learned=Learned())
    return time.process_time() - t0


def plot(result: dict) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    OUT.mkdir(parents=True, exist_ok=True)
    wins = list(result)
    fig, axes = plt.subplots(1, len(wins), figsize=(4.2 * len(wins), 3.8), squeeze=False)
    for ax, w in zip(axes[0], wins):
        r = sorted(result[w]["rules"], key=lambda p: p["tdis_operative_kh_per_zone"])
        curve = [p for p in r if p["setting"] != "rules per zone"]
        ax.plot([p["tdis_operative_kh_per_zone"] for p in curve],
                [p["hvac_ratio"] for p in curve], "o-", color="#1f4e79", label="rules")
        for p in r:
            ax.annotate(p["setting"].replace("rules ", ""),
                        (p["tdis_operative_kh_per_zone"], p["hvac_ratio"]), fontsize=7)
        pz = [p for p in r if p["setting"] == "rules per zone"]
        ax.plot([p["tdis_operative_kh_per_zone"] for p in pz], [p["hvac_ratio"] for p in pz],
                "s", color="#1f4e79", label="rules per zone")
        pr = result[w]["predictive"]
        ax.plot([p["tdis_operative_kh_per_zone"] for p in pr], [p["hvac_ratio"] for p in pr],
                "^", color="#c55a11", label="predictive")
        d = result[w]["predictive_default"]
        ax.plot([d["tdis_operative_kh_per_zone"]], [d["hvac_ratio"]], "*", ms=12,
                color="#c55a11", label="predictive default")
        ax.set_title(f"{w}: ΔE@D {result[w]['delta_e_at_d_points']:+.1f} pts")
        ax.set_xlabel("operative discomfort, K·h per zone")
        ax.set_ylabel("HVAC energy / time clock")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path = OUT / f"control-{'-'.join(result)}.png"  # one file per set of windows
    fig.savefig(path, dpi=110)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", default=",".join(f"{k}={v}" for k, v in WINDOWS.items()),
                    help="NAME=FIRST-DAY,... (each a Monday)")
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--warmup", type=int, default=14)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-300", action="store_true", help="skip the 300-zone plan")
    ap.add_argument("--runs", type=Path, default=OUT / "runs",
                    help="where each finished run is kept, to go on after a stop with the same "
                         "code (default bench/out/runs)")
    ap.add_argument("--fresh", action="store_true", help="run everything again")
    ap.add_argument("--no-options", action="store_true",
                    help="only what the aims need: not the lunch break off, the continuous "
                         "on/off nor the daily allowance")
    args = ap.parse_args()
    global RUNS
    version = None if args.fresh else code_version()
    RUNS = Runs(args.runs, version)
    if version is None:
        print("runs not kept (--fresh, or the code is not a clean git checkout)",
              file=sys.stderr)
    windows = dict(w.split("=") for w in args.windows.split(","))
    options = () if args.no_options else OPTIONS
    folder = tempfile.TemporaryDirectory(prefix="bench-control-")  # the per-zone site file
    zoned = per_zone_site(Path(folder.name))
    jobs = {}
    t0 = time.time()
    with ThreadPoolExecutor(args.workers) as pool:
        # window by window, what the issue's aims need first (the default with both seeds, the
        # slider's other settings, the rules' curve and the baseline); the options after
        for w, start in windows.items():
            sim = lambda *a, **kw: pool.submit(simulate, start, args.days, args.warmup, *a,  # noqa: E731
                                               **kw)
            jobs[(w, "default")] = sim("predictive", {"comfort_weight": DEFAULT_WEIGHT})
            jobs[(w, "default seed 2")] = sim("predictive",
                                              {"comfort_weight": DEFAULT_WEIGHT}, seed=2)
            for cw in WEIGHTS:
                jobs[(w, f"predictive {cw}")] = sim("predictive", {"comfort_weight": cw})
            jobs[(w, "baseline")] = sim("baseline")
            for name, params in RULES:
                jobs[(w, name)] = sim("rules", site=zoned) if params == "per_zone" else \
                    sim("rules", params)
        for w, start in windows.items():
            for key, _, extra in options:
                jobs[(w, key)] = pool.submit(simulate, start, args.days, args.warmup,
                                             "predictive",
                                             {"comfort_weight": DEFAULT_WEIGHT, **extra})
        runs = {k: f.result() for k, f in jobs.items()}
    folder.cleanup()
    result: dict = {}
    cpu = []
    for w, start in windows.items():
        base = runs[(w, "baseline")]
        rules = [row(name, runs[(w, name)], base) for name, _ in RULES]
        pred = [row(f"predictive {cw}", runs[(w, f"predictive {cw}")], base) for cw in WEIGHTS]
        default = row(f"predictive {DEFAULT_WEIGHT} (default)", runs[(w, "default")], base)
        seed2 = row("default, forecast seed 2", runs[(w, "default seed 2")], base)
        opts = {key: row(f"predictive {DEFAULT_WEIGHT}, {label}", runs[(w, key)], base)
                for key, label, _ in options}
        curve = [r for r in rules if r["setting"] != "rules per zone"]
        delta, delta2 = delta_e_at_d(default, curve), delta_e_at_d(seed2, curve)
        comfort_minded = [p for p, cw in zip(pred, WEIGHTS) if cw >= DEFAULT_WEIGHT] + \
            [default, *opts.values()]
        beaten = {p["setting"]: dominated(p, rules) for p in comfort_minded}
        cpu += [runs[(w, k)]["decision_cpu_p95_s"] for k in
                ["default", "default seed 2", *opts] + [f"predictive {cw}" for cw in WEIGHTS]]
        allowance = opts.get("budget")
        delta_allowance = None if allowance is None else delta_e_at_d(allowance, curve)
        result[w] = {"rules": rules, "predictive": pred + [seed2, *opts.values()],
                     "predictive_default": default,
                     "delta_e_at_d_points": delta,
                     "delta_e_at_d_points_seed2": delta2,
                     "delta_e_at_d_points_allowance": delta_allowance,
                     "dominated_by_rules": {k: v for k, v in beaten.items() if v},
                     "baseline": {"hvac_kwh": base["hvac_kwh"], "peak_kw": base["peak_kw"],
                                  "tdis_operative_kh_per_zone":
                                      base["tdis_operative_kh_per_zone"]},
                     "boptest": {name: {k: runs[(w, key)][k] for k in
                                        ("ener_tot", "tdis_tot", "tdis_air_tot",
                                         "tdis_person_tot", "pele_tot", "cost_tot",
                                         "cost_tou_tot", "time_rat")}
                                 for name, key in (("baseline", "baseline"),
                                                   ("rules 25", "rules 25"),
                                                   ("rules 26", "rules 26"),
                                                   ("predictive default", "default"))}}
        print(f"\n{w}: {args.days} days from {start} (after {args.warmup} warm-up days); "
              f"baseline HVAC {base['hvac_kwh']:,.0f} kWh, peak {base['peak_kw']:.0f} kW")
        print(f"  {'setting':34}{'HVAC/base':>10}{'peak/base':>10}{'tdis op':>9}{'viol':>6}")
        for r in rules + pred + [default, seed2, *opts.values()]:
            print(f"  {r['setting']:34}{r['hvac_ratio']:>10.3f}{r['peak_ratio']:>10.3f}"
                  f"{r['tdis_operative_kh_per_zone']:>9.2f}{r['violations']:>6.1f}")
        print(f"  ΔE@D {delta:+.2f} points (seed 2: {delta2:+.2f}"
              + (f"; daily comfort allowance: {delta_allowance:+.2f}" if allowance else "")
              + "); dominated by a rules point: "
              f"{result[w]['dominated_by_rules'] or 'none'}")
    cpu_p95 = max(cpu) if cpu else 0.0
    plan300 = None if args.no_300 else plan_300_zones()
    png = plot(result)
    print(f"\ndecision CPU p95 {cpu_p95:.3f} s (aim < 2); 300-zone plan "
          f"{plan300 if plan300 is None else round(plan300, 2)} s (aim < 10); "
          f"{time.time() - t0:.0f} s in all ({RUNS.reused} runs kept from an earlier start with "
          f"the same code); curve: {png}")
    print("aims, every window: ΔE@D <= -2 points (stretch -4), no setting at least as "
          "comfort-minded as the default dominated by a rules point, 0 violations; hot peak "
          "<= 0.80x")
    print(json.dumps({"windows": result, "decision_cpu_p95_s": round(cpu_p95, 4),
                      "plan_300_zones_s": round(plan300, 2) if plan300 is not None else None}))


if __name__ == "__main__":
    main()
