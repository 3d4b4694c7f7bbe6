"""Run the fault rules over the store: load a 15-minute grid of what BEMS recorded (with the
weeks before, for the baselines), the calendar and the overrides; find; suppress; record."""

from __future__ import annotations

import datetime as dt

import numpy as np

from bems.calendar import SiteCalendar, main_schedule
from bems.faults import rules
from bems.faults.rules import STEP_S, Data, Finding
from bems.site import Site
from bems.storage import Store, to_epoch
from bems.tariff import band, price

DEFAULT_AC_W_M2 = 60.0  # when the site has no AC meter: a typical VN office, W/m² of floor
DEFAULT_LIGHT_W_M2 = 8.0


def load(site: Site, store: Store, start: dt.datetime, end: dt.datetime,
         history_days: float) -> Data:
    t_start = to_epoch(start) // STEP_S * STEP_S
    t0 = t_start - int(history_days * 86400) // STEP_S * STEP_S
    t_end = -(-to_epoch(end) // STEP_S) * STEP_S
    n = (t_end - t0) // STEP_S
    tz = site.tz
    local = [dt.datetime.fromtimestamp(t0 + i * STEP_S, dt.timezone.utc).astimezone(tz)
             .replace(tzinfo=None) for i in range(n)]
    pts = _points(site)
    mean = {p: np.array(v, float) for p, v in store.rollup_grid("15min", pts, t0, n).items()}
    fresh = np.zeros(n, bool)
    for v in mean.values():
        fresh |= np.isfinite(v)
    data = Data(t0=t0, n=n, start=(t_start - t0) // STEP_S, local=local, mean=mean)
    data.mean["_fresh"] = fresh.astype(float)
    # on/off changes of the AC, counted in the raw readings (a 15-min mean hides them), less
    # those BEMS itself commanded (its ledger): a strategy's optimal start or lunch break is
    # not a unit short-cycling
    for z in site.zones:
        if z.ac_status:
            ch = np.zeros(n)
            ours = np.zeros(n + 2, bool)
            for w in store.writes(point=z.ac_status, since=t_start - 3 * 3600 - STEP_S,
                                  until=t_end, limit=100_000):
                i = (to_epoch(w.ts) - t0) // STEP_S
                if -1 <= i < n:
                    ours[max(0, i):i + 2] = True
            prev = None
            for when, v, _q in store.readings(z.ac_status, t_start - 3 * 3600, t_end):
                if v is None:
                    continue
                on = v > 0.5
                i = (to_epoch(when) - t0) // STEP_S
                if prev is not None and on != prev and 0 <= i < n and not ours[i]:
                    ch[i] += 1
                prev = on
            data.changes[z.ac_status] = ch
    for m in site.meters:  # energy registers that fall: a reset or a replaced meter
        if m.energy:
            drops, prev = [], None
            for when, v, _q in store.readings(m.energy, t_start - STEP_S, t_end):
                if v is None:
                    continue
                if prev is not None and v < prev - 0.1:
                    drops.append(((to_epoch(when) - t0) // STEP_S, prev - v))
                prev = v
            data.drops[m.energy] = drops
    for m in site.meters:  # what BEMS forecast for the main and plug loads, hour by hour
        if m.measures in ("main", "plugs") and m.power:
            fc = store.forecast_for(m.id, t0, t_end)
            if fc:
                arr = np.full(n, np.nan)
                for ts, y in fc:
                    i = (to_epoch(ts) - t0) // STEP_S
                    arr[max(0, i):max(0, min(n, i + 3600 // STEP_S))] = y
                data.expected[m.id] = arr
    _calendar(site, data)
    _overrides(site, store, data)
    data.price_vnd = _prices(site, data)
    return data


def _points(site: Site) -> list[str]:
    pts = set()
    for z in site.zones:
        pts.update(z.points().values())
    for a in site.air_handlers:
        pts.update(a.points().values())
    for m in site.meters:
        pts.update(p for p in (m.power, m.energy) if p)
    pts.update(p.id for p in site.points if p.kind == "outdoor_temperature")
    return sorted(pts)


def _calendar(site: Site, data: Data) -> None:
    cal = SiteCalendar(site)
    th = rules.thresholds(site.faults)
    lead = dt.timedelta(hours=th["precool_allowance_h"])
    grace = dt.timedelta(minutes=th["after_hours_grace_min"])
    days = sorted({t.date() for t in data.local})
    main = main_schedule(site)
    data.workday = np.array([bool(main and cal.periods(main, t.date())) for t in data.local])
    for z in site.zones:
        is_open = np.zeros(data.n, bool)
        ac = np.zeros(data.n, bool)
        light = np.zeros(data.n, bool)
        if z.schedule:
            spans = {}
            for d in days:
                ps = cal.periods(z.schedule, d)
                spans[d] = (dt.datetime.combine(d, ps[0].start),
                            dt.datetime.combine(d, ps[-1].end)) if ps else None
            for i, t in enumerate(data.local):
                is_open[i] = cal.occupied(z.schedule, t)
                span = spans[t.date()]
                if span:
                    ac[i] = span[0] - lead <= t < span[1] + grace
                    light[i] = span[0] - dt.timedelta(minutes=30) <= t < span[1] + grace
        data.open[z.id], data.allow_ac[z.id], data.allow_light[z.id] = is_open, ac, light


def _overrides(site: Site, store: Store, data: Data) -> None:
    """A person's override on a zone's point: what it keeps on is wanted, not a fault."""
    zone_of = {p: z.id for z in site.zones for p in z.points().values()}
    for o in store.overrides():
        z = zone_of.get(o["point"])
        if z is None:
            continue
        a = (to_epoch(o["created_at"]) - data.t0) // STEP_S
        end = o["released_at"] if o.get("released_at") else o["expires_at"]
        b = -(-(to_epoch(end) - data.t0) // STEP_S)
        mask = data.overridden.setdefault(z, np.zeros(data.n, bool))
        mask[max(0, a):max(0, min(data.n, b))] = True


def _prices(site: Site, data: Data) -> np.ndarray:
    out = np.full(data.n, np.nan)
    for i, t in enumerate(data.local):
        tariff = site.tariff_on(t.date())
        if tariff is not None:
            out[i] = price(tariff, band(tariff, t)) * (1 + tariff.vat)
    return out


def _zone_loads(site: Site, data: Data) -> tuple[dict[str, float], dict[str, float]]:
    """Each zone's share of AC and lighting power while open (by floor area), from the
    sub-meters over the history, or typical W/m² without them."""
    area = sum(z.area_m2 for z in site.zones) or 1.0
    open_any = np.zeros(data.n, bool)
    for m in data.open.values():
        open_any |= m
    hist = open_any.copy()
    hist[data.start:] = False

    def mean_kw(measure: str) -> float | None:
        for m in site.meters:
            if m.measures == measure and m.power:
                v = data.get(m.power)[hist]
                v = v[np.isfinite(v)]
                if len(v):
                    return float(np.mean(v))
        return None

    ac, light = mean_kw("ac"), mean_kw("lighting")
    ac_kw = {z.id: (ac * z.area_m2 / area if ac else DEFAULT_AC_W_M2 * z.area_m2 / 1000)
             for z in site.zones}
    light_kw = {z.id: (light * z.area_m2 / area if light else DEFAULT_LIGHT_W_M2 * z.area_m2
                       / 1000) for z in site.zones}
    return ac_kw, light_kw


def detect(site: Site, store: Store, start: dt.datetime, end: dt.datetime) -> list[Finding]:
    """The faults in [start, end), using the days before for baselines."""
    th = rules.thresholds(site.faults)
    data = load(site, store, start, end, th["history_days"])
    outdoor = np.full(data.n, np.nan)
    for p in site.points:
        if p.kind == "outdoor_temperature":
            outdoor = data.get(p.id)
            break
    ac_kw, light_kw = _zone_loads(site, data)
    found: list[Finding] = []
    for z in site.zones:
        found += rules.zone_rules(data, z, th, ac_kw[z.id], light_kw[z.id], outdoor,
                                  site.control.policy_min_cooling_setpoint)
    found += [f for f in rules.bias_rule(data, list(site.zones), th)]
    zone_ahu = {}
    for a in site.air_handlers:
        for z in a.zones:
            zone_ahu[z] = a.id
        served = sum(ac_kw.get(z, 0.0) for z in a.zones)
        zs = [z for z in site.zones if z.id in a.zones and z.ac_status]
        cooling = None
        if zs:  # at least half the zones it serves cool (on, and not on fan only)
            votes = [(data.get(z.ac_status) > 0.5) & ~(np.round(data.get(z.ac_mode)) == 2)
                     for z in zs]
            cooling = np.sum(votes, axis=0) * 2 >= len(zs)
        found += rules.ahu_rules(data, a, outdoor, th, served, cooling)
        if a.return_air_temperature:
            found += rules.return_air_rule(data, a, list(site.zones), th)
    fresh = data.mean["_fresh"] > 0
    no_ac = np.ones(data.n, bool)  # no zone's AC on: the building's base load shows
    for z in site.zones:
        if z.ac_status:
            no_ac &= ~(data.get(z.ac_status) > 0.5)
    for m in site.meters:
        found += rules.meter_rules(data, m, th, fresh, no_ac,
                                   [c for c in site.meters if c.parent == m.id])
    found = [f for f in found if f.last.timestamp() > to_epoch(start)]
    return rules.suppress(found, zone_ahu, site.tz)


def run(site: Site, store: Store, now: dt.datetime, hours: float = 30.0) -> list[Finding]:
    """Detect over the last `hours` and record what was found (`bems faults --detect`; the
    runtime reads through a connection of its own and records apart)."""
    found = detect(site, store, now - dt.timedelta(hours=hours), now)
    for f in found:
        store.record_fault(f.as_dict(), now)
    return found
