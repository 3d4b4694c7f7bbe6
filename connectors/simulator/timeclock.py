"""The building without BEMS: a local time clock, as most administrative centres run today.

AC at 24 °C from 06:30 to 18:00 and lighting from 07:00 to 18:00, Monday to Friday. A time
clock does not know public holidays, so it runs on them too.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class TimeClock:
    setpoint_c: float = 24.0
    ac_on: dt.time = dt.time(6, 30)
    ac_off: dt.time = dt.time(18, 0)
    lights_on: dt.time = dt.time(7, 0)
    lights_off: dt.time = dt.time(18, 0)
    days: tuple[int, ...] = (0, 1, 2, 3, 4)


def time_clock_state(local: dt.datetime, clock: TimeClock = TimeClock()) -> dict[str, float]:
    """What the local controllers command at a local time: setpoint, ac, mode, light, dim."""
    day_on = local.weekday() in clock.days
    t = local.time()
    ac = day_on and clock.ac_on <= t < clock.ac_off
    lights = day_on and clock.lights_on <= t < clock.lights_off
    return {"setpoint": clock.setpoint_c, "ac": 1.0 if ac else 0.0, "mode": 1.0,
            "light": 1.0 if lights else 0.0, "dim": 100.0}
