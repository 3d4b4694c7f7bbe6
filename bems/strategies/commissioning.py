"""Commissioning: a few weeks in which the rule set varies, by a fixed design, what it usually
holds still, so that the nightly fit can learn what a colder room and an earlier start cost.

Under the rule set the occupied setpoint is the same every day and the cool-down starts when
the learned rate says: the electricity fit cannot tell the cost of holding a room half a
kelvin colder from the cost of running at all. While commissioning runs, each working day
has one occupied setpoint of the legal range (25.0, 25.5, 26.0, 26.5 °C) for the whole
building — the AC is metered for the building, so a setpoint varied only between floors on
the same day would average out on the meter — and each floor its own cool-down start (0.5 to
3.5 h before work), in a design that gives every level equally often and shifts the starts
against the setpoints every four days. Everything else is the rule set's (lunch break, early
stop, lights, outdoor air, overrides).

Safety: a test setpoint is never outside the legal range, the policy floor, the zone's own
limits or half a kelvin under the comfort limit (a zone whose limits leave no legal value is
not tested); a demand-limit offset never takes it above the legal range; and a room that
cannot be held (one kelvin over its test setpoint, or at the comfort limit) is cooled to
the floor until it is back (the comfort guard). Pure: the state (start, days) is an input.

`dither`: outside commissioning, an optional small deterministic variation of the occupied
setpoint (`dither_k`, default 0), so the cost of a colder room stays identifiable in operation.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from bems.calendar import SiteCalendar
from bems.errors import BemsError
from bems.site import Site, Zone
from bems.state import COMMISSIONING

LEGAL = (25.0, 26.5)  # the occupied setpoints it tries: from the 25 °C floor (Directive 34/CT-TTg)
SETPOINTS = (25.0, 25.5, 26.0, 26.5)
LEADS_H = (0.5, 1.5, 2.5, 3.5)  # cool-down start before the first period of the day
MIN_DAYS, MAX_DAYS = 7, 28
GUARD_K = 1.0  # this far over its test setpoint, a room is cooled to the floor


@dataclass(frozen=True)
class Commissioning:
    start: dt.date  # its first local day
    days: int
    by: str = ""
    at: str = ""  # when it was started (ISO, UTC)

    @property
    def end(self) -> dt.date:
        """The first day after it."""
        return self.start + dt.timedelta(days=self.days)

    def active(self, day: dt.date) -> bool:
        return self.start <= day < self.end

    def to_json(self) -> dict:
        return {"start": self.start.isoformat(), "days": self.days, "by": self.by,
                "at": self.at}

    @classmethod
    def from_json(cls, d: object) -> "Commissioning | None":
        """What the store keeps, checked again (None: none, or not valid)."""
        if not isinstance(d, dict) or not d:
            return None
        try:
            start = dt.date.fromisoformat(str(d["start"]))
            days = d["days"]
        except (KeyError, ValueError):
            return None
        if not valid_days(days):
            return None
        return cls(start, days, str(d.get("by", ""))[:100], str(d.get("at", ""))[:40])


def valid_days(days: object) -> bool:
    """A whole number of days MIN_DAYS..MAX_DAYS (not a bool, a float or text)."""
    return isinstance(days, int) and not isinstance(days, bool) and MIN_DAYS <= days <= MAX_DAYS


@dataclass(frozen=True)
class Test:
    """One zone's settings for one commissioning day."""

    day: int  # working day of commissioning, from 1
    days: int  # working days in all
    setpoint: float
    lead_h: float
    low: float  # the legal range for this zone (its limits, the floor, the comfort limit)
    high: float


def legal_range(site: Site, zone: Zone) -> tuple[float, float] | None:
    """The occupied setpoints a test may give this zone (None: its limits leave none)."""
    p = site.strategies
    low = max(LEGAL[0], site.control.policy_min_cooling_setpoint, zone.setpoint_min)
    high = min(LEGAL[1], zone.setpoint_max, p.comfort_high - 0.5)
    return (low, high) if low <= high else None


def working_days(calendar: SiteCalendar, schedule: str, first: dt.date,
                 end: dt.date) -> list[dt.date]:
    days, d = [], first
    while d < end:
        if calendar.periods(schedule, d):
            days.append(d)
        d += dt.timedelta(days=1)
    return days


def floors(site: Site) -> list[int]:
    return sorted({z.floor for z in site.zones if z.cooling_setpoint and z.schedule})


