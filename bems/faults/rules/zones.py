"""The rules of one zone: schedule (AC or lights after hours, lights in an empty zone), comfort
(cannot reach the setpoint, short-cycling, a setpoint below the policy's floor) and its sensor
(out of range, stuck). Each rule is a small block declared with `zone_rule` (its name, the
points it needs, the operating mode it judges, the threshold of its persistence) over the
zone's series computed once (`Zone`); a new rule is a new block."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bems.faults.rules.grid import (STEP_S, Data, Finding, _cost, _finding, _r, _steps, on_for,
                                    rule, run_declared, runs)


@dataclass
class Zone:
    """What every zone rule reads: the zone's series on the grid and its masks, computed once."""

    data: Data
    zone: object
    th: dict
    ac_kw: float
    light_kw: float
    outdoor: np.ndarray
    floor_c: float | None
    out: list[Finding] = field(default_factory=list)

    def __post_init__(self) -> None:
        z, d, n = self.zone, self.data, self.data.n
        self.persist = _steps(self.th["persist_min"])
        self.temp, self.sp = d.get(z.temperature), d.get(z.cooling_setpoint)
        self.ac = d.get(z.ac_status) > 0.5
        mode = d.get(z.ac_mode)
        self.cooling = self.ac & ~(np.isfinite(mode) & (np.round(mode) == 2))  # not fan-only
        self.light = d.get(z.lighting) > 0.5
        self.occ = d.get(z.occupancy)
        self.is_open = d.open.get(z.id, np.zeros(n, bool))
        self.over = d.overridden.get(z.id, np.zeros(n, bool))

    def report(self, rule: str, mask: np.ndarray, min_len: int, kw: float = 0.0, **ev) -> None:
        """A finding per run of `mask` at least `min_len` steps long (the rule's persistence)."""
        d, z = self.data, self.zone
        for i0, i1 in runs(mask, min_len):
            if i1 <= d.start:
                continue
            if "closed_day" in ev and d.workday is not None:  # the day this run is on
                ev["closed_day"] = not bool(d.workday[i0])
            kwh, vnd = _cost(d, i0, i1, kw) if kw else (0.0, 0.0)
            self.out.append(_finding(d, rule, z.id, "zone", i0, i1, i0 + min_len - 1,
                                     kwh_per_day=kwh, vnd_per_day=vnd, evidence={
                                         "points": [p for p in (z.temperature, z.cooling_setpoint,
                                                                z.ac_status, z.lighting,
                                                                z.occupancy) if p],
                                         "hours": round((i1 - i0) * STEP_S / 3600, 2), **ev}))


def zone_rule(name: str, needs: tuple[str, ...], mode: str, persistence: str = ""):
    return rule("zone", name, needs, mode, persistence)


