"""The monthly energy report's figures, from the store: what was used, what it cost, what was
saved, and whether the rules for state agencies were kept. No rendering here."""

from __future__ import annotations

import datetime as dt
import re
from typing import Callable
from dataclasses import dataclass, field

from bems.text import clean_text
from bems.calendar import SiteCalendar
from bems.errors import BemsError
from bems.metering import hourly_kwh, quarter_hour_kw, quarter_hour_kwh
from bems.site import Meter, Site
from bems.storage import Store
from bems.tariff import Cost, cost

END_USES = ("ac", "lighting", "plugs", "other")


class ReportError(BemsError):
    """The report cannot be made as asked; `code` (month_invalid, no_main_meter, no_data) is a
    message key the UI translates."""

    def __init__(self, message: str, code: str = "no_data"):
        self.code = code
        super().__init__(message)


@dataclass
class MeterFigure:
    id: str
    name: str
    measures: str
    kwh: float | None  # None: no data at all this month
    coverage: float  # fraction of the month's hours with readings
    building: str | None = None
    floor: int | None = None


@dataclass
class Savings:
    available: bool
    reason: str = ""
    baseline_kwh: float = 0.0
    actual_kwh: float = 0.0
    model: str = ""
    cv_rmse: float = 0.0
    nmbe: float = 0.0

    @property
    def saved_kwh(self) -> float:
        return self.baseline_kwh - self.actual_kwh

    @property
    def saved_pct(self) -> float:
        return 100 * self.saved_kwh / self.baseline_kwh if self.baseline_kwh else 0.0


@dataclass
class MonthlyReport:
    site_name: str
    month: str  # YYYY-MM
    start: dt.datetime  # local midnight, aware
    end: dt.datetime
    floor_area_m2: float
    main: MeterFigure
    meters: list[MeterFigure]
    end_uses: dict[str, float]  # ac, lighting, plugs, other, unmetered → kWh
    daily: list[tuple[dt.date, float]]
    peak_kw: float
    peak_at: dt.datetime | None
    cost: Cost
    tariff_name: str
    eui_kwh_m2: float
    eui_12m_kwh_m2: float | None
    previous_month_kwh: float | None
    same_month_last_year_kwh: float | None
    savings: Savings
    compliance: dict[str, float]
    events: list[dict] = field(default_factory=list)
    faults: list[dict] = field(default_factory=list)  # seen in the month, most costly first
    # the alarm log: raised in the month, by severity, acknowledged, median minutes to ack
    alarms: dict = field(default_factory=dict)

    @property
    def max_day(self) -> tuple[dt.date, float] | None:
        return max(self.daily, key=lambda d: d[1]) if self.daily else None


def month_bounds(site: Site, month: str) -> tuple[dt.datetime, dt.datetime]:
    m_ = re.fullmatch(r"(\d{4})-(\d{2})", str(month)[:20])
    y, m = (int(m_.group(1)), int(m_.group(2))) if m_ else (0, 0)
    if not (2000 <= y <= 2100 and 1 <= m <= 12):
        raise ReportError(f"{str(month)[:20]!r}: the month is YYYY-MM, 2000-01 to 2100-12",
                          "month_invalid")
    start = dt.datetime(y, m, 1, tzinfo=site.tz)
    end = dt.datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=site.tz)
    return start, end


def meter_total(store: Store, meter: Meter, start: dt.datetime,
                end: dt.datetime) -> tuple[float | None, float]:
    hours = hourly_kwh(store, meter, start, end)
    n = (end - start) / dt.timedelta(hours=1)
    return (sum(hours.values()) if hours else None), len(hours) / n


def _main_meter(site: Site) -> Meter:
    main = site.main_meter()
    if main is None:
        raise ReportError("the site file has no main meter (measures = \"main\", no parent)",
                          "no_main_meter")
    return main


def _peak(store: Store, meter: Meter, start: dt.datetime,
          end: dt.datetime) -> tuple[float, dt.datetime | None]:
    """Largest 15-minute mean power."""
    best = (0.0, None)
    for t, kw in quarter_hour_kw(store, meter, start, end):
        if kw > best[0]:
            best = (kw, t)
    return best


# How savings are estimated (IPMVP Option C needs a fitted model of the building). Reports are
# core and models are not: the composition roots (CLI, runtime, UI) hand one in,
# `models.savings.option_c`; without one the report says savings were not estimated.
SavingsModel = Callable[[Site, Store, Meter, dt.datetime, dt.datetime], Savings]


