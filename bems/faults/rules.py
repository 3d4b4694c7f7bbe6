"""Fault detection rules over what BEMS stores: zones, air handlers, meters.

The method follows NIST APAR and ASHRAE Guideline 36: first the operating mode of each
15-minute interval (open or closed by the zone's schedule, AC on or off, device stale, a
person's override), then only the rules of that mode, each with a persistence time; then the
findings that another finding explains are suppressed (a zone "too warm" while its air handler
cannot cool, or while its own sensor is biased or stuck). Baselines (a zone's usual night offset
from its neighbours, the usual night load) come from the days before, so a rule uses only data
up to the time it reports (`detected`): the benchmark's time to detect is honest.

Every threshold is in the site file's `[faults]` table (defaults below). Pure functions: the
data comes in as a `Data` grid, the findings go out; `bems.faults.engine` loads and stores.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import warnings

import numpy as np

STEP_S = 900  # the grid: 15-minute means (the store's 15-min rollups)

# name: (default, low, high, unit)
THRESHOLDS: dict[str, tuple[float, float, float, str]] = {
    "persist_min": (30.0, 15.0, 240.0, "min"),  # a condition this long is a fault
    "after_hours_grace_min": (30.0, 0.0, 240.0, "min"),  # AC/lights allowed after closing
    "precool_allowance_h": (5.0, 0.0, 12.0, "h"),  # AC allowed before opening (optimal start)
    "setpoint_error_k": (0.8, 0.3, 5.0, "K"),  # zone above its setpoint while cooling
    "pulldown_h": (1.5, 0.0, 6.0, "h"),  # after the AC starts, before the setpoint is due
    "reach_persist_h": (1.0, 0.25, 8.0, "h"),
    "cycles_per_3h": (6.0, 3.0, 40.0, ""),  # AC on/off changes in 3 h: short-cycling
    "flat_h": (3.0, 1.0, 24.0, "h"),  # a sensor that does not move this long while it should
    "flat_band_k": (0.05, 0.0, 0.5, "K"),
    "bias_k": (1.0, 0.3, 5.0, "K"),  # a zone's night offset from its neighbours, changed
    "sensor_min_c": (5.0, -30.0, 20.0, "°C"),
    "sensor_max_c": (45.0, 30.0, 90.0, "°C"),
    "empty_lights_h": (2.0, 0.5, 12.0, "h"),  # lights on in an empty zone while open
    "sat_error_k": (1.5, 0.5, 6.0, "K"),  # GL36: supply air above its setpoint, full cooling
    "mat_error_k": (1.0, 0.2, 5.0, "K"),  # GL36 FC2/FC3: mixed air outside return..outdoor
    "oa_excess_pct": (20.0, 5.0, 90.0, "%"),  # outdoor-air share above its usual
    "base_load_excess_pct": (5.0, 1.0, 200.0, "%"),  # night load above the usual nights
    "off_day_excess_pct": (15.0, 2.0, 300.0, "%"),  # a closed day's energy above the usual
    "meter_missing_h": (1.0, 0.25, 24.0, "h"),
    "history_days": (14.0, 3.0, 60.0, "d"),
}


def thresholds(site_values: dict[str, float] | None = None) -> dict[str, float]:
    out = {k: v[0] for k, v in THRESHOLDS.items()}
    out.update(site_values or {})
    return out


def check_threshold(name: str, value: object) -> str | None:
    """Why a `[faults]` value is refused, or None."""
    if name not in THRESHOLDS:
        return f"unknown threshold (one of {', '.join(THRESHOLDS)})"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "must be a number"
    if not np.isfinite(float(value)):
        return "must be a finite number"
    _, lo, hi, unit = THRESHOLDS[name]
    if not lo <= float(value) <= hi:
        return f"must be within {lo:g}..{hi:g} {unit}".rstrip()
    return None


@dataclass
class Finding:
    rule: str
    target: str  # a zone, air handler or meter id
    target_kind: str  # zone | ahu | meter
    first: dt.datetime  # UTC
    last: dt.datetime
    detected: dt.datetime  # when the rule could first say so (persistence met)
    kwh_per_day: float = 0.0
    vnd_per_day: float = 0.0
    discomfort_kh: float = 0.0
    evidence: dict = field(default_factory=dict)  # points, figures; for the page and the texts

    def as_dict(self) -> dict:
        return {"rule": self.rule, "target": self.target, "target_kind": self.target_kind,
                "first": self.first, "last": self.last, "detected": self.detected,
                "kwh_per_day": round(self.kwh_per_day, 2),
                "vnd_per_day": round(self.vnd_per_day), "discomfort_kh": round(
                    self.discomfort_kh, 2), "evidence": self.evidence}


@dataclass
class Data:
    """Everything the rules read, on one 15-minute grid from `t0` (UTC epoch), `n` steps.
    `mean[point]` are interval means (NaN: no reading); `changes[point]` the on/off changes
    counted in the raw readings of status points; `drops[point]` the falls of energy
    registers (kWh); masks by zone from the calendar and the overrides."""

    t0: int
    n: int
    start: int  # the first step the rules report on (the ones before are history)
    local: list[dt.datetime]  # naive local time of each step's start
    mean: dict[str, np.ndarray]
    changes: dict[str, np.ndarray] = field(default_factory=dict)
    drops: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # (step, kWh)
    open: dict[str, np.ndarray] = field(default_factory=dict)  # zone → occupied by schedule
    allow_ac: dict[str, np.ndarray] = field(default_factory=dict)  # zone → AC may run
    allow_light: dict[str, np.ndarray] = field(default_factory=dict)
    overridden: dict[str, np.ndarray] = field(default_factory=dict)
    workday: np.ndarray | None = None  # the site's main schedule has periods that day
    expected: dict[str, np.ndarray] = field(default_factory=dict)  # meter → forecast kW
    price_vnd: np.ndarray | None = None  # VND/kWh incl. VAT at each step

    def time(self, i: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.t0 + i * STEP_S, dt.timezone.utc)

    def get(self, pid: str | None) -> np.ndarray:
        if pid and pid in self.mean:
            return self.mean[pid]
        return np.full(self.n, np.nan)


def runs(mask: np.ndarray, min_len: int = 1) -> list[tuple[int, int]]:
    """Contiguous True stretches [i0, i1) at least `min_len` long."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.diff(m.astype(np.int8))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return [(int(a), int(b)) for a, b in zip(starts, ends) if b - a >= min_len]


