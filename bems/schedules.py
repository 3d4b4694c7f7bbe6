"""Schedules as facility managers edit them: stored in the database over the site file's.

The site file gives each schedule and the calendar their starting point; what an operator
changes (weekly periods per season, exception days: closures, make-up working days) is stored
and wins. `effective_site` is the site the strategies see; a change takes effect at the next
strategy run. Validation reports every problem at once and changes nothing when there is one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from bems.errors import BemsError
from bems import validate
from bems.calendar import SiteCalendar
from bems.strategies import params as strategy_params
from bems.text import clean_text
from bems.fieldbus import ControllerSchedule
from bems.site import WEEKDAYS, Calendar, Device, Period, Schedule, Site
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


def from_dict(schedule_id: str, d: dict) -> Schedule:
    """Validate an edited schedule (the site file's validator: `bems.validate.schedule`).
    Problems are (field, code) pairs; the UI translates the codes."""
    schedule, problems = validate.schedule(schedule_id, d)
    if problems:
        raise ScheduleError([(validate.field_name(path), code) for path, code, _ in problems])
    return schedule


def save(store: Store, site: Site, schedule: Schedule, user: str, now: dt.datetime) -> None:
    if schedule.id not in {s.id for s in site.schedules}:
        raise ScheduleError([("id", "unknown_schedule")])
    store.save_schedule(schedule.id, schedule.name, to_dict(schedule), user, now)
    store.audit(user, "schedule.save", {"schedule": schedule.id, **to_dict(schedule)}, now)


MAX_RANGE_DAYS = 31


def add_exceptions(store: Store, first: dt.date, last: dt.date, kind: str, name: str,
                   user: str, now: dt.datetime, site: Site | None = None) -> list[int]:
    """Every day from `first` to `last` (a Tết closure is a week): all of them, or none if one
    is refused."""
    if last < first or (last - first).days >= MAX_RANGE_DAYS:
        raise ScheduleError([("until", "range_invalid")])
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    taken = {e["day"] for e in store.exceptions()}
    if site is not None:
        taken |= {d for d, _ in site.calendar.closures + site.calendar.workdays}
    if any(d in taken for d in days):
        raise ScheduleError([("day", "day_taken")])
    return [add_exception(store, d, kind, name, user, now, site) for d in days]


def add_exception(store: Store, day: dt.date, kind: str, name: str, user: str,
                  now: dt.datetime, site: Site | None = None) -> int:
    """A closure or a make-up working day; one per date (a day cannot be both)."""
    if kind not in EXCEPTION_KINDS:
        raise ScheduleError([("kind", "kind_invalid")])
    if not 2000 <= day.year <= 2100:
        raise ScheduleError([("day", "day_invalid")])
    taken = {e["day"] for e in store.exceptions()}
    if site is not None:
        taken |= {d for d, _ in site.calendar.closures + site.calendar.workdays}
    if day in taken:
        raise ScheduleError([("day", "day_taken")])
    name = clean_text(name, 100)
    eid = store.add_exception(day, kind, name, user, now)
    store.audit(user, "exception.add", {"day": day.isoformat(), "kind": kind, "name": name}, now)
    return eid


def delete_exception(store: Store, exception_id: int, user: str, now: dt.datetime) -> bool:
    """Remove a stored exception day (audited); False if there is none with that id."""
    day = next((e for e in store.exceptions() if e["id"] == exception_id), None)
    if day is None or not store.delete_exception(exception_id):
        return False
    store.audit(user, "exception.delete", {"day": day["day"].isoformat(), "kind": day["kind"],
                                           "name": day["name"]}, now)
    return True


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
    params = dataclasses.replace(site.strategies, **strategy_params.stored(store, site))
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
