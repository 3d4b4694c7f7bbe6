"""Schedules as facility managers edit them: stored in the database over the site file's.

The site file gives each schedule and the calendar their starting point; what an operator
changes (weekly periods per season, exception days: closures, make-up working days) is stored
and wins. `effective_site` is the site the strategies see; a change takes effect at the next
strategy run. Validation reports every problem at once and changes nothing when there is one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

from bems.errors import BemsError
from bems.calendar import SiteCalendar
from bems.fieldbus import ControllerSchedule
from bems.site import WEEKDAYS, Calendar, Device, Period, Schedule, Season, Site
from bems.storage import Store

EXCEPTION_KINDS = ("closure", "workday")


class ScheduleError(BemsError):
    """A schedule edit that cannot be saved; `problems` lists (field, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{f}: {m}" for f, m in problems))


def to_dict(schedule: Schedule) -> dict:
    return {"name": schedule.name, "seasons": [
        {"name": s.name, "from": f"{s.start[0]:02d}-{s.start[1]:02d}",
         "to": f"{s.end[0]:02d}-{s.end[1]:02d}",
         "periods": [{"days": [WEEKDAYS[d] for d in p.days], "start": p.start.strftime("%H:%M"),
                      "end": "24:00" if p.end == dt.time(0) else p.end.strftime("%H:%M")}
                     for p in s.periods]} for s in schedule.seasons]}


def _time(value: str, field: str, problems: list) -> dt.time | None:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", str(value).strip())
    if m and (int(m.group(1)), int(m.group(2))) == (24, 0):
        return dt.time(0)
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        problems.append((field, "time_invalid"))
        return None
    return dt.time(int(m.group(1)), int(m.group(2)))


def from_dict(schedule_id: str, d: dict) -> Schedule:
    """Validate an edited schedule. Problems use message keys the UI translates:
    time_invalid, end_before_start, overlap, no_days, month_day_invalid."""
    problems: list[tuple[str, str]] = []
    seasons = []
    for si, s in enumerate(d.get("seasons", [])):
        md = []
        for key in ("from", "to"):
            m = re.fullmatch(r"(\d{2})-(\d{2})", str(s.get(key, "")))
            try:
                dt.date(2024, int(m.group(1)), int(m.group(2)))
                md.append((int(m.group(1)), int(m.group(2))))
            except (AttributeError, ValueError):
                problems.append((f"seasons[{si}].{key}", "month_day_invalid"))
                md.append((1, 1))
        periods: list[Period] = []
        for pi, p in enumerate(s.get("periods", [])):
            f = f"seasons[{si}].periods[{pi}]"
            days = tuple(sorted(WEEKDAYS.index(x) for x in p.get("days", []) if x in WEEKDAYS))
            if not days:
                problems.append((f + ".days", "no_days"))
            start = _time(p.get("start", ""), f + ".start", problems)
            end = _time(p.get("end", ""), f + ".end", problems)
            if start and end and end != dt.time(0) and end <= start:
                problems.append((f + ".end", "end_before_start"))
                continue
            if start is None or end is None:
                continue
            new = Period(days, start, end)
            e_new = end if end != dt.time(0) else dt.time.max
            for qi, q in enumerate(periods):
                e_q = q.end if q.end != dt.time(0) else dt.time.max
                if set(q.days) & set(days) and start < e_q and q.start < e_new:
                    problems.append((f, "overlap"))
                    break
            periods.append(new)
        seasons.append(Season(str(s.get("name", f"season {si + 1}")), md[0], md[1],
                              tuple(periods)))
    if problems:
        raise ScheduleError(problems)
    return Schedule(schedule_id, str(d.get("name", schedule_id)), tuple(seasons))


def save(store: Store, site: Site, schedule: Schedule, user: str, now: dt.datetime) -> None:
    if schedule.id not in {s.id for s in site.schedules}:
        raise ScheduleError([("id", "unknown_schedule")])
    store.save_schedule(schedule.id, schedule.name, to_dict(schedule), user, now)
    store.audit(user, "schedule.save", {"schedule": schedule.id, **to_dict(schedule)}, now)


def add_exception(store: Store, day: dt.date, kind: str, name: str, user: str,
                  now: dt.datetime) -> int:
    if kind not in EXCEPTION_KINDS:
        raise ScheduleError([("kind", "kind_invalid")])
    eid = store.add_exception(day, kind, name, user, now)
    store.audit(user, "exception.add", {"day": day.isoformat(), "kind": kind, "name": name}, now)
    return eid


def strategy_overrides(store: Store) -> dict:
    return store.get_meta("strategy_params", {}) or {}


def save_strategy_params(store: Store, site: Site, values: dict, user: str,
                         now: dt.datetime) -> None:
    """Store an admin's strategy switches and parameters (validated against their types)."""
    from bems.strategies.params import StrategyParams

    types = StrategyParams.field_types()
    problems, clean = [], {}
    for k, v in values.items():
        if k not in types:
            problems.append((k, "unknown_parameter"))
        elif types[k] is bool:
            clean[k] = bool(v)
        elif types[k] is float:
            try:
                clean[k] = float(str(v).replace(",", "."))
            except ValueError:
                problems.append((k, "number_invalid"))
        elif types[k] is int:
            try:
                clean[k] = int(v)
            except ValueError:
                problems.append((k, "number_invalid"))
        elif k in ("unoccupied", "break_ac"):
            if v not in ("off", "setup"):
                problems.append((k, "choice_invalid"))
            else:
                clean[k] = v
    if "occupied_setpoint" in clean and \
            clean["occupied_setpoint"] < site.control.policy_min_cooling_setpoint:
        problems.append(("occupied_setpoint", "below_policy_floor"))
    if problems:
        raise ScheduleError(problems)
    store.set_meta("strategy_params", clean)
    store.audit(user, "strategies.save", clean, now)


def effective_site(site: Site, store: Store) -> Site:
    """The site with stored schedule edits, exception days and strategy settings applied."""
    stored = store.schedules()
    schedules = tuple(from_dict(s.id, stored[s.id]["definition"]) if s.id in stored else s
                      for s in site.schedules)
    exc = store.exceptions()
    closures = site.calendar.closures + tuple((e["day"], e["name"] or "") for e in exc
                                              if e["kind"] == "closure")
    workdays = site.calendar.workdays + tuple((e["day"], e["name"] or "") for e in exc
                                              if e["kind"] == "workday")
    cal = Calendar(site.calendar.country, closures, workdays)
    params = dataclasses.replace(site.strategies, **strategy_overrides(store))
    return dataclasses.replace(site, schedules=schedules, calendar=cal, strategies=params)


def _time_values(periods: list[Period]) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for p in sorted(periods, key=lambda p: p.start):
        out.append((p.start.strftime("%H:%M"), 1.0))
        if p.end != dt.time(0):
            out.append((p.end.strftime("%H:%M"), 0.0))
    return out


def for_controller(site: Site, device: Device, today: dt.date) -> ControllerSchedule:
    """What a controller that schedules locally should hold on `today` (give the effective
    site: stored edits count): this season's week, this and next year's holidays, closures and
    make-up days."""
    if not device.schedule:
        raise ScheduleError([(f"devices.{device.id}.schedule", "not_local")])
    cal = SiteCalendar(site)
    schedule = site.schedule(device.schedule)
    season = schedule.season_for(today)
    weekly = tuple(tuple(_time_values([p for p in (season.periods if season else ())
                                       if wd in p.days])) for wd in range(7))
    off, makeup = [], []
    day = dt.date(today.year, 1, 1)
    while day.year <= today.year + 1:
        kind, _ = cal.day_kind(day)
        if kind in ("holiday", "closure"):
            off.append(day)
        elif kind == "makeup":
            makeup.append(day)
        day += dt.timedelta(days=1)
    return ControllerSchedule(weekly, tuple(off), tuple(makeup))
