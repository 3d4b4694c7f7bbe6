"""What the screens show, computed from the store: the building now, energy, alarms."""

from __future__ import annotations

import datetime as dt

from bems.calendar import SiteCalendar
from bems.metering import quarter_hour_kw, quarter_hour_kwh
from bems.site import Site
from bems.storage import Store
from bems.tariff import cost

COMFORT = (23.0, 27.0)
STALE_S = 15 * 60


def zone_rows(site: Site, store: Store, now: dt.datetime) -> list[dict]:
    latest = store.latest(now=now, lookback_s=STALE_S)
    held = {w.point: w for w in reversed(store.held_writes())}
    overrides = {o["point"]: o for o in store.overrides(active_at=now)}
    cal = SiteCalendar(site)
    local = now.astimezone(site.tz).replace(tzinfo=None)
    rows = []
    for z in site.zones:
        def val(pid):
            v = latest.get(pid) if pid else None
            return v[1] if v else None

        sp_w = held.get(z.cooling_setpoint)
        who = "–"
        if z.cooling_setpoint in overrides:
            o = overrides[z.cooling_setpoint]
            who = f"override ({o['created_by']}) @ {site.control.write_priority}"
        elif sp_w is not None:
            who = f"BEMS {sp_w.source} @ {sp_w.priority}"
        temp = val(z.temperature)
        occupied = bool(z.schedule and cal.occupied(z.schedule, local))
        rows.append({"zone": z, "temp": temp, "setpoint": val(z.cooling_setpoint),
                     "ac": val(z.ac_status), "light": val(z.lighting), "dim": val(z.lighting_level),
                     "occupied": occupied, "who": who,
                     "reason": sp_w.reason if sp_w is not None else "",
                     "out_of_band": occupied and temp is not None and
                     not COMFORT[0] <= temp <= COMFORT[1],
                     "stale": temp is None})
    return rows


def energy(site: Site, store: Store, now: dt.datetime) -> dict:
    main = site.main_meter()
    if main is None or not main.power:
        return {}
    local = now.astimezone(site.tz)
    day0 = local.replace(hour=0, minute=0, second=0, microsecond=0)
    month0 = day0.replace(day=1)
    latest = store.latest([main.power], now=now, lookback_s=STALE_S).get(main.power)
    today = {r["bucket"]: r["mean"] for r in store.rollups("hour", [main.power], day0, now)}
    month_q = quarter_hour_kwh(store, main, month0, now)
    month_kwh = sum(kwh for _, kwh in month_q)
    peak = max(quarter_hour_kw(store, main, month0, now), key=lambda r: r[1], default=None)
    c = cost(site, month_q) if month_q else None
    fc = store.latest_forecasts(main.id).get(main.id, [])
    fc_today = {f["ts"]: f["yhat"] for f in fc if day0 <= f["ts"] < day0 + dt.timedelta(days=1)}
    return {"kw_now": latest[1] if latest else None, "kwh_today": sum(today.values()),
            "kwh_month": month_kwh, "cost_month": c.total_vnd if c else None,
            "peak_kw": peak[1] if peak else None, "peak_at": peak[0] if peak else None,
            "today_actual": sorted(today.items()), "today_forecast": sorted(fc_today.items()),
            "day0": day0}


def alarms(site: Site, store: Store, now: dt.datetime) -> list[dict]:
    """Stale devices, zones out of band, AC or lights on after hours, setpoints below the
    policy floor. Each has a stable key so it can be acknowledged."""
    out = []
    latest = store.latest(now=now, lookback_s=STALE_S)
    for dev in site.devices:
        pts = [p.id for p in site.points_of(dev.id) if not p.writable or p.kind == "setpoint"]
        if pts and not any(p in latest for p in pts):
            out.append({"key": f"stale:{dev.id}", "kind": "stale", "target": dev.name or dev.id,
                        "value": None})
    floor = site.control.policy_min_cooling_setpoint
    for r in zone_rows(site, store, now):
        z = r["zone"]
        if r["out_of_band"]:
            out.append({"key": f"band:{z.id}", "kind": "out_of_band", "target": z.name,
                        "value": r["temp"]})
        if not r["occupied"] and (r["ac"] or 0) > 0.5:
            out.append({"key": f"ac_after:{z.id}", "kind": "ac_after_hours", "target": z.name,
                        "value": None})
        if not r["occupied"] and (r["light"] or 0) > 0.5:
            out.append({"key": f"light_after:{z.id}", "kind": "lights_after_hours",
                        "target": z.name, "value": None})
        if r["occupied"] and (r["ac"] or 0) > 0.5 and r["setpoint"] is not None \
                and r["setpoint"] < floor:
            out.append({"key": f"policy:{z.id}", "kind": "policy", "target": z.name,
                        "value": r["setpoint"]})
    acks = store.get_meta("alarm_acks", {}) or {}
    for a in out:
        a["ack"] = acks.get(a["key"])
    return out
