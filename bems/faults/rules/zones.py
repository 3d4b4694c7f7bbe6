"""The rules of one zone: schedule (AC or lights after hours, lights in an empty zone), comfort
(cannot reach the setpoint, short-cycling, a setpoint below the policy's floor) and its sensor
(out of range, stuck)."""

from __future__ import annotations

import numpy as np

from bems.faults.rules.grid import (STEP_S, Data, Finding, _cost, _finding, _r, _steps, declare,
                                    on_for, runs)

declare("zone", "ac_after_hours", "lights_after_hours", "lights_unoccupied", "cannot_reach_setpoint",
        "short_cycling", "setpoint_below_floor", "sensor_out_of_range", "sensor_stuck")


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