def zone_rules(data: Data, zone, th: dict, ac_kw: float, light_kw: float,
               outdoor: np.ndarray, floor_c: float | None = None) -> list[Finding]:
    """Every declared zone rule whose points the zone has. `floor_c`: the policy's lowest
    cooling setpoint while occupied (25 °C in Vietnam)."""
    z = Zone(data, zone, th, ac_kw, light_kw, outdoor, floor_c)
    run_declared("zone", zone, z)
    n, s0 = data.n, data.start
    tail = np.arange(n) >= s0
    return [f for f in z.out if f.detected.timestamp() > data.t0 + s0 * STEP_S and
            tail[min(n - 1, int((f.last.timestamp() - data.t0) // STEP_S) - 1)]]


# --- schedule: AC or lights on while the zone is closed (a person's override excepted) ------

@zone_rule("ac_after_hours", ("ac_status",), "closed", "persist_min")
def _ac_after_hours(z: Zone) -> None:
    allow = z.data.allow_ac.get(z.zone.id, z.is_open)
    z.report("ac_after_hours", z.ac & ~allow & ~z.over, z.persist, z.ac_kw, closed_day=False)


@zone_rule("lights_after_hours", ("lighting",), "closed", "persist_min")
def _lights_after_hours(z: Zone) -> None:
    allow = z.data.allow_light.get(z.zone.id, z.is_open)
    z.report("lights_after_hours", z.light & ~allow & ~z.over, z.persist, z.light_kw)


@zone_rule("lights_unoccupied", ("lighting", "occupancy"), "open", "empty_lights_h")
def _lights_unoccupied(z: Zone) -> None:  # lights on for hours in an empty zone by day
    empty = np.isfinite(z.occ) & (z.occ < 0.5)
    z.report("lights_unoccupied", z.light & z.is_open & empty,
             _steps(z.th["empty_lights_h"] * 60), z.light_kw)


# --- the zone's sensor ------------------------------------------------------------------------

@zone_rule("sensor_out_of_range", ("temperature",), "any", "")
def _sensor_out_of_range(z: Zone) -> None:
    t = z.temp
    bad = np.isfinite(t) & ((t < z.th["sensor_min_c"]) | (t > z.th["sensor_max_c"]))
    z.report("sensor_out_of_range", bad, 2,
             value=_r(np.nanmax(np.abs(t[bad]))) if bad.any() else None)


@zone_rule("sensor_stuck", ("temperature",), "floating", "flat_h")
def _sensor_stuck(z: Zone) -> None:
    z.out += _stuck(z.data, z.zone, z.temp, z.ac, z.outdoor, z.th)


# --- comfort and the policy ---------------------------------------------------------------------

@zone_rule("setpoint_below_floor", ("cooling_setpoint", "ac_status"), "open", "persist_min")
def _setpoint_below_floor(z: Zone) -> None:
    """Cooled below the policy floor while occupied: an override, a wall panel at a priority
    above BEMS's, or a controller's own program (its cost: 6 % of the AC a kelvin, a common
    rule of thumb for split units)."""
    if z.floor_c is None:
        return
    d, sp = z.data, z.sp
    with np.errstate(invalid="ignore"):
        below = z.is_open & (sp < z.floor_c - 0.05)  # (the AC may cycle; the setpoint stays)
    for i0, i1 in runs(below, z.persist):
        if i1 <= d.start or not z.cooling[i0:i1].any():
            continue
        k_below = float(np.nanmax(z.floor_c - sp[i0:i1]))
        kwh, vnd = _cost(d, i0, i1, 0.06 * k_below * z.ac_kw)
        z.out.append(_finding(d, "setpoint_below_floor", z.zone.id, "zone", i0, i1,
                              i0 + z.persist - 1, kwh_per_day=kwh, vnd_per_day=vnd,
                              evidence={"points": [z.zone.cooling_setpoint, z.zone.ac_status],
                                        "setpoint": _r(np.nanmin(sp[i0:i1])),
                                        "floor": _r(z.floor_c)}))


@zone_rule("cannot_reach_setpoint", ("temperature", "cooling_setpoint", "ac_status"),
           "open, cooling, after the pull-down", "reach_persist_h")
def _cannot_reach_setpoint(z: Zone) -> None:
    d, th, temp = z.data, z.th, z.temp
    since_on = on_for(z.cooling) * STEP_S / 3600
    err = temp - z.sp
    warm = z.cooling & z.is_open & (since_on > th["pulldown_h"]) & (err > th["setpoint_error_k"])
    persist = _steps(th["reach_persist_h"] * 60)
    for i0, i1 in runs(warm, persist):
        if i1 <= d.start:
            continue
        kh = float(np.nansum(err[i0:i1] - th["setpoint_error_k"])) * STEP_S / 3600
        rising = bool(temp[i1 - 1] - temp[i0] > 0.3)
        hot_out = bool(np.nanmean(z.outdoor[i0:i1]) > np.nanmean(temp[i0:i1]) + 2) \
            if np.isfinite(z.outdoor[i0:i1]).any() else False
        f = _finding(d, "cannot_reach_setpoint", z.zone.id, "zone", i0, i1, i0 + persist - 1,
                     discomfort_kh=kh,
                     evidence={"points": [z.zone.temperature, z.zone.cooling_setpoint,
                                          z.zone.ac_status],
                               "above_k": _r(np.nanmax(err[i0:i1])),
                               "window_likely": rising and hot_out})
        f.kwh_per_day, f.vnd_per_day = _cost(d, i0, i1, 0.25 * z.ac_kw) \
            if f.evidence["window_likely"] else (0.0, 0.0)
        z.out.append(f)


@zone_rule("short_cycling", ("ac_status",), "any", "cycles_per_3h")
def _short_cycling(z: Zone) -> None:  # many on/off changes of the AC within 3 hours
    d = z.data
    ch = d.changes.get(z.zone.ac_status or "")
    if ch is None:
        return
    win = _steps(180)
    counts = np.convolve(ch, np.ones(win), mode="full")[:d.n]  # changes in the 3 h up to i
    for i0, i1 in runs(counts >= z.th["cycles_per_3h"], 1):
        if i1 <= d.start:
            continue
        start = max(0, i0 - win + 1)
        z.out.append(_finding(d, "short_cycling", z.zone.id, "zone", start, i1, i0,
                              evidence={"points": [z.zone.ac_status, z.zone.temperature],
                                        "changes_3h": int(counts[i0:i1].max())},
                              kwh_per_day=0.1 * z.ac_kw * (i1 - start) * STEP_S / 3600))


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
