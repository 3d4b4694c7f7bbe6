"""Air handlers: the ASHRAE Guideline 36 fault conditions that our points support. Each rule is
a small block declared with `ahu_rule` (its name, the points it needs, the operating mode it
judges, the threshold of its persistence) over the unit's series computed once (`Unit`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bems.faults.rules.grid import (Data, Finding, _cost, _finding, _r, _steps, on_for, rule,
                                    run_declared, runs)


@dataclass
class Unit:
    """What every air-handler rule reads: the unit's series and masks, computed once.
    `cooling`: the steps the unit is asked to cool (zones it serves cooling, not on fan only):
    the mode in which GL36's cooling conditions apply."""

    data: Data
    ahu: object
    outdoor: np.ndarray
    th: dict
    served_kw: float
    cooling: np.ndarray
    out: list[Finding] = field(default_factory=list)

    def __post_init__(self) -> None:
        d, a = self.data, self.ahu
        self.fan = d.get(a.fan_status) > 0.5 if a.fan_status else d.get(a.fan_speed) > 5
        self.steady = on_for(self.fan) > _steps(60)  # fan on for an hour: transients over
        self.sat, self.sat_sp = d.get(a.supply_air_temperature), d.get(a.supply_air_setpoint)
        self.mat, self.rat = d.get(a.mixed_air_temperature), d.get(a.return_air_temperature)
        self.persist = _steps(self.th["reach_persist_h"] * 60)
        self.oa_high = np.zeros(d.n, bool)  # set by the outdoor-air rule (it runs first)

    def report(self, rule_name: str, mask: np.ndarray, kw: float = 0.0, **ev) -> None:
        d = self.data
        for i0, i1 in runs(mask, self.persist):
            if i1 <= d.start:
                continue
            kwh, vnd = _cost(d, i0, i1, kw) if kw else (0.0, 0.0)
            self.out.append(_finding(d, rule_name, self.ahu.id, "ahu", i0, i1,
                                     i0 + self.persist - 1, kwh_per_day=kwh, vnd_per_day=vnd,
                                     evidence={"points": list(self.ahu.points().values()),
                                               **{k: _r(v) for k, v in ev.items()}}))


def ahu_rule(name: str, needs: tuple[str, ...], mode: str, persistence: str = ""):
    return rule("ahu", name, needs, mode, persistence)


def ahu_rules(data: Data, ahu, outdoor: np.ndarray, th: dict, served_kw: float,
              cooling: np.ndarray | None = None) -> list[Finding]:
    """Every declared air-handler rule whose points the unit has."""
    u = Unit(data, ahu, outdoor, th, served_kw,
             np.ones(data.n, bool) if cooling is None else cooling)
    run_declared("ahu", ahu, u)
    return u.out


@ahu_rule("ahu_outdoor_air_high", ("mixed_air_temperature", "return_air_temperature"),
          "fan steady, mechanical cooling, outdoor air 4 K hotter than the return",
          "reach_persist_h")
def _outdoor_air_high(u: Unit) -> None:
    """GL36 FC6-like, in mechanical cooling with hot outdoor air (no economiser wanted): the
    outdoor-air share, from the three temperatures, above what the damper command asks:
    nothing when shut, the unit's usual share when open."""
    d, s0, th = u.data, u.data.start, u.th
    with np.errstate(invalid="ignore"):
        hot = u.outdoor - u.rat >= 4.0  # else the share from temperatures is too noisy
        oaf = np.where(hot, (u.mat - u.rat) / (u.outdoor - u.rat), np.nan)
        damper = d.get(u.ahu.outdoor_air)
        is_open = ~np.isfinite(damper) | (damper > 0.5)
    hist = u.steady[:s0] & hot[:s0] & is_open[:s0] & np.isfinite(oaf[:s0])
    usual = float(np.percentile(oaf[:s0][hist], 95)) if hist.sum() >= 8 else 0.3
    expected = np.where(is_open, usual, 0.0)
    with np.errstate(invalid="ignore"):
        u.oa_high = u.steady & hot & (oaf - expected > th["oa_excess_pct"] / 100.0)
    u.report("ahu_outdoor_air_high", u.oa_high, 0.3 * u.served_kw, usual_pct=usual * 100,
             seen_pct=float(np.nanmax(oaf[u.oa_high])) * 100 if u.oa_high.any() else None)


@ahu_rule("ahu_supply_air_high", ("supply_air_temperature", "supply_air_setpoint"),
          "fan steady, cooling", "reach_persist_h")
def _supply_air_high(u: Unit) -> None:
    """GL36 FC13 (cooling at full, supply air warmer than its setpoint): our packaged units
    report no coil command, so "steady fan, supply air above setpoint" stands for it. A unit
    found taking in too much outdoor air cannot hold its supply air either: one fault."""
    with np.errstate(invalid="ignore"):
        high = u.steady & u.cooling & (u.sat - u.sat_sp > u.th["sat_error_k"])
    for i0, i1 in runs(u.oa_high, u.persist):
        high[i0:i1] = False
    u.report("ahu_supply_air_high", high, 0.15 * u.served_kw,
             above_k=float(np.nanmax((u.sat - u.sat_sp)[high])) if high.any() else None)


@ahu_rule("ahu_mixed_air_implausible", ("mixed_air_temperature",),
          "fan steady", "reach_persist_h")
def _mixed_air_implausible(u: Unit) -> None:
    """GL36 FC2 / FC3: mixed air colder than both its sources or warmer than both (the outdoor
    air alone where the unit has no return-air sensor)."""
    with np.errstate(invalid="ignore"):
        lo, hi = np.fmin(u.rat, u.outdoor), np.fmax(u.rat, u.outdoor)
        bad = u.steady & ((u.mat < lo - u.th["mat_error_k"]) | (u.mat > hi + u.th["mat_error_k"]))
    u.report("ahu_mixed_air_implausible", bad)
