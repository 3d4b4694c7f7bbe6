"""Zone models benchmark: how well the predictive strategy's room models, learned from BEMS's
readings only, predict the air temperature (held-out days) and what people feel (the
operative temperature, which EnergyPlus computes and BEMS never sees).

Runs the virtual centre under the rule set for `--days` days, keeps the readings as BEMS
would store them, fits the models as the nightly refit does, and scores them.

    python bench/zone_models.py
    python bench/zone_models.py --start 2026-06-22 --days 14
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time

import numpy as np


def main() -> None:
    from bems.config import load_site
    from bems.predictive.model import STEP_S, History, fit
    from connectors.simulator.closedloop import simulate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--start", default="2026-06-22")
    ap.add_argument("--days", type=int, default=14)
    args = ap.parse_args()
    site = load_site(None)
    rows: list[tuple] = []
    truth: list[tuple] = []
    simulate(site, dt.date.fromisoformat(args.start), args.days, "rules", sink=rows.extend,
             on_step=lambda s: truth.append((s.time, dict(s.operative_c))))
    t0 = min(int(r[1].timestamp()) for r in rows)
    n = (max(int(r[1].timestamp()) for r in rows) - t0) // STEP_S + 1
    mean: dict[str, np.ndarray] = {}
    for pid, when, v in rows:
        if v is not None:
            mean.setdefault(pid, np.full(n, np.nan))[(int(when.timestamp()) - t0) // STEP_S] = v
    h = History(t0, n, mean)
    cpu = time.process_time()
    model = fit(site, h, dt.datetime.now(dt.timezone.utc))
    fit_s = time.process_time() - cpu
    hours = h.local_hours(site)
    working = (hours >= 7) & (hours < 17)
    to = mean[next(p.id for p in site.points if p.kind == "outdoor_temperature")]
    harm = h.sun(site)
    print(f"{args.days} days from {args.start} under the rule set; fit {fit_s:.1f} s CPU")
    print(f"{'zone':<10}{'fit':>5}{'air 1 h K':>11}{'air 4 h K':>11}"
          f"{'operative RMSE K':>18}{'bias K':>8}{'op − air K':>12}")
    op_rmse, r4s = [], []
    from connectors.simulator.centre import zone_map

    sim = zone_map(site)
    for z in site.zones:
        m = model.zones[z.id]
        op = np.full(n, np.nan)
        for when, ops in truth:
            i = (int(when.timestamp()) - t0) // STEP_S
            if 0 <= i < n:
                op[i] = ops[sim[z.id]]
        ta = mean[z.temperature]
        occ = np.nan_to_num(mean.get(z.occupancy, np.zeros(n)))
        est = m.operative(ta, m.mass(ta, to, occ, harm))
        sel = working & np.isfinite(op) & np.isfinite(est)
        err = est[sel] - op[sel]
        rmse = float(np.sqrt(np.mean(err ** 2)))
        op_rmse.append(rmse)
        r4s.append(m.rmse_4h)
        print(f"{z.id:<10}{'yes' if m.fit else 'no':>5}{m.rmse_1h:>11.2f}{m.rmse_4h:>11.2f}"
              f"{rmse:>18.2f}{float(err.mean()):>+8.2f}{float((op - ta)[sel].mean()):>+12.2f}")
    print(json.dumps({"zones": len(site.zones), "fit": len(model.usable()),
                      "air_rmse_4h_median_k": round(statistics.median(r4s), 3),
                      "air_rmse_4h_max_k": round(max(r4s), 3),
                      "operative_rmse_median_k": round(statistics.median(op_rmse), 3),
                      "operative_rmse_max_k": round(max(op_rmse), 3),
                      "fit_cpu_s": round(fit_s, 1)}))


if __name__ == "__main__":
    main()
