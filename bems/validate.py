"""One validator per structure, for the site file, the UI and the CLI alike.

Each validator takes plain data (from TOML, a form, JSON) and returns the value it describes and
a list of problems. A problem is (path, code, message): the path inside the structure (a tuple
of keys and indexes), a code the UI translates, and the message in English that the site-file
checker prints. A structure with any problem is not used.

Here: time periods (schedules and tariffs) and schedules with seasons. Strategy parameters are
validated where they are defined (`bems.strategies.params`), overrides in `bems.overrides`.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from bems.site import WEEKDAYS, Period, Schedule, Season, TouPeriod

Path = tuple
Problem = tuple[Path, str, str]

MESSAGES = {
    "time_invalid": "must be a time HH:MM (00:00 to 24:00)",
    "end_before_start": "must be after the start",
    "overlap": "overlaps another period on the same day",
    "no_days": "days must be like 'mon-fri', 'sat,sun' or a list of day names",
    "month_day_invalid": "must be a month-day MM-DD",
    "no_seasons": "needs at least one season",
    "no_periods": "a season needs at least one period (a closed day is an exception day)",
    "start_invalid": "a period cannot start at 24:00",
    "seasons_overlap": "seasons overlap",
    "seasons_gap": "the seasons leave days of the year without a schedule",
    "not_a_table": "must be a table",
    "not_a_list": "must be a list",
    "unknown_field": "unknown field",
    "missing": "required field is missing",
    "band_invalid": "must be one of peak, normal, offpeak",
    "text_invalid": "must be text",
}


def field_name(path: Path) -> str:
    """("seasons", 0, "periods", 1, "end") → "seasons[0].periods[1].end"."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def problem(path: Path, code: str, detail: str = "") -> Problem:
    return (path, code, MESSAGES.get(code, code) + (f" ({detail})" if detail else ""))


def time_of_day(v: Any) -> dt.time | None:
    """HH:MM (or a TOML time) → time; "24:00" is the end of the day, stored as 00:00."""
    if isinstance(v, dt.time):
        return v
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", v.strip()) if isinstance(v, str) else None
    if m is None:
        return None
    h, mi = int(m.group(1)), int(m.group(2))
    if (h, mi) == (24, 0):
        return dt.time(0)
    return dt.time(h, mi) if h < 24 and mi < 60 else None


def weekdays(v: Any) -> tuple[int, ...] | None:
    """'mon-fri', 'sat', 'mon,wed,fri' or a list of day names → weekday numbers (0 = Monday);
    None if anything is not a day, or no day is given."""
    parts = v if isinstance(v, (list, tuple)) else str(v).split(",")
    out: set[int] = set()
    for part in parts:
        part = str(part).strip().lower()
        a, dash, b = part.partition("-")
        if dash and a in WEEKDAYS and b in WEEKDAYS and WEEKDAYS.index(a) <= WEEKDAYS.index(b):
            out.update(range(WEEKDAYS.index(a), WEEKDAYS.index(b) + 1))
        elif part in WEEKDAYS:
            out.add(WEEKDAYS.index(part))
        else:
            return None
    return tuple(sorted(out)) or None


def month_day(v: Any) -> tuple[int, int] | None:
    m = re.fullmatch(r"(\d{2})-(\d{2})", v) if isinstance(v, str) else None
    if m is None:
        return None
    try:
        dt.date(2024, int(m.group(1)), int(m.group(2)))  # a leap year: 02-29 is a day
    except ValueError:
        return None
    return int(m.group(1)), int(m.group(2))


def _table(d: Any, path: Path, allowed: tuple[str, ...], problems: list) -> dict:
    if not isinstance(d, dict):
        problems.append(problem(path, "not_a_table"))
        return {}
    for k in d:
        if k not in allowed:
            problems.append(problem(path + (k,), "unknown_field",
                                    "expected one of: " + ", ".join(allowed)))
    return d


