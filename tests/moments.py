"""Adverse moments for CI's runs with the wall clock moved (`--fake-now`), printed one a line.

Time is an input: `.ci/run` runs the fast tier and the date-sensitive modules again at moments
where a test that leans on the wall clock breaks. They lie ahead of the real clock (a browser
keeps its own, real clock: a session cookie stamped in the past would expire at once), and are
worked out from today, so CI meets them on any day:

- the last day of next month at 23:58:30 in Hải Phòng: the run crosses the site's midnight
  into the 1st of a month (and the UTC date differs from the local one all evening);
- the next 9th of a month that is a Sunday, at 16:40: a closed day, late in the afternoon,
  and "last month" far behind (the report task once failed from the 4th on);
- the first day of the next Tết, 00:00:30: just after midnight, on a public holiday.

`python -m tests.moments` prints them as ISO 8601 with the site's offset.
"""

from __future__ import annotations

import calendar
import datetime as dt
from zoneinfo import ZoneInfo

import holidays

SITE_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def adverse_moments(now: dt.datetime | None = None) -> list[dt.datetime]:
    now = (now or dt.datetime.now(SITE_TZ)).astimezone(SITE_TZ)
    today = now.date()
    y, m = (today.year, today.month + 1) if today.month < 12 else (today.year + 1, 1)
    month_end = dt.date(y, m, calendar.monthrange(y, m)[1])
    out = [dt.datetime.combine(month_end, dt.time(23, 58, 30), SITE_TZ)]
    day = dt.date(today.year, today.month, 9)
    while day <= today or day.weekday() != 6:
        y, m = (day.year, day.month + 1) if day.month < 12 else (day.year + 1, 1)
        day = dt.date(y, m, 9)
    out.append(dt.datetime.combine(day, dt.time(16, 40), SITE_TZ))
    tet = min(d for d, name in holidays.country_holidays(
        "VN", years=[today.year, today.year + 1]).items()
        if name == "Lunar New Year" and d > today)
    out.append(dt.datetime.combine(tet, dt.time(0, 0, 30), SITE_TZ))
    return out


if __name__ == "__main__":
    for moment in adverse_moments():
        print(moment.isoformat())
