"""What the screens show, computed from the store: the building now, energy, alarms."""

from __future__ import annotations

import datetime as dt

from bems.metering import quarter_hour_kw, quarter_hour_kwh
from bems.site import Site
from bems.storage import Store
from bems.status import alarms, stale_after, zone_rows  # noqa: F401 (screens use them here)
from bems.tariff import cost

def energy(site: Site, store: Store, now: dt.datetime) -> dict:
    main = site.main_meter()
    if main is None or not main.power:
        return {}
    local = now.astimezone(site.tz)
    day0 = local.replace(hour=0, minute=0, second=0, microsecond=0)
    month0 = day0.replace(day=1)
    latest = store.latest([main.power], now=now, lookback_s=stale_after(store)).get(main.power)
    today = {r["bucket"]: r["mean"] for r in store.rollups("hour", [main.power], day0, now)}
    month_q = quarter_hour_kwh(store, main, month0, now)
    month_kwh = sum(kwh for _, kwh in month_q)
    # today's energy the way the month's is counted (quarters of an hour): the hour under way
    # counts for the part of it that has gone, not as a whole hour at its mean
    kwh_today = sum(kwh for t, kwh in month_q if t >= day0)
    peak = max(quarter_hour_kw(store, main, month0, now), key=lambda r: r[1], default=None)
    c = cost(site, month_q) if month_q else None
    fc = store.latest_forecasts(main.id).get(main.id, [])
    fc_today = {f["ts"]: f["yhat"] for f in fc if day0 <= f["ts"] < day0 + dt.timedelta(days=1)}
    return {"kw_now": latest[1] if latest else None, "kwh_today": kwh_today,
            "kwh_month": month_kwh, "cost_month": c.total_vnd if c else None,
            "peak_kw": peak[1] if peak else None, "peak_at": peak[0] if peak else None,
            "today_actual": sorted(today.items()), "today_forecast": sorted(fc_today.items()),
            "day0": day0}
