"""Controller schedules on the wire: a `ControllerSchedule` (see `bems.schedules.for_controller`)
as BACnet Schedule and Calendar objects, and back.

The weekly schedule of the season in force goes to the Schedule object's weekly-schedule, the
holidays and closures to the Calendar object (calendars live in each device), and an exception
schedule makes those days unoccupied and make-up working days follow Monday's hours.
Values: 1.0 occupied, 0.0 unoccupied.
"""

from __future__ import annotations

import datetime as dt

from bacpypes3.basetypes import (
    CalendarEntry, DailySchedule, SpecialEvent, SpecialEventPeriod, TimeValue,
)
from bacpypes3.constructeddata import ArrayOf, ListOf
from bacpypes3.primitivedata import Date, ObjectIdentifier, Real, Time

from bems.fieldbus import ControllerSchedule
from bems.site import Device
from connectors.bacnet.gateway import BacnetGateway

HOLIDAY_PRIORITY = 10
MAKEUP_PRIORITY = 9


def _tv(hhmm: str, value: float) -> TimeValue:
    return TimeValue(time=Time(hhmm + ":00"), value=Real(value))


def write(gw: BacnetGateway, device: Device, p: ControllerSchedule) -> None:
    """Write a controller schedule into the device's Calendar and Schedule objects. Only the
    one writer calls this (through the field bus), so every push is in the ledger."""
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
        if entry is not None and entry.date is not None:
            d = entry.date
            day = dt.date(d[0] + 1900, d[1], d[2])
            if ev.eventPriority == MAKEUP_PRIORITY:
                makeup.append(day)
            elif ev.eventPriority == HOLIDAY_PRIORITY and not device.calendar_object:
                off.append(day)
    return ControllerSchedule(weekly, tuple(off), tuple(makeup))