def tests_for_day(site: Site, calendar: SiteCalendar, c: Commissioning | None,
                  day: dt.date) -> dict[str, Test]:
    """Every tested zone's settings on `day`, by zone id (empty: no commissioning that day or
    a closed day; a zone without a schedule, a setpoint or a legal value is not in it)."""
    if c is None or not c.active(day):
        return {}
    # the building's working days (any zone at work): one sequence for every floor
    worked = sorted({d for z in site.zones if z.schedule and z.cooling_setpoint
                     for d in working_days(calendar, z.schedule, c.start, c.end)})
    if day not in worked:
        return {}
    n = worked.index(day)
    all_floors = floors(site)
    out = {}
    for zone in site.zones:
        rng = legal_range(site, zone) if zone.schedule and zone.cooling_setpoint else None
        if rng is None or not calendar.periods(zone.schedule, day):
            continue
        f = all_floors.index(zone.floor)
        # the setpoint by day for the building; the start by floor, shifted against the
        # setpoint every four days so that neither follows the other
        sp = SETPOINTS[n % len(SETPOINTS)]
        lead = LEADS_H[(n + f + n // len(SETPOINTS) + 1) % len(LEADS_H)]
        out[zone.id] = Test(n + 1, len(worked), min(max(sp, rng[0]), rng[1]), lead, rng[0],
                            rng[1])
    return out


def test_for(site: Site, calendar: SiteCalendar, c: Commissioning | None, zone: Zone,
             day: dt.date) -> Test | None:
    """One zone's test on `day` (None: none)."""
    return tests_for_day(site, calendar, c, day).get(zone.id)


def dither(zone: Zone, now: dt.datetime, k: float) -> float:
    """−k, 0 or +k for this zone and half hour (local `now`): the same everywhere it is
    computed (not Python's salted hash)."""
    if k <= 0:
        return 0.0
    slot = f"{zone.id}|{now:%Y-%m-%d}|{now.hour * 2 + now.minute // 30}"
    return (hashlib.sha256(slot.encode()).digest()[0] % 3 - 1) * k


class CommissioningError(BemsError):
    """A commissioning that cannot start: `code` for the UI's message."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


def current(store) -> Commissioning | None:
    return Commissioning.from_json(store.get(COMMISSIONING))


def start(store, site: Site, first: dt.date, days: object, user: str,
          now: dt.datetime) -> Commissioning:
    """Start commissioning on local day `first` for `days` days (checked: a whole number of
    days 7..28, from today to 60 days ahead, and a site with a zone it can test); audited.
    Raises `CommissioningError` and changes nothing when a value is wrong."""
    today = now.astimezone(site.tz).date()
    if not valid_days(days):
        raise CommissioningError("days_invalid",
                                 f"days must be a whole number {MIN_DAYS}..{MAX_DAYS}, "
                                 f"got {str(days)[:40]!r}")
    if not today <= first <= today + dt.timedelta(days=60):
        raise CommissioningError("start_invalid", f"the first day must be from {today} to "
                                 f"{today + dt.timedelta(days=60)}, got {first}")
    if not any(legal_range(site, z) for z in site.zones if z.cooling_setpoint and z.schedule):
        raise CommissioningError("no_zone", "no zone has a setpoint, a schedule and limits "
                                 f"that allow {LEGAL[0]:g}..{LEGAL[1]:g} °C")
    c = Commissioning(first, days, user, now.astimezone(dt.timezone.utc).isoformat())
    store.put(COMMISSIONING, c.to_json())
    store.audit(user, "commissioning.start", c.to_json(), now)
    return c


def stop(store, user: str, now: dt.datetime) -> Commissioning | None:
    """End commissioning now (the rule set or the predictive strategy decides again)."""
    c = current(store)
    store.put(COMMISSIONING, {})
    if c is not None:
        store.audit(user, "commissioning.stop", c.to_json(), now)
    return c


def table(site: Site, calendar: SiteCalendar, c: Commissioning) -> list[dict]:
    """Each working day's tests, a floor's as its first tested zone's: [{"day", "floors":
    [(floor, Test)]}] (what the status and the strategies screen show)."""
    rows = []
    day = c.start
    while day < c.end:
        tests = tests_for_day(site, calendar, c, day)
        per_floor = []
        for f in floors(site):
            t = next((tests[z.id] for z in site.zones if z.floor == f and z.id in tests), None)
            if t is not None:
                per_floor.append((f, t))
        if per_floor:
            rows.append({"day": day, "floors": per_floor})
        day += dt.timedelta(days=1)
    return rows