def on_for(mask: np.ndarray) -> np.ndarray:
    """At each step, how many steps in a row `mask` has been true (0 where it is false)."""
    mask = np.asarray(mask, bool)
    idx = np.arange(len(mask))
    last_off = np.maximum.accumulate(np.where(~mask, idx, -1))
    return np.where(mask, idx - last_off, 0)


def _steps(minutes: float) -> int:
    return max(1, int(round(minutes * 60 / STEP_S)))


def _finding(data: Data, rule: str, target: str, kind: str, i0: int, i1: int, detect_i: int,
             **kw) -> Finding:
    f = Finding(rule, target, kind, data.time(i0), data.time(i1), data.time(detect_i + 1), **kw)
    f.evidence.setdefault("hours", round((i1 - i0) * STEP_S / 3600, 2))
    return f


def _cost(data: Data, i0: int, i1: int, kw: float) -> tuple[float, float]:
    """kWh and VND of `kw` over steps [i0, i1), per day of the stretch (at most a day)."""
    hours = (i1 - i0) * STEP_S / 3600
    kwh = kw * min(hours, 24.0)
    prices = data.price_vnd[i0:i1] if data.price_vnd is not None else np.array([0.0])
    price = float(np.nanmean(prices)) if len(prices) and np.isfinite(prices).any() else 0.0
    return kwh, kwh * price


# --- zones ----------------------------------------------------------------------------------

