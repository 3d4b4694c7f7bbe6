"""Working days and occupied periods: VN public holidays and the government's make-up working
Saturdays (both from the `holidays` package), the agency's own closures and make-up days."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import holidays

from bems.site import Period, Schedule, Site


@lru_cache(maxsize=64)
def _public_holidays(country: str, year: int) -> dict[dt.date, str]:
    return dict(holidays.country_holidays(country, years=[year]).items())


@lru_cache(maxsize=64)
def makeup_workdays(country: str, year: int) -> dict[dt.date, str]:
    """The government's make-up working Saturdays of a year, as the `holidays` package knows
    them (Vietnam moves a day off next to a holiday and works a Saturday for it), each named
    after the day off it pays for."""
    h = holidays.country_holidays(country, years=[year])
    out: dict[dt.date, str] = {}
    for day in sorted(getattr(h, "weekend_workdays", ()) or ()):
        if day.year != year:
            continue
        paid = next((d for d, name in h.items() if day.strftime("%m/%d/%Y") in name), None)
        out[day] = (f"Make-up working day for {paid:%d/%m/%Y}" if paid else
                    "Make-up working day")
    return out


class SiteCalendar:
    """Answers, for a local date, what kind of day it is and which periods are occupied."""

    def __init__(self, site: Site):
        self.site = site
        self.closures = dict(site.calendar.closures)
        self.workdays = dict(site.calendar.workdays)
        self._periods: dict[tuple[int, dt.date], tuple[Schedule, tuple[Period, ...]]] = {}

    def day_kind(self, day: dt.date) -> tuple[str, str]:
        """('workday'|'makeup'|'weekend'|'holiday'|'closure', name)."""
        if day in self.workdays:
            return "makeup", self.workdays[day]
        if day in self.closures:
            return "closure", self.closures[day]
        makeup = makeup_workdays(self.site.calendar.country, day.year).get(day)
        if makeup:
            return "makeup", makeup
        name = _public_holidays(self.site.calendar.country, day.year).get(day)
        if name:
            return "holiday", name
        return ("weekend", "") if day.weekday() >= 5 else ("workday", "")

    def is_workday(self, day: dt.date) -> bool:
        return self.day_kind(day)[0] in ("workday", "makeup")

    def periods(self, schedule: Schedule | str, day: dt.date) -> list[Period]:
        """The occupied periods of a schedule on a local date (none on holidays and closures;
        a make-up working day follows the Monday periods). Kept per schedule and day for the
        calendar's life (the strategies ask the same question for every zone and minute)."""
        if isinstance(schedule, str):
            schedule = self.site.schedule(schedule)
        known = self._periods.get((id(schedule), day))
        if known is not None and known[0] is schedule:
            return list(known[1])
        found = self._periods_of(schedule, day)
        self._periods[(id(schedule), day)] = (schedule, tuple(found))
        return found

    def _periods_of(self, schedule: Schedule, day: dt.date) -> list[Period]:
        kind, _ = self.day_kind(day)
        if kind in ("holiday", "closure"):
            return []
        season = schedule.season_for(day)
        if season is None:
            return []
        weekday = 0 if kind == "makeup" else day.weekday()
        return sorted((p for p in season.periods if weekday in p.days), key=lambda p: p.start)

    def occupied(self, schedule: Schedule | str, local: dt.datetime) -> bool:
        t = local.time()
        return any(p.start <= t < (p.end if p.end != dt.time(0) else dt.time.max)
                   for p in self.periods(schedule, local.date()))


def main_schedule(site: Site) -> str:
    """The schedule most zones follow: the building works when it has periods (one desk
    open on Saturday mornings does not make Saturday a working day)."""
    schedules = [z.schedule for z in site.zones if z.schedule]
    return max(sorted(set(schedules)), key=schedules.count) if schedules else ""
