"""What the portfolio UI and reports read from the portfolio store. Every figure comes from the
rollups (`energy_daily`) and the figures sites send (`monthly`, `faults`, `ledger_days`), so a
ranking of hundreds of centres over two years answers in milliseconds, not by scanning
readings."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg

YEAR = 365
FULL_YEAR_DAYS = 300  # a year with fewer days of data is shown, but marked incomplete


@dataclass
class Centre:
    id: str
    name: str
    organisation: str
    floor_area_m2: float
    staff: int
    kwh: float | None  # the last 365 days to `end`, main meter
    days: int  # days with data in that window
    kwh_last_year: float | None  # the 365 days before
    days_last_year: int
    open_faults: int
    faults_vnd_per_day: float
    hours_below_25: float  # zone-hours cooled below the floor while occupied, last 12 months
    writes_below_floor: int  # setpoint writes under the floor, last 365 days (should be 0)
    vnd_per_kwh: float | None
    last_seen: dt.datetime | None
    last_reading: dt.datetime | None
    gaps: int = 0  # sequence numbers missing after what the city confirmed (lost so far)
    quarantined: int = 0  # its messages the city could not take, last 30 days

    @property
    def annual_kwh(self) -> float | None:
        """The window's energy scaled to a year by its days with data."""
        if self.kwh is None or self.days == 0:
            return None
        return self.kwh * YEAR / self.days

    @property
    def eui(self) -> float | None:
        a = self.annual_kwh
        return a / self.floor_area_m2 if a is not None and self.floor_area_m2 > 0 else None

    @property
    def kwh_per_staff(self) -> float | None:
        a = self.annual_kwh
        return a / self.staff if a is not None and self.staff > 0 else None

    @property
    def complete(self) -> bool:
        return self.days >= FULL_YEAR_DAYS

    @property
    def change(self) -> float | None:
        """Change against the year before, per day with data (−0.08 = 8 % less)."""
        if not (self.kwh and self.kwh_last_year and self.days and self.days_last_year):
            return None
        return (self.kwh / self.days) / (self.kwh_last_year / self.days_last_year) - 1

    @property
    def savings_kwh(self) -> float | None:
        """Against last year, not weather-normalised: what a year at last year's daily rate
        would have used, less this year's (positive = saved)."""
        if self.change is None or self.annual_kwh is None:
            return None
        return -self.change / (1 + self.change) * self.annual_kwh

    @property
    def savings_vnd(self) -> float | None:
        s = self.savings_kwh
        return s * self.vnd_per_kwh if s is not None and self.vnd_per_kwh else None

    @property
    def compliant(self) -> bool:
        return self.hours_below_25 <= 0 and self.writes_below_floor == 0

    def age_h(self, now: dt.datetime) -> float | None:
        t = self.last_reading or self.last_seen
        return (now - t).total_seconds() / 3600 if t else None


RANKING_SQL = """
WITH cur AS (
    SELECT d.site, sum(d.kwh) AS kwh, count(*) AS days FROM energy_daily d
    JOIN sites s ON s.id = d.site AND d.meter = s.main_meter
    WHERE d.day > %(end)s::date - 365 AND d.day <= %(end)s::date GROUP BY d.site),
prev AS (
    SELECT d.site, sum(d.kwh) AS kwh, count(*) AS days FROM energy_daily d
    JOIN sites s ON s.id = d.site AND d.meter = s.main_meter
    WHERE d.day > %(end)s::date - 730 AND d.day <= %(end)s::date - 365 GROUP BY d.site),
f AS (SELECT site, count(*) AS n, sum(vnd_per_day) AS vnd FROM faults
      WHERE status <> 'closed' GROUP BY site),
m AS (SELECT site, sum(hours_below_25) AS h, sum(vnd) / nullif(sum(kwh), 0) AS price
      FROM monthly WHERE month > to_char(%(end)s::date - 365, 'YYYY-MM')
      AND month <= to_char(%(end)s::date, 'YYYY-MM') GROUP BY site),
l AS (SELECT site, sum(below_floor) AS n FROM ledger_days
      WHERE day > %(end)s::date - 365 AND day <= %(end)s::date GROUP BY site),
g AS (SELECT x.site, sum(x.g) AS n FROM (
        SELECT m.site, max(m.seq) - coalesce(c.upto, 0) - count(*) AS g FROM messages m
        LEFT JOIN confirmed c ON c.site = m.site AND c.box = m.box
        WHERE m.seq > coalesce(c.upto, 0) GROUP BY m.site, m.box, c.upto) x GROUP BY x.site),
q AS (SELECT site, count(*) AS n FROM quarantine
      WHERE received > clock_timestamp() - interval '30 days' GROUP BY site)
SELECT s.id, s.name, s.organisation, s.floor_area_m2, s.staff, cur.kwh, coalesce(cur.days, 0),
       prev.kwh, coalesce(prev.days, 0), coalesce(f.n, 0), coalesce(f.vnd, 0),
       coalesce(m.h, 0), coalesce(l.n, 0), m.price, s.last_seen, s.last_reading,
       coalesce(g.n, 0), coalesce(q.n, 0)
FROM sites s LEFT JOIN cur ON cur.site = s.id LEFT JOIN prev ON prev.site = s.id
LEFT JOIN f ON f.site = s.id LEFT JOIN m ON m.site = s.id LEFT JOIN l ON l.site = s.id
LEFT JOIN g ON g.site = s.id LEFT JOIN q ON q.site = s.id
"""