def zone_rules(data: Data, zone, th: dict, ac_kw: float, light_kw: float,
               outdoor: np.ndarray, floor_c: float | None = None) -> list[Finding]:
    """`floor_c`: the policy's lowest cooling setpoint while occupied (25 °C in Vietnam)."""
    out: list[Finding] = []
    n, s0 = data.n, data.start
    persist = _steps(th["persist_min"])
    temp = data.get(zone.temperature)
    sp = data.get(zone.cooling_setpoint)
    ac = data.get(zone.ac_status) > 0.5
    mode = data.get(zone.ac_mode)
    light = data.get(zone.lighting) > 0.5
    occ = data.get(zone.occupancy)
    is_open = data.open.get(zone.id, np.zeros(n, bool))
    over = data.overridden.get(zone.id, np.zeros(n, bool))
    stale = ~np.isfinite(temp)
    tail = np.arange(n) >= s0

    def report(rule: str, mask: np.ndarray, min_len: int, kw: float = 0.0, **ev) -> None:
        for i0, i1 in runs(mask, min_len):
            if i1 <= s0:
                continue
            if "closed_day" in ev and data.workday is not None:  # the day this run is on
                ev["closed_day"] = not bool(data.workday[i0])
            kwh, vnd = _cost(data, i0, i1, kw) if kw else (0.0, 0.0)
            out.append(_finding(data, rule, zone.id, "zone", i0, i1, i0 + min_len - 1,
                                kwh_per_day=kwh, vnd_per_day=vnd, evidence={
                                    "points": [p for p in (zone.temperature, zone.cooling_setpoint,
                                                           zone.ac_status, zone.lighting,
                                                           zone.occupancy) if p],
                                    "hours": round((i1 - i0) * STEP_S / 3600, 2), **ev}))

    # schedule: AC or lights on while the zone is closed (a person's override excepted)
    if zone.ac_status:
        allow = data.allow_ac.get(zone.id, is_open)
        report("ac_after_hours", ac & ~allow & ~over, persist, ac_kw, closed_day=False)
    if zone.lighting:
        allow = data.allow_light.get(zone.id, is_open)
        report("lights_after_hours", light & ~allow & ~over, persist, light_kw)
        if zone.occupancy:  # lights on for hours in an empty zone during the day
            empty = np.isfinite(occ) & (occ < 0.5)
            report("lights_unoccupied", light & is_open & empty,
                   _steps(th["empty_lights_h"] * 60), light_kw)
    # sensors
    if zone.temperature:
        bad = np.isfinite(temp) & ((temp < th["sensor_min_c"]) | (temp > th["sensor_max_c"]))
        report("sensor_out_of_range", bad, 2, value=_r(np.nanmax(np.abs(temp[bad])))
               if bad.any() else None)
        out += _stuck(data, zone, temp, ac, outdoor, th)
    # cooled below the policy floor while occupied: an override, a wall panel at a priority
    # above BEMS's, or a controller's own program (its cost: 6 % of the AC a kelvin, a
    # common rule of thumb for split units)
    if floor_c is not None and zone.cooling_setpoint and zone.ac_status:
        cooling_now = ac & ~(np.isfinite(mode) & (np.round(mode) == 2))
        with np.errstate(invalid="ignore"):
            below = is_open & (sp < floor_c - 0.05)  # (the AC may cycle; the setpoint stays)
        for i0, i1 in runs(below, persist):
            if i1 <= s0 or not cooling_now[i0:i1].any():
                continue
            k_below = float(np.nanmax(floor_c - sp[i0:i1]))
            kwh, vnd = _cost(data, i0, i1, 0.06 * k_below * ac_kw)
            out.append(_finding(data, "setpoint_below_floor", zone.id, "zone", i0, i1,
                                i0 + persist - 1, kwh_per_day=kwh, vnd_per_day=vnd,
                                evidence={"points": [zone.cooling_setpoint, zone.ac_status],
                                          "setpoint": _r(np.nanmin(sp[i0:i1])),
                                          "floor": _r(floor_c)}))
    # cannot reach the setpoint while cooling, after the pull-down
    if zone.temperature and zone.cooling_setpoint and zone.ac_status:
        cooling = ac & ~(np.isfinite(mode) & (np.round(mode) == 2))
        since_on = on_for(cooling) * STEP_S / 3600
        err = temp - sp
        warm = cooling & is_open & (since_on > th["pulldown_h"]) & (err > th["setpoint_error_k"])
        for i0, i1 in runs(warm, _steps(th["reach_persist_h"] * 60)):
            if i1 <= s0:
                continue
            kh = float(np.nansum(err[i0:i1] - th["setpoint_error_k"])) * STEP_S / 3600
            rising = bool(temp[i1 - 1] - temp[i0] > 0.3)
            hot_out = bool(np.nanmean(outdoor[i0:i1]) > np.nanmean(temp[i0:i1]) + 2) \
                if np.isfinite(outdoor[i0:i1]).any() else False
            f = _finding(data, "cannot_reach_setpoint", zone.id, "zone", i0, i1,
                         i0 + _steps(th["reach_persist_h"] * 60) - 1, discomfort_kh=kh,
                         evidence={"points": [zone.temperature, zone.cooling_setpoint,
                                              zone.ac_status],
                                   "above_k": _r(np.nanmax(err[i0:i1])),
                                   "window_likely": rising and hot_out})
            f.kwh_per_day, f.vnd_per_day = _cost(data, i0, i1, 0.25 * ac_kw) \
                if f.evidence["window_likely"] else (0.0, 0.0)
            out.append(f)
    # short-cycling: many on/off changes of the AC within 3 hours
    ch = data.changes.get(zone.ac_status or "")
    if ch is not None:
        win = _steps(180)
        counts = np.convolve(ch, np.ones(win), mode="full")[:n]  # changes in the 3 h up to i
        cyc = counts >= th["cycles_per_3h"]
        for i0, i1 in runs(cyc, 1):
            if i1 <= s0:
                continue
            start = max(0, i0 - win + 1)
            out.append(_finding(data, "short_cycling", zone.id, "zone", start, i1, i0,
                                evidence={"points": [zone.ac_status, zone.temperature],
                                          "changes_3h": int(counts[i0:i1].max())},
                                kwh_per_day=0.1 * ac_kw * (i1 - start) * STEP_S / 3600))
    return [f for f in out if f.detected.timestamp() > data.t0 + s0 * STEP_S and
            tail[min(n - 1, int((f.last.timestamp() - data.t0) // STEP_S) - 1)]]


def _stuck(data: Data, zone, temp: np.ndarray, ac: np.ndarray, outdoor: np.ndarray,
           th: dict) -> list[Finding]:
    """A sensor that stays flat for `flat_h` hours while its zone must have moved: the zone
    floats (AC off half the window or more) and its AC started or stopped inside the window
    (not in its last half hour: a reading lags its interval), or its AC was off throughout
    while the outdoor temperature moved 2 K and the zone usually moves with it."""
    win = _steps(th["flat_h"] * 60)
    out = []
    # a zone that usually moves half a kelvin in such a window when its AC is off (not an
    # interior zone with its thermal mass) is expected to move with the weather
    spans = [np.ptp(temp[j:j + win]) for j in range(0, max(0, data.start - win), 4)
             if not ac[j:j + win].any() and np.isfinite(temp[j:j + win]).all()]
    lively = len(spans) >= 10 and float(np.median(spans)) >= 0.25
    i, n = max(data.start - win, 0), data.n
    while i + win <= n:
        seg = temp[i:i + win]
        if np.isfinite(seg).all() and seg.max() - seg.min() <= th["flat_band_k"]:
            # a zone held by its AC can sit on its setpoint for hours; a zone left to float
            # (AC off half the time or more) always moves when its AC or the weather changes
            floating = np.mean(~ac[i:i + win]) >= 0.5
            moved = floating and bool(np.any(ac[i:i + win - 2] != ac[i]))
            if not moved and lively and not ac[i:i + win].any():
                o = outdoor[i:i + win]  # AC off throughout: the weather moves a lively zone
                moved = bool(np.isfinite(o).all() and np.ptp(o) >= 2.0)
            if moved:
                j = i + win
                while j < n and np.isfinite(temp[j]) and abs(temp[j] - seg[0]) <= th["flat_band_k"]:
                    j += 1
                out.append(_finding(data, "sensor_stuck", zone.id, "zone", i, j, i + win - 1,
                                    evidence={"points": [zone.temperature, zone.ac_status],
                                              "value": _r(seg[0]),
                                              "hours": round((j - i) * STEP_S / 3600, 2)}))
                i = j
                continue
        i += 1
    return out


def bias_rule(data: Data, zones: list, th: dict) -> list[Finding]:
    """A zone sensor whose offset from its floor's other zones, in the small hours (00:00 to
    05:00, once every AC of the floor has been off for two hours: no sun, no people, no
    cooling), has moved from its usual by more than `bias_k` and four robust deviations of
    the nights before (nights of the same kind: after a working day or a closed one; nights
    found faulty left out). The other zones' reference is their median, taken again without
    any zone that itself looks shifted, so one bad sensor does not make its neighbours look
    bad."""
    by_floor: dict = {}
    for z in zones:
        if z.temperature:
            by_floor.setdefault(z.floor, []).append(z)
    hours = np.array([t.hour for t in data.local])
    days = np.array([t.date().toordinal() for t in data.local])
    after_work = {}  # day → whether the day before was a working day
    if data.workday is not None:
        for d in np.unique(days):
            prev = np.flatnonzero(days == d - 1)
            after_work[int(d)] = bool(data.workday[prev[0]]) if len(prev) else None
    out = []
    for floor_zones in by_floor.values():
        m = len(floor_zones)
        if m < 3:
            continue
        temps = np.vstack([data.get(z.temperature) for z in floor_zones])
        acs = np.vstack([data.get(z.ac_status) for z in floor_zones])
        off_for = np.zeros(data.n)  # steps since the floor's last AC stopped
        count = 0
        for i, any_on in enumerate(np.any(acs > 0.5, axis=0)):
            count = 0 if any_on else count + 1
            off_for[i] = count
        night = (hours < 5) & (off_for >= _steps(120))
        history: list[list[tuple[int, float, bool | None]]] = [[] for _ in range(m)]
        streak = [0] * m  # nights in a row found shifted

        def usual(k: int, d: int) -> tuple[float, float] | None:
            past = [(o, w) for e, o, w in history[k] if d - th["history_days"] <= e < d]
            same = [o for o, w in past if w == after_work.get(d)]
            vals = same if len(same) >= 3 else [o for o, _ in past]
            if len(vals) < 3:
                return None
            med = float(np.median(vals))
            mad = float(np.median(np.abs(np.array(vals) - med)))
            return med, max(th["bias_k"], min(2.0, 4 * 1.4826 * mad))

        def offsets(means: np.ndarray, leave_out: set) -> np.ndarray:
            res = np.full(m, np.nan)
            for k in range(m):
                ref = [means[j] for j in range(m) if j != k and j not in leave_out]
                if len(ref) >= 2:
                    res[k] = means[k] - float(np.median(ref))
            return res

        for d in np.unique(days):
            sel = night & (days == d) & np.isfinite(temps).all(axis=0)
            if sel.sum() < 8:  # two hours
                continue
            d = int(d)
            i_last = int(np.flatnonzero(sel)[-1])
            means = temps[:, sel].mean(axis=1)
            norms = [usual(k, d) for k in range(m)]
            first = offsets(means, set())
            odd = {k for k in range(m) if norms[k] and abs(first[k] - norms[k][0]) > norms[k][1]}
            final = offsets(means, odd)
            for k, z in enumerate(floor_zones):
                if not np.isfinite(final[k]):
                    continue
                if norms[k] is None or abs(final[k] - norms[k][0]) <= norms[k][1]:
                    history[k].append((d, float(final[k]), after_work.get(d)))
                    streak[k] = 0
                    continue
                # a shift that lasts is reported, then learnt: after three nights it is the
                # zone's new normal (a season, a long closure), and the fault stays open in
                # the list until someone closes it
                streak[k] += 1
                if streak[k] >= 3:
                    history[k].append((d, float(final[k]), after_work.get(d)))
                if i_last < data.start:
                    continue
                i0 = int(np.flatnonzero(days == d)[0])
                out.append(_finding(data, "sensor_bias", z.id, "zone", i0, i_last + 1, i_last,
                                    evidence={"points": [z.temperature],
                                              "bias_k": _r(final[k] - norms[k][0]),
                                              "usual_k": _r(norms[k][0])}))
    return out


def return_air_rule(data: Data, ahu, zones: list, th: dict) -> list[Finding]:
    """The air handler's return-air sensor against the zones it serves: while the fan has run
    an hour, the return air is the mix of the zones it cools (their median stands for it), so its offset from their mean moves
    only when a sensor drifts (this one, or the zones' together). One warm or biased zone moves
    the mean by a fifth of its error; a unit short of capacity warms both alike. The day's
    offset against the usual days, as the night check does for a zone."""
    served = [z for z in zones if z.id in ahu.zones and z.temperature]
    rat = data.get(ahu.return_air_temperature)
    if len(served) < 2 or not np.isfinite(rat).any():
        return []
    fan = data.get(ahu.fan_status) > 0.5 if ahu.fan_status else np.isfinite(rat)
    steady = on_for(fan) > _steps(60)
    # the return air comes from the zones whose boxes are open: those with their AC on
    temps = np.vstack([data.get(z.temperature) for z in served])
    on = np.vstack([data.get(z.ac_status) > 0.5 if z.ac_status else np.ones(data.n, bool)
                    for z in served]) & np.isfinite(temps)
    ok = on.sum(axis=0) >= 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # (steps with no zone on: NaN)
        # the median, not the mean: one zone with a fault of its own (a biased sensor, an
        # open window) does not move it
        mean = np.where(ok, np.nanmedian(np.where(on, temps, np.nan), axis=0), np.nan)
    days = np.array([t.date().toordinal() for t in data.local])
    history: list[tuple[int, float]] = []
    streak, out = 0, []
    for d in np.unique(days):
        sel = steady & ok & np.isfinite(rat) & (days == d)
        if sel.sum() < 8:
            continue
        d = int(d)
        off = float(np.mean(rat[sel] - mean[sel]))
        past = [o for e, o in history if d - th["history_days"] <= e < d]
        if len(past) < 3:
            history.append((d, off))
            continue
        usual = float(np.median(past))
        mad = float(np.median(np.abs(np.array(past) - usual)))
        if abs(off - usual) <= max(th["bias_k"], min(2.0, 4 * 1.4826 * mad)):
            history.append((d, off))
            streak = 0
            continue
        streak += 1
        if streak >= 3:  # a lasting shift becomes the usual
            history.append((d, off))
        i_last = int(np.flatnonzero(sel)[-1])
        if i_last < data.start:
            continue
        idx = np.flatnonzero(sel)
        out.append(_finding(data, "ahu_return_air_drift", ahu.id, "ahu", int(idx[0]), i_last + 1,
                            int(idx[min(7, len(idx) - 1)]),
                            evidence={"points": [ahu.return_air_temperature] +
                                      [z.temperature for z in served][:3],
                                      "bias_k": _r(off - usual), "usual_k": _r(usual)}))
    return out


# --- air handlers (ASHRAE Guideline 36 fault conditions that our points support) ---------

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


# --- meters ---------------------------------------------------------------------------------

def meter_rules(data: Data, meter, th: dict, all_fresh: np.ndarray,
                no_ac: np.ndarray | None = None) -> list[Finding]:
    out: list[Finding] = []
    n, s0 = data.n, data.start
    kw = data.get(meter.power)
    hours = np.array([t.hour for t in data.local])
    days = np.array([t.date().toordinal() for t in data.local])
    for i, drop in data.drops.get(meter.energy or "", []):
        if i >= s0:
            out.append(_finding(data, "meter_reset", meter.id, "meter", i, i + 1, i,
                                evidence={"points": [meter.energy], "drop_kwh": _r(drop)}))
    if meter.power:
        missing = ~np.isfinite(kw) & all_fresh  # the store gets readings, not from this one
        # a meter reading zero where it usually reads something (same hour, same kind of day)
        # the kind of day: a working day, or which closed day (a Saturday desk is not a Sunday)
        kinds = np.array([-1 if data.workday is not None and data.workday[i] else t.weekday()
                          for i, t in enumerate(data.local)])
        usual, low = _usual_by_hour(kw, hours, days, kinds, s0, 2 * th["history_days"])
        with np.errstate(invalid="ignore"):  # (a load that is sometimes off at that hour
            # on such days, an AC, cannot tell a silent meter from an idle load)
            zero = np.isfinite(kw) & (kw <= 0.02 * usual) & (low > 1.0)
        gap = _steps(th["meter_missing_h"] * 60)
        for mask, what in ((missing, "missing"), (zero, "zero")):
            for i0, i1 in runs(mask, gap):
                if i1 > s0:
                    kwh = float(np.nansum(usual[i0:i1])) * STEP_S / 3600
                    out.append(_finding(data, "meter_dropout", meter.id, "meter", i0, i1,
                                        i0 + gap - 1, evidence={"points": [meter.power],
                                                                "how": what,
                                                                "unmetered_kwh": _r(kwh)}))
    if meter.power and meter.measures in ("main", "plugs"):  # plugs: where creep shows first
        out += _base_load(data, meter, kw, hours, days, th, no_ac,
                          data.expected.get(meter.id))
    if meter.power and meter.measures == "main":
        out += _off_day(data, meter, kw, days, th)
    return out


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


# --- dependencies ----------------------------------------------------------------------------

def suppress(findings: list[Finding], zone_ahu: dict[str, str], tz=dt.timezone.utc) -> list[Finding]:
    all_ahus = sorted(set(zone_ahu.values()))
    """Drop the findings another finding explains: a zone too warm while its air handler
    cannot cool or its own sensor is faulty; a bias reported when the sensor is stuck."""
    def days_of(f: Finding) -> set:  # the site's local days the finding spans
        d0, d1 = f.first.astimezone(tz).date(), f.last.astimezone(tz).date()
        return {d0 + dt.timedelta(days=k) for k in range((d1 - d0).days + 1)}

    by: dict[tuple[str, str], set] = {}
    for f in findings:
        by.setdefault((f.rule, f.target), set()).update(days_of(f))

    def has(rule: str, target: str | None, days: set) -> bool:
        return target is not None and bool(by.get((rule, target), set()) & days)

    # most air handlers short of supply air on the same day (two thirds of them, three units
    # or more): the weather beyond their design, not a fault of one unit
    common = set()
    if len(all_ahus) >= 3:
        for day in {f.first.astimezone(tz).date() for f in findings}:
            short = sum(has("ahu_supply_air_high", a, {day}) for a in all_ahus)
            if short >= max(2, 2 * len(all_ahus) / 3):
                common.add(day)
    kept = []
    for f in findings:
        d = days_of(f)
        if f.rule == "ahu_supply_air_high" and d <= common:
            continue
        if f.rule == "cannot_reach_setpoint" and (
                has("sensor_bias", f.target, d) or has("sensor_stuck", f.target, d) or
                has("ahu_supply_air_high", zone_ahu.get(f.target), d) or
                has("ahu_outdoor_air_high", zone_ahu.get(f.target), d)):
            continue
        if f.rule == "sensor_bias" and has("sensor_stuck", f.target, d):
            continue
        if f.rule == "ahu_outdoor_air_high" and (
                has("ahu_mixed_air_implausible", f.target, d) or
                has("ahu_return_air_drift", f.target, d)):
            continue  # the share comes from the mixed and return air temperatures: one is wrong
        kept.append(f)
    return kept


def _r(v) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return round(v, 2) if np.isfinite(v) else None
