"""Meters: missing readings, register resets and drops, the night base load and a closed day's
energy against the usual, a parent meter against the sum of its children. Each rule is a small
block declared with `meter_rule` over the meter's series computed once (`Meter`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bems.faults.rules.grid import (STEP_S, Data, Finding, _cost, _finding, _r, _steps, rule,
                                    run_declared, runs)

@dataclass
class Meter:
    """What every meter rule reads: the meter's series on the grid, computed once. `all_fresh`:
    the steps the store got readings at all; `no_ac`: no zone's AC on; `children`: the
    sub-meters whose parent it is."""

    data: Data
    meter: object
    th: dict
    all_fresh: np.ndarray
    no_ac: np.ndarray | None
    children: list = field(default_factory=list)
    out: list[Finding] = field(default_factory=list)

    def __post_init__(self) -> None:
        d = self.data
        self.kw = d.get(self.meter.power)
        self.hours = np.array([t.hour for t in d.local])
        self.days = np.array([t.date().toordinal() for t in d.local])


def meter_rule(name: str, needs: tuple[str, ...], mode: str, persistence: str = ""):
    return rule("meter", name, needs, mode, persistence)


def meter_rules(data: Data, meter, th: dict, all_fresh: np.ndarray,
                no_ac: np.ndarray | None = None, children: list = ()) -> list[Finding]:
    """Every declared meter rule whose points the meter has."""
    m = Meter(data, meter, th, all_fresh, no_ac, list(children))
    run_declared("meter", meter, m)
    return m.out


@meter_rule("meter_reset", ("energy",), "any", "")
def _meter_reset(m: Meter) -> None:  # the energy register went down
    for i, drop in m.data.drops.get(m.meter.energy, []):
        if i >= m.data.start:
            m.out.append(_finding(m.data, "meter_reset", m.meter.id, "meter", i, i + 1, i,
                                  evidence={"points": [m.meter.energy], "drop_kwh": _r(drop)}))


@meter_rule("meter_dropout", ("power",), "the store gets readings", "meter_missing_h")
def _meter_dropout(m: Meter) -> None:
    """No readings from this meter while the store gets others, or zero where it usually
    reads something (same hour, same kind of day)."""
    data, th, kw, s0 = m.data, m.th, m.kw, m.data.start
    missing = ~np.isfinite(kw) & m.all_fresh
    # the kind of day: a working day, or which closed day (a Saturday desk is not a Sunday)
    kinds = np.array([-1 if data.workday is not None and data.workday[i] else t.weekday()
                      for i, t in enumerate(data.local)])
    usual, low = _usual_by_hour(kw, m.hours, m.days, kinds, s0, 2 * th["history_days"])
    with np.errstate(invalid="ignore"):  # (a load that is sometimes off at that hour
        # on such days, an AC, cannot tell a silent meter from an idle load)
        zero = np.isfinite(kw) & (kw <= 0.02 * usual) & (low > 1.0)
    gap = _steps(th["meter_missing_h"] * 60)
    for mask, what in ((missing, "missing"), (zero, "zero")):
        for i0, i1 in runs(mask, gap):
            if i1 > s0:
                kwh = float(np.nansum(usual[i0:i1])) * STEP_S / 3600
                m.out.append(_finding(data, "meter_dropout", m.meter.id, "meter", i0, i1,
                                      i0 + gap - 1, evidence={"points": [m.meter.power],
                                                              "how": what,
                                                              "unmetered_kwh": _r(kwh)}))


@meter_rule("base_load_high", ("power",), "night (00:00-05:00), no AC on; main and plugs meters",
            "")
def _base_load_high(m: Meter) -> None:  # plugs: where creep shows first
    if m.meter.measures in ("main", "plugs"):
        m.out += _base_load(m.data, m.meter, m.kw, m.hours, m.days, m.th, m.no_ac,
                            m.data.expected.get(m.meter.id))


@meter_rule("off_day_energy_high", ("power",), "closed days; the main meter", "")
def _off_day_energy_high(m: Meter) -> None:
    if m.meter.measures == "main":
        m.out += _off_day(m.data, m.meter, m.kw, m.days, m.th)


@meter_rule("meter_tree_mismatch", ("power",), "any; a meter with sub-meters", "meter_missing_h")
def _tree_mismatch(m: Meter) -> None:
    if m.children:
        m.out += tree_rule(m.data, m.meter, m.children, m.th)


def _usual_by_hour(kw, hours, days, kinds, s0, history_days) -> tuple[np.ndarray, np.ndarray]:
    """For each step from `s0`: the median and the 10th percentile of the same hour on the
    days before (at most `history_days` back, the same kind of day), from data before that
    day only."""
    usual = np.full(len(kw), np.nan)
    low = np.full(len(kw), np.nan)
    for d in np.unique(days[s0:]):
        here = np.flatnonzero(days == d)
        before = (days < d) & (days >= d - history_days) & np.isfinite(kw)
        before &= kinds == kinds[here[0]]
        for h in np.unique(hours[here]):
            vals = kw[before & (hours == h)]
            if len(vals) >= 12:  # three such days at least
                usual[here[hours[here] == h]] = float(np.median(vals))
                low[here[hours[here] == h]] = float(np.percentile(vals, 10))
    usual[:s0] = low[:s0] = np.nan
    return usual, low


def _base_load(data: Data, meter, kw, hours, days, th, no_ac=None,
               forecast: np.ndarray | None = None) -> list[Finding]:
    """The night load (00:00 to 05:00, while no AC runs: pre-cooling follows the weather)
    above what was expected: BEMS's own forecast for those hours where one was made before
    them, else the usual nights of the weeks before."""
    out = []
    night = hours < 5
    if no_ac is not None:
        night = night & no_ac
    per_day = {}
    for d in np.unique(days):
        sel = night & (days == d) & np.isfinite(kw)
        if sel.sum() >= 8:
            fc = float(np.mean(forecast[sel])) if forecast is not None and \
                np.isfinite(forecast[sel]).all() else None
            per_day[int(d)] = (float(np.mean(kw[sel])), int(np.flatnonzero(sel)[-1]), fc)
    for d, (load, i_last, fc) in per_day.items():
        if i_last < data.start:
            continue
        past = [v[0] for e, v in per_day.items() if d - th["history_days"] <= e < d]
        if fc is not None:  # the forecast is the baseline; its own error sets no margin here
            usual, margin = fc, fc * th["base_load_excess_pct"] / 100
        elif len(past) >= 3:
            usual = float(np.median(past))
            mad = float(np.median(np.abs(np.array(past) - usual)))
            margin = max(usual * th["base_load_excess_pct"] / 100, 4 * 1.4826 * mad)
        else:
            continue
        excess = load - usual
        if excess > max(margin, 0.5):
            i0 = int(np.flatnonzero(days == d)[0])
            kwh, vnd = _cost(data, i0, i0 + 96, excess * 0.5)  # about half the day is night
            out.append(_finding(data, "base_load_high", meter.id, "meter", i0, i_last + 1,
                                i_last, kwh_per_day=kwh, vnd_per_day=vnd,
                                evidence={"points": [meter.power], "night_kw": _r(load),
                                          "usual_kw": _r(usual),
                                          "from_forecast": fc is not None}))
    return out


def _off_day(data: Data, meter, kw, days, th) -> list[Finding]:
    """A closed day (weekend, holiday) using more than the usual closed day of the same kind
    (a Saturday with its morning desk against Saturdays; a Sunday or a holiday against
    Sundays and holidays), from at least two such days in the five weeks before."""
    if data.workday is None:
        return []
    out = []
    energy = {}
    for d in np.unique(days):
        sel = days == d
        if sel.sum() == 96 and not data.workday[sel][0] and np.isfinite(kw[sel]).sum() >= 88:
            weekday = data.local[int(np.flatnonzero(sel)[0])].weekday()
            energy[int(d)] = (float(np.nanmean(kw[sel])) * 24, int(np.flatnonzero(sel)[-1]),
                              "sat" if weekday == 5 else "closed")
    for d, (kwh, i_last, kind) in energy.items():
        if i_last < data.start:
            continue
        past = [v[0] for e, v in energy.items() if d - 35 <= e < d and v[2] == kind]
        if len(past) < 2:
            continue
        usual = float(np.median(past))
        if kwh > usual * (1 + th["off_day_excess_pct"] / 100):
            i0 = int(np.flatnonzero(days == d)[0])
            _, vnd = _cost(data, i0, i_last + 1, (kwh - usual) / 24)
            out.append(_finding(data, "off_day_energy_high", meter.id, "meter", i0, i_last + 1,
                                i_last, kwh_per_day=kwh - usual, vnd_per_day=vnd,
                                evidence={"points": [meter.power], "kwh": _r(kwh),
                                          "usual_kwh": _r(usual)}))
    return out


def tree_rule(data: Data, parent, children: list, th: dict) -> list[Finding]:
    """Sub-meters that together read more than their parent meter (a wrong CT ratio, a
    meter counted twice, a parent reading low) for `meter_missing_h` hours."""
    kw = data.get(parent.power)
    subs = [data.get(c.power) for c in children if c.power]
    if not parent.power or not subs:
        return []
    total = np.sum(subs, axis=0)  # NaN where a sub-meter is silent: that is another rule's
    with np.errstate(invalid="ignore"):
        over = np.isfinite(total) & np.isfinite(kw) & (total > kw * 1.05 + 1.0)
    gap = _steps(th["meter_missing_h"] * 60)
    out = []
    for i0, i1 in runs(over, gap):
        if i1 > data.start:
            out.append(_finding(data, "meter_tree_mismatch", parent.id, "meter", i0, i1,
                                i0 + gap - 1, evidence={
                                    "points": [parent.power] + [c.power for c in children
                                                                if c.power][:3],
                                    "parent_kw": _r(np.nanmean(kw[i0:i1])),
                                    "children_kw": _r(np.nanmean(total[i0:i1]))}))
    return out