SORTS = {"eui": lambda c: (c.eui is None, -(c.eui or 0)),
         "kwh_per_staff": lambda c: (c.kwh_per_staff is None, -(c.kwh_per_staff or 0)),
         "change": lambda c: (c.change is None, -(c.change or 0)),
         "savings": lambda c: (c.savings_kwh is None, -(c.savings_kwh or 0)),
         "faults": lambda c: (-c.faults_vnd_per_day, -c.open_faults),
         "compliance": lambda c: (-c.hours_below_25, -c.writes_below_floor),
         "freshness": lambda c: (c.last_reading is not None, c.last_reading or c.last_seen
                                 or dt.datetime.min.replace(tzinfo=dt.timezone.utc)),
         "gaps": lambda c: (-c.gaps, -c.quarantined),
         "name": lambda c: (c.name.casefold(),)}


class CityQueries:
    """The screens' queries over a pool of connections (psycopg_pool): a page does not pay
    for a new PostgreSQL connection per query."""

    def __init__(self, dsn: str, max_size: int = 8):
        from psycopg_pool import ConnectionPool

        self.dsn = dsn
        self.pool = ConnectionPool(dsn, min_size=1, max_size=max_size,
                                   kwargs={"autocommit": True}, open=True,
                                   name="city-queries")

    def close(self) -> None:
        self.pool.close()

    def _conn(self):
        return self.pool.connection()

    def latest_day(self) -> dt.date | None:
        with self._conn() as c:
            return c.execute("SELECT max(day) FROM energy_daily").fetchone()[0]

    def ranking(self, end: dt.date, sort: str = "eui") -> list[Centre]:
        """Every centre, the most wasteful first by `sort` (one of SORTS)."""
        with self._conn() as c:
            rows = c.execute(RANKING_SQL, {"end": end}).fetchall()
        out = [Centre(*r) for r in rows]
        out.sort(key=SORTS.get(sort, SORTS["eui"]))
        return out

    def centre(self, site: str) -> dict | None:
        with self._conn() as c:
            row = c.execute("SELECT id, name, organisation, floor_area_m2, staff, timezone, "
                            "meters, main_meter, last_seen, last_reading, last_seq, points "
                            "FROM sites WHERE id = %s", [site]).fetchone()
            if row is None:
                return None
            keys = ("id", "name", "organisation", "floor_area_m2", "staff", "timezone",
                    "meters", "main_meter", "last_seen", "last_reading", "last_seq", "points")
            out = dict(zip(keys, row))
            out["monthly"] = c.execute(
                "SELECT month, kwh, kwh_ac, vnd, peak_kw, coverage, hours_below_25 FROM monthly "
                "WHERE site = %s ORDER BY month DESC LIMIT 24", [site]).fetchall()
            out["faults"] = c.execute(
                "SELECT rule, target, status, first, last, kwh_per_day, vnd_per_day FROM faults "
                "WHERE site = %s AND status <> 'closed' ORDER BY vnd_per_day DESC LIMIT 50",
                [site]).fetchall()
            out["ledger"] = c.execute(
                "SELECT coalesce(sum(writes), 0), coalesce(sum(failed), 0), "
                "coalesce(sum(below_floor), 0) FROM ledger_days WHERE site = %s AND "
                "day > current_date - 30", [site]).fetchone()
        return out

    def load(self, site: str, meter: str, start: dt.datetime, end: dt.datetime,
             ) -> tuple[list, list]:
        """Measured and forecast mean kW per 15 minutes in [start, end)."""
        with self._conn() as c:
            measured = c.execute("SELECT t, kwh * 4 FROM energy WHERE site = %s AND meter = %s "
                                 "AND t >= %s AND t < %s ORDER BY t",
                                 [site, meter, start, end]).fetchall()
            forecast = c.execute("SELECT t, kw, model FROM forecasts WHERE site = %s AND "
                                 "meter = %s AND t >= %s AND t < %s ORDER BY t",
                                 [site, meter, start, end]).fetchall()
        return measured, forecast

    def months(self, month: str) -> list[tuple]:
        """Each centre's figures for `month` (YYYY-MM) and the same month a year before."""
        y, m = int(month[:4]), int(month[5:7])
        before = f"{y - 1:04d}-{m:02d}"
        with self._conn() as c:
            return c.execute(
                "SELECT s.id, s.name, s.floor_area_m2, s.staff, a.kwh, a.vnd, a.peak_kw, "
                "a.coverage, a.hours_below_25, b.kwh FROM sites s "
                "LEFT JOIN monthly a ON a.site = s.id AND a.month = %s "
                "LEFT JOIN monthly b ON b.site = s.id AND b.month = %s ORDER BY s.name",
                [month, before]).fetchall()

    def year(self, year: int) -> list[tuple]:
        """(id, name, organisation, floor area, staff, [kWh per month 1..12])."""
        with self._conn() as c:
            sites = c.execute("SELECT id, name, organisation, floor_area_m2, staff FROM sites "
                              "ORDER BY name").fetchall()
            rows = c.execute("SELECT site, month, kwh FROM monthly WHERE month LIKE %s",
                             [f"{year:04d}-%"]).fetchall()
        by = {(s, int(m[5:7])): k for s, m, k in rows}
        return [(i, n, o, a, st, [by.get((i, mm)) for mm in range(1, 13)])
                for i, n, o, a, st in sites]

    def month_list(self) -> list[str]:
        with self._conn() as c:
            return [r[0] for r in c.execute("SELECT DISTINCT month FROM monthly "
                                            "ORDER BY month DESC LIMIT 60")]

    def ingest_health(self) -> dict:
        with self._conn() as c:
            dropped = dict(c.execute("SELECT code, n FROM dropped").fetchall())
            n_sites, = c.execute("SELECT count(*) FROM sites").fetchone()
            quarantined, = c.execute("SELECT count(*) FROM quarantine").fetchone()
        return {"dropped": dropped, "sites": n_sites, "quarantined": quarantined}
