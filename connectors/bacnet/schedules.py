"""Schedules on controllers that schedule locally: BACnet Schedule and Calendar objects.

BEMS is the place where schedules are edited; a controller that keeps its own schedule (so it
runs the building sensibly when BEMS is away) gets a copy: the weekly schedule of the season in
force, the year's holidays and closures in its Calendar object (calendars live in each device),
and an exception schedule that makes those days unoccupied and make-up working days follow the
Monday hours. Values: 1.0 occupied, 0.0 unoccupied.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from bacpypes3.basetypes import (
    CalendarEntry, DailySchedule, SpecialEvent, SpecialEventPeriod, TimeValue,
)
from bacpypes3.constructeddata import ArrayOf, ListOf
from bacpypes3.primitivedata import Date, ObjectIdentifier, Real, Time

from bems.calendar import SiteCalendar
from bems.site import Device, Period, Site
from connectors.bacnet.gateway import BacnetError, BacnetGateway

HOLIDAY_PRIORITY = 10
MAKEUP_PRIORITY = 9


@dataclass(frozen=True)
class ControllerSchedule:
    weekly: tuple[tuple[tuple[str, float], ...], ...]  # Monday first: ((HH:MM, value), ...)
    off_days: tuple[dt.date, ...]  # the calendar's dates
    makeup_days: tuple[dt.date, ...]


def _time_values(periods: list[Period]) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for p in sorted(periods, key=lambda p: p.start):
        out.append((p.start.strftime("%H:%M"), 1.0))
        if p.end != dt.time(0):
            out.append((p.end.strftime("%H:%M"), 0.0))
    return out


def plan(site: Site, device: Device, today: dt.date) -> ControllerSchedule:
    """What a controller should hold on `today`: this season's week, this and next year's
    holidays, closures and make-up days."""
    if not device.schedule:
        raise BacnetError(f"device {device.id} does not schedule locally")
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


def _tv(hhmm: str, value: float) -> TimeValue:
    return TimeValue(time=Time(hhmm + ":00"), value=Real(value))


def push(gw: BacnetGateway, site: Site, device: Device, today: dt.date) -> ControllerSchedule:
    """Write the plan into the device's Calendar and Schedule objects."""
    p = plan(site, device, today)
    addr = device.address
    week = ArrayOf(DailySchedule, _length=7)(
        [DailySchedule(daySchedule=[_tv(t, v) for t, v in day]) for day in p.weekly])
    events = []
    if device.calendar_object:
        dates = ListOf(CalendarEntry)([CalendarEntry(date=Date(d.isoformat())) for d in p.off_days])
        gw.call(gw.awrite(addr, device.calendar_object, dates, None, prop="date-list"), 10)
        events.append(SpecialEvent(
            period=SpecialEventPeriod(calendarReference=ObjectIdentifier(device.calendar_object)),
            listOfTimeValues=[_tv("00:00", 0.0)], eventPriority=HOLIDAY_PRIORITY))
    else:
        events += [SpecialEvent(period=SpecialEventPeriod(calendarEntry=CalendarEntry(
            date=Date(d.isoformat()))), listOfTimeValues=[_tv("00:00", 0.0)],
            eventPriority=HOLIDAY_PRIORITY) for d in p.off_days]
    monday = [_tv(t, v) for t, v in p.weekly[0]]
    events += [SpecialEvent(period=SpecialEventPeriod(calendarEntry=CalendarEntry(
        date=Date(d.isoformat()))), listOfTimeValues=monday, eventPriority=MAKEUP_PRIORITY)
        for d in p.makeup_days]
    gw.call(gw.awrite(addr, device.schedule_object, week, None, prop="weekly-schedule"), 10)
    gw.call(gw.awrite(addr, device.schedule_object, ArrayOf(SpecialEvent)(events), None,
                      prop="exception-schedule"), 10)
    return p


def read(gw: BacnetGateway, device: Device) -> ControllerSchedule:
    """What the controller holds now, in the same shape as `plan`."""
    addr = device.address
    week = gw.read(addr, device.schedule_object, "weekly-schedule", timeout=device.timeout_s)
    weekly = tuple(tuple((f"{tv.time[0]:02d}:{tv.time[1]:02d}", float(tv.value.get_value()))
                         for tv in day.daySchedule) for day in week)
    off: list[dt.date] = []
    if device.calendar_object:
        for entry in gw.read(addr, device.calendar_object, "date-list",
                             timeout=device.timeout_s):
            if entry.date is not None:
                d = entry.date
                off.append(dt.date(d[0] + 1900, d[1], d[2]))
    makeup: list[dt.date] = []
    for ev in gw.read(addr, device.schedule_object, "exception-schedule",
                      timeout=device.timeout_s):
        entry = ev.period.calendarEntry
        if entry is not None and entry.date is not None and ev.eventPriority == MAKEUP_PRIORITY:
            d = entry.date
            makeup.append(dt.date(d[0] + 1900, d[1], d[2]))
    return ControllerSchedule(weekly, tuple(off), tuple(makeup))