def periods(items: Any, path: Path = (), bands: bool = False
            ) -> tuple[list[Period | TouPeriod], list[Problem]]:
    """A list of {days, start, end} (and band, for tariffs): each must end after it starts
    (an end of 24:00 is the end of the day), and two periods on one day must not overlap."""
    problems: list[Problem] = []
    if not isinstance(items, (list, tuple)):
        return [], [problem(path, "not_a_list")]
    out: list = []
    spans: list[tuple[int, int, int, int]] = []  # (day, start min, end min, index)
    for i, it in enumerate(items):
        q = path + (i,)
        allowed = ("days", "start", "end") + (("band",) if bands else ())
        it = _table(it, q, allowed, problems)
        if not it:
            continue
        bad = len(problems)
        days = weekdays(it["days"]) if "days" in it else None
        if days is None:
            problems.append(problem(q + ("days",), "missing" if "days" not in it else "no_days",
                                    "" if "days" not in it else repr(it["days"])))
        start, end = time_of_day(it.get("start")), time_of_day(it.get("end"))
        for key, t in (("start", start), ("end", end)):
            if t is None:
                problems.append(problem(q + (key,), "time_invalid", repr(it.get(key))[:40]))
        if start == dt.time(0) and str(it.get("start", "")).strip() == "24:00":
            problems.append(problem(q + ("start",), "start_invalid"))
            start = None
        if start is not None and end is not None and end != dt.time(0) and end <= start:
            problems.append(problem(q + ("end",), "end_before_start",
                                    f"{end:%H:%M} is not after {start:%H:%M}"))
        band = it.get("band", "normal")
        if bands and band not in ("peak", "normal", "offpeak"):
            problems.append(problem(q + ("band",), "band_invalid", repr(band)))
        if len(problems) > bad:
            continue
        out.append(TouPeriod(band, days, start, end) if bands else Period(days, start, end))
        a = start.hour * 60 + start.minute
        b = end.hour * 60 + end.minute if end != dt.time(0) else 24 * 60
        spans += [(d, a, b, i) for d in days]
    # overlaps: sorted by day and start, each period against the latest end before it
    spans.sort()
    reported: set[int] = set()
    last_day, last_end, last_i = None, -1, -1
    for d, s, e, i in spans:
        if d == last_day and s < last_end and i not in reported:
            reported.add(i)
            problems.append(problem(path + (i,), "overlap", f"period {last_i + 1}"))
        if d != last_day or e > last_end:
            last_day, last_end, last_i = d, e, i
    return out, problems


def schedule(schedule_id: str, d: Any, path: Path = ()) -> tuple[Schedule | None, list[Problem]]:
    """A schedule: a name and one or more seasons, each {name, from, to, periods}."""
    problems: list[Problem] = []
    d = _table(d, path, ("id", "name", "seasons"), problems)
    raw = d.get("seasons")
    if not isinstance(raw, (list, tuple)) or not raw:
        problems.append(problem(path + ("seasons",), "no_seasons"))
        raw = []
    name = d.get("name", "")
    if not isinstance(name, str):
        problems.append(problem(path + ("name",), "text_invalid"))
    seasons = []
    for i, s in enumerate(raw):
        q = path + ("seasons", i)
        s = _table(s, q, ("name", "from", "to", "periods"), problems)
        ps, more = periods(s.get("periods", []), q + ("periods",))
        problems += more
        if not more and not ps:
            problems.append(problem(q + ("periods",), "no_periods"))
        md = {}
        for key, default in (("from", "01-01"), ("to", "12-31")):
            md[key] = month_day(s.get(key, default))
            if md[key] is None:
                problems.append(problem(q + (key,), "month_day_invalid", repr(s.get(key))))
        seasons.append(Season(str(s.get("name", f"season {i + 1}")), md["from"] or (1, 1),
                              md["to"] or (12, 31), tuple(ps)))
    if not problems:
        problems += _year_covered(seasons, path)
    if problems:
        return None, problems
    return Schedule(schedule_id, name or schedule_id, tuple(seasons)), []


def _year_covered(seasons: list[Season], path: Path) -> list[Problem]:
    """Every day of the year (a leap year, so 29 February too) in exactly one season."""
    owner: dict[tuple[int, int], int] = {}
    day = dt.date(2024, 1, 1)
    while day.year == 2024:
        md = (day.month, day.day)
        for i, s in enumerate(seasons):
            if s.contains(day):
                if md in owner:
                    return [problem(path + ("seasons", i), "seasons_overlap",
                                    f"{day:%m-%d} is in season {owner[md] + 1} and {i + 1}")]
                owner[md] = i
        if md not in owner:
            return [problem(path + ("seasons",), "seasons_gap", f"{day:%m-%d} has none")]
        day += dt.timedelta(days=1)
    return []
