"""The rules that compare a point with its neighbours: a zone sensor's night offset from the
other zones (bias), an air handler's return air against the zones it serves."""

from __future__ import annotations

import warnings

import numpy as np

from bems.faults.rules.grid import Data, Finding, _finding, _r, _steps, declare, on_for

declare("zone", "sensor_bias")
declare("ahu", "ahu_return_air_drift")


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
