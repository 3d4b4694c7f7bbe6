"""`--fake-now MOMENT`: the whole test session runs with the wall clock moved to MOMENT.

Time is an input: no test may depend on the date, the hour or the weekday it happens to run at.
CI proves it by running the suite again at adverse moments (just before the site's midnight,
the 1st and the 9th of a month, a Sunday, Tết): `time_machine.travel(MOMENT, tick=True)` for
the session, so the clock starts there and runs on. Every thread of the test process sees it
(datetime.now, time.time, date.today); `time.monotonic` is real, and so is every subprocess's
clock (Mosquitto, PostgreSQL, a `bems` command started as a process).

MOMENT is ISO 8601 with an offset (`2027-01-31T23:58+07:00`) or without one (then the site's
zone, Asia/Ho_Chi_Minh).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

SITE_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
_travel: list = []


def parse_moment(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise pytest.UsageError(f"--fake-now {text!r}: expected ISO 8601, e.g. "
                                "2027-01-31T23:58+07:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=SITE_TZ)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fake-now", default=None, metavar="MOMENT",
                     help="run the session with the wall clock moved to MOMENT (ISO 8601; "
                          "the site's zone when it has no offset); the clock ticks on")


def pytest_configure(config: pytest.Config) -> None:
    text = config.getoption("--fake-now", default=None)
    if not text:
        return
    import time_machine

    traveller = time_machine.travel(parse_moment(text), tick=True)
    traveller.start()
    _travel.append(traveller)


def pytest_unconfigure(config: pytest.Config) -> None:
    while _travel:
        _travel.pop().stop()


def pytest_report_header(config: pytest.Config) -> str | None:
    text = config.getoption("--fake-now", default=None)
    if not text:
        return None
    moment = parse_moment(text)
    local = moment.astimezone(SITE_TZ)
    return (f"fake now: {moment.isoformat()} (site time {local:%A %Y-%m-%d %H:%M}); "
            "the clock ticks on from there")