def build_monthly(site: Site, store: Store, month: str,
                  savings: SavingsModel | None = None) -> MonthlyReport:
    start, end = month_bounds(site, month)
    main = _main_meter(site)
    main_kwh, main_cov = meter_total(store, main, start, end)
    if main_kwh is None:
        raise ReportError(f"no readings of the main meter ({main.id}) in {month}: nothing to "
                          "report")
    figures = []
    for m in site.meters:
        kwh, cov = meter_total(store, m, start, end) if m is not main else (main_kwh, main_cov)
        figures.append(MeterFigure(m.id, m.name, m.measures, kwh, cov, m.building, m.floor))
    children = [f for f in figures if site.meter(f.id).parent == main.id]
    end_uses = {k: 0.0 for k in END_USES}
    for f in children:
        if f.kwh is not None:
            end_uses[f.measures if f.measures in END_USES else "other"] += f.kwh
    end_uses["unmetered"] = main_kwh - sum(end_uses.values())
    hours = hourly_kwh(store, main, start, end)
    days: dict[dt.date, float] = {}
    for t, v in hours.items():
        d = t.astimezone(site.tz).date()
        days[d] = days.get(d, 0.0) + v
    peak_kw, peak_at = _peak(store, main, start, end)
    c = cost(site, quarter_hour_kwh(store, main, start, end))
    tariff = site.tariff_on(start.date())
    area = site.floor_area_m2

    def month_kwh(offset: int) -> float | None:
        y, m = start.year, start.month - offset
        while m < 1:
            y, m = y - 1, m + 12
        s, e = month_bounds(site, f"{y:04d}-{m:02d}")
        return meter_total(store, main, s, e)[0]

    year_start = dt.datetime(start.year - 1, start.month, 1, tzinfo=site.tz)
    year_hours = hourly_kwh(store, main, year_start, end)
    full_year = len(year_hours) >= 0.9 * (end - year_start) / dt.timedelta(hours=1)
    return MonthlyReport(
        site_name=site.name, month=month, start=start, end=end, floor_area_m2=area,
        main=figures[site.meters.index(main)], meters=figures, end_uses=end_uses,
        daily=sorted(days.items()), peak_kw=peak_kw,
        peak_at=peak_at.astimezone(site.tz) if peak_at else None, cost=c,
        tariff_name=tariff.name if tariff else "",
        eui_kwh_m2=main_kwh / area,
        eui_12m_kwh_m2=sum(year_hours.values()) / area if full_year else None,
        previous_month_kwh=month_kwh(1), same_month_last_year_kwh=month_kwh(12),
        savings=(savings(site, store, main, start, end) if savings is not None else
                 Savings(False, "not_estimated: no savings model given")),
        compliance=compliance(site, store, start, end),
        events=events(store, start, end), faults=month_faults(site, store, start, end),
        alarms=store.alarm_summary(start, end))


def month_faults(site: Site, store: Store, start: dt.datetime, end: dt.datetime) -> list[dict]:
    """The faults seen in the month, most costly first: rule, target and its name, first and
    last sighting (clipped to the month), cost a day, status."""
    from bems.faults import target_name

    out = []
    for f in store.faults(since=start, limit=2000):
        if f["first"] >= end:
            continue
        out.append({"rule": f["rule"], "target": f["target"], "evidence": f["evidence"],
                    "name": target_name(site, f["target_kind"], f["target"]),
                    "first": max(f["first"], start), "last": min(f["last"], end),
                    "kwh_per_day": f["kwh_per_day"], "vnd_per_day": f["vnd_per_day"],
                    "discomfort_kh": f["discomfort_kh"], "status": f["status"]})
    return out


def compliance(site: Site, store: Store, start: dt.datetime, end: dt.datetime) -> dict[str, float]:
    """Zone-hours against the rules: cooling below the floor while occupied, lights on outside
    working hours, AC running on days the office is closed."""
    cal = SiteCalendar(site)
    floor = site.control.policy_min_cooling_setpoint
    below = lights_after = ac_closed = 0.0
    for z in site.zones:
        if not (z.ac_status and z.cooling_setpoint):
            continue
        ac = {r["bucket"]: r["mean"] for r in store.rollups("hour", [z.ac_status], start, end)}
        sp = {r["bucket"]: r["min"] for r in store.rollups("hour", [z.cooling_setpoint], start, end)}
        lt = ({r["bucket"]: r["mean"] for r in store.rollups("hour", [z.lighting], start, end)}
              if z.lighting else {})
        for t, on in ac.items():
            local = t.astimezone(site.tz).replace(tzinfo=None)
            occupied = z.schedule and cal.occupied(z.schedule, local)
            open_day = bool(z.schedule and cal.periods(z.schedule, local.date()))
            if on and on > 0 and sp.get(t) is not None and sp[t] < floor - 1e-6 and occupied:
                below += on
            if on and on > 0 and not open_day:
                ac_closed += on
        for t, on in lt.items():
            local = t.astimezone(site.tz).replace(tzinfo=None)
            if on and on > 0 and not (z.schedule and cal.occupied(z.schedule, local)):
                lights_after += on
    return {"ac_below_floor_zone_h": round(below, 2), "lights_after_hours_zone_h":
            round(lights_after, 2), "ac_on_closed_days_zone_h": round(ac_closed, 2)}


ROUTINE = ("login", "logout", "report.make", "report.monthly", "forbidden")


def events(store: Store, start: dt.datetime, end: dt.datetime) -> list[dict]:
    """Operator overrides, schedule and strategy changes from the ledger and the audit."""
    out = []
    for w in store.writes(sources=("override", "cli"), since=start, until=end, limit=500):
        out.append({"time": w.ts, "what": f"{w.action} {w.point} = {w.value} ({w.outcome})",
                    "who": w.source, "why": w.reason or "", "action": w.action,
                    "point": w.point, "value": w.value, "outcome": w.outcome})
    for a in store.audit_rows(limit=1000, since=start, until=end, oldest_first=True,
                              exclude=ROUTINE + ("login.failed",)):
        out.append({"time": a["ts"], "what": a["action"], "who": clean_text(a["user"], 64),
                    "why": clean_text(a["detail"], 300), "action": a["action"]})
    # failed logins: one line a day, however many (they must not push real events out)
    for day, n in store.audit_count_by_day("login.failed", start, end).items():
        out.append({"time": dt.datetime.combine(day, dt.time(23, 59), start.tzinfo),
                    "what": f"login.failed ×{n}", "who": "", "why": "",
                    "action": "login.failed", "count": n})
    return sorted(out, key=lambda e: e["time"])
