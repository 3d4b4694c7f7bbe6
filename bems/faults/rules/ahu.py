"""Air handlers: the ASHRAE Guideline 36 fault conditions that our points support."""

from __future__ import annotations

import numpy as np

from bems.faults.rules.grid import Data, Finding, _cost, _finding, _r, _steps, declare, on_for, runs

declare("ahu", "ahu_supply_air_high", "ahu_mixed_air_implausible", "ahu_outdoor_air_high")


def ahu_rules(data: Data, ahu, outdoor: np.ndarray, th: dict, served_kw: float,
              cooling: np.ndarray | None = None) -> list[Finding]:
    """`cooling`: the steps the unit is asked to cool (zones it serves cooling, not on fan
    only): the mode in which GL36's cooling conditions apply."""
    out: list[Finding] = []
    n = data.n
    fan = data.get(ahu.fan_status) > 0.5 if ahu.fan_status else data.get(ahu.fan_speed) > 5
    if cooling is None:
        cooling = np.ones(n, bool)
    steady = on_for(fan) > _steps(60)  # fan on for an hour: transients over
    sat, sat_sp = data.get(ahu.supply_air_temperature), data.get(ahu.supply_air_setpoint)
    mat, rat = data.get(ahu.mixed_air_temperature), data.get(ahu.return_air_temperature)
    persist = _steps(th["reach_persist_h"] * 60)
    pts = [p for p in ahu.points().values()]

    def report(rule: str, mask: np.ndarray, kw: float = 0.0, **ev) -> None:
        for i0, i1 in runs(mask, persist):
            if i1 <= data.start:
                continue
            kwh, vnd = _cost(data, i0, i1, kw) if kw else (0.0, 0.0)
            out.append(_finding(data, rule, ahu.id, "ahu", i0, i1, i0 + persist - 1,
                                kwh_per_day=kwh, vnd_per_day=vnd,
                                evidence={"points": pts, **{k: _r(v) for k, v in ev.items()}}))

    with np.errstate(invalid="ignore"):
        # GL36 FC13 (cooling at full, supply air warmer than its setpoint): our packaged units
        # report no coil command, so "steady fan, supply air above setpoint" stands for it
        high = steady & cooling & (sat - sat_sp > th["sat_error_k"])
        # GL36 FC2 / FC3: mixed air colder than both its sources or warmer than both
        lo_src, hi_src = np.fmin(rat, outdoor), np.fmax(rat, outdoor)
        mat_bad = steady & ((mat < lo_src - th["mat_error_k"]) | (mat > hi_src + th["mat_error_k"]))
        # GL36 FC6-like, in mechanical cooling with hot outdoor air (no economiser wanted):
        # the outdoor-air share, from the three temperatures, above what the damper command
        # asks: nothing when shut, the unit's usual share when open
        hot = outdoor - rat >= 4.0  # else the share from temperatures is too noisy
        oaf = np.where(hot, (mat - rat) / (outdoor - rat), np.nan)
        damper = data.get(ahu.outdoor_air)
        is_open = ~np.isfinite(damper) | (damper > 0.5)
    hist = steady[:data.start] & hot[:data.start] & is_open[:data.start] & \
        np.isfinite(oaf[:data.start])
    usual_oaf = float(np.percentile(oaf[:data.start][hist], 95)) if hist.sum() >= 8 else 0.3
    expected = np.where(is_open, usual_oaf, 0.0)
    with np.errstate(invalid="ignore"):
        oa_high = steady & hot & (oaf - expected > th["oa_excess_pct"] / 100.0)
    report("ahu_outdoor_air_high", oa_high, 0.3 * served_kw, usual_pct=usual_oaf * 100,
           seen_pct=float(np.nanmax(oaf[oa_high])) * 100 if oa_high.any() else None)
    # a unit found taking in too much outdoor air cannot hold its supply air either: one fault
    for i0, i1 in runs(oa_high, persist):
        high[i0:i1] = False
    report("ahu_supply_air_high", high, 0.15 * served_kw,
           above_k=float(np.nanmax((sat - sat_sp)[high])) if high.any() else None)
    report("ahu_mixed_air_implausible", mat_bad)
    return out
