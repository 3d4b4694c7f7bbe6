"""The portfolio store on PostgreSQL: the only module of `city` with SQL for writing.

Tables:
- `sites` — the registry (from each site's file: floor area, staff, meter tree), with the
  newest sequence number and time seen;
- `messages` (site, box, seq) — every message taken, so a replay is recognised at once and a gap in
  the sequence is a lost message;
- `confirmed` (site, box) → upto — everything of that outbox up to `upto` is stored (no gap):
  what the city confirms to the site;
- `readings` (site, point, t, value) — partitioned by month on t; the primary key
  (site, point, t) is the deduplication;
- `energy` (site, meter, t, kwh) — 15-minute energy, partitioned by year; `energy_daily` is its
  rollup per local day, refreshed for the days a batch touched;
- `monthly`, `faults`, `ledger_days` — the figures sites send, last write wins;
- `forecasts` — the fleet's day-ahead forecasts per meter (mean kW of each hour);
- `dropped` — messages refused, counted by reason;
- `quarantine` — messages the city could not take (the schema refused them, a time stamp from
  the future, or PostgreSQL refused what they carry), with the reason: recorded in `messages`
  too, so they count as handled and never hold up a centre's confirmations.

`messages` keeps the rows above each outbox's confirmed mark, and the confirmed ones for an
hour: older confirmed rows are pruned (`prune_messages`); a replay of one is recognised by the
mark itself (a sequence number at or below it is already stored).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Iterable

import psycopg

SCHEMA_VERSION = 1

DDL = """
CREATE TABLE IF NOT EXISTS schema_version (version int PRIMARY KEY);
CREATE TABLE IF NOT EXISTS sites (
    id text PRIMARY KEY, name text NOT NULL, timezone text NOT NULL DEFAULT 'Asia/Ho_Chi_Minh',
    organisation text NOT NULL DEFAULT '', floor_area_m2 double precision NOT NULL,
    staff integer NOT NULL DEFAULT 0, points integer NOT NULL DEFAULT 0,
    meters jsonb NOT NULL DEFAULT '[]', main_meter text,
    registered timestamptz NOT NULL DEFAULT now(), last_seen timestamptz,
    last_seq bigint NOT NULL DEFAULT 0, last_reading timestamptz);
CREATE TABLE IF NOT EXISTS messages (
    site text NOT NULL, box text NOT NULL, seq bigint NOT NULL, kind text NOT NULL,
    sent timestamptz NOT NULL, received timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (site, box, seq));
CREATE TABLE IF NOT EXISTS confirmed (
    site text NOT NULL, box text NOT NULL, upto bigint NOT NULL, PRIMARY KEY (site, box));
CREATE TABLE IF NOT EXISTS readings (
    site text NOT NULL, point text NOT NULL, t timestamptz NOT NULL, value double precision,
    PRIMARY KEY (site, point, t)) PARTITION BY RANGE (t);
CREATE TABLE IF NOT EXISTS energy (
    site text NOT NULL, meter text NOT NULL, t timestamptz NOT NULL, kwh double precision,
    PRIMARY KEY (site, meter, t)) PARTITION BY RANGE (t);
CREATE TABLE IF NOT EXISTS energy_daily (
    site text NOT NULL, meter text NOT NULL, day date NOT NULL, kwh double precision NOT NULL,
    n integer NOT NULL, PRIMARY KEY (site, meter, day));
CREATE INDEX IF NOT EXISTS energy_daily_day ON energy_daily (day, site);
CREATE TABLE IF NOT EXISTS monthly (
    site text NOT NULL, month text NOT NULL, kwh double precision, kwh_ac double precision,
    vnd double precision, peak_kw double precision, coverage double precision,
    hours_below_25 double precision, PRIMARY KEY (site, month));
CREATE TABLE IF NOT EXISTS faults (
    site text NOT NULL, id bigint NOT NULL, rule text NOT NULL, target text NOT NULL,
    status text NOT NULL, first timestamptz NOT NULL, last timestamptz NOT NULL,
    kwh_per_day double precision NOT NULL, vnd_per_day double precision NOT NULL,
    PRIMARY KEY (site, id));
CREATE INDEX IF NOT EXISTS faults_open ON faults (site) WHERE status <> 'closed';
CREATE TABLE IF NOT EXISTS ledger_days (
    site text NOT NULL, day date NOT NULL, writes integer, failed integer, released integer,
    held integer, below_floor integer, PRIMARY KEY (site, day));
CREATE TABLE IF NOT EXISTS forecasts (
    site text NOT NULL, meter text NOT NULL, t timestamptz NOT NULL, kw double precision,
    model text, issued timestamptz NOT NULL, PRIMARY KEY (site, meter, t));
CREATE TABLE IF NOT EXISTS dropped (code text PRIMARY KEY, n bigint NOT NULL DEFAULT 0,
    last timestamptz, last_topic text);
CREATE TABLE IF NOT EXISTS quarantine (
    site text NOT NULL, box text NOT NULL, seq bigint NOT NULL, kind text NOT NULL,
    reason text NOT NULL, bytes integer NOT NULL, sample text NOT NULL,
    received timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (site, box, seq));
CREATE INDEX IF NOT EXISTS messages_received ON messages (received);
ALTER TABLE sites ADD COLUMN IF NOT EXISTS outdoor_point text;
"""


def _month_start(t: dt.datetime) -> dt.datetime:
    return dt.datetime(t.year, t.month, 1, tzinfo=dt.timezone.utc)


def _next_month(t: dt.datetime) -> dt.datetime:
    return dt.datetime(t.year + (t.month == 12), t.month % 12 + 1, 1, tzinfo=dt.timezone.utc)


class CityStore:
    """One connection to the portfolio database (one per thread)."""

    def __init__(self, dsn: str):
        self.conn = psycopg.connect(dsn, autocommit=False)
        self._partitions: set[str] = set()

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "CityStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def migrate(self) -> None:
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(4242)")  # several ingests start
            self.conn.execute(DDL)
            self.conn.execute("INSERT INTO schema_version VALUES (%s) ON CONFLICT DO NOTHING",
                              [SCHEMA_VERSION])

    # --- partitions -----------------------------------------------------------------------

    def ensure_partitions(self, table: str, times: Iterable[dt.datetime]) -> None:
        """Monthly partitions of readings, yearly of energy, made when first needed."""
        wanted = set()
        for t in times:
            if table == "readings":
                lo = _month_start(t)
                wanted.add((f"readings_{lo:%Y%m}", lo, _next_month(lo)))
            else:
                lo = dt.datetime(t.year, 1, 1, tzinfo=dt.timezone.utc)
                wanted.add((f"energy_{lo:%Y}", lo, lo.replace(year=lo.year + 1)))
        for name, lo, hi in sorted(wanted - {w for w in wanted if w[0] in self._partitions}):
            self.conn.execute("SELECT pg_advisory_xact_lock(4243)")
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} "
                              "FOR VALUES FROM (%s) TO (%s)".replace("%s", "'{}'").format(
                                  lo.isoformat(), hi.isoformat()))
            self._partitions.add(name)

    # --- what the ingest writes -----------------------------------------------------------

    def take_messages(self, rows: list[tuple[str, str, int, str, dt.datetime]],
                      ) -> set[tuple[str, str, int]]:
        """Record (site, box, seq, kind, sent); the (site, box, seq) that were new. A sequence
        number at or below its outbox's confirmed mark was stored before (its row may be
        pruned): a replay."""
        if not rows:
            return set()
        cur = self.conn.execute(
            "INSERT INTO messages (site, box, seq, kind, sent) SELECT r.* FROM unnest("
            "%s::text[], %s::text[], %s::bigint[], %s::text[], %s::timestamptz[]) "
            "AS r(site, box, seq, kind, sent) LEFT JOIN confirmed c ON c.site = r.site "
            "AND c.box = r.box WHERE r.seq > coalesce(c.upto, 0) "
            "ON CONFLICT DO NOTHING RETURNING site, box, seq",
            [[r[i] for r in rows] for i in range(5)])
        return {tuple(r) for r in cur.fetchall()}

    def quarantine(self, rows: list[tuple[str, str, int, str, str, int, str]]) -> int:
        """Messages the city could not take: (site, box, seq, kind, reason, bytes, sample),
        recorded as handled (in `messages`, so the centre's confirmations move past them)
        and kept with their reason; a sample of at most 200 printable characters."""
        if not rows:
            return 0
        clean = [(site, box, seq, kind[:20], reason[:200], size,
                  "".join(ch if ch.isprintable() and not 0xD800 <= ord(ch) <= 0xDFFF else "?"
                          for ch in sample[:200]))
                 for site, box, seq, kind, reason, size, sample in rows]
        new = self.take_messages([(r[0], r[1], r[2], r[3], dt.datetime.now(dt.timezone.utc))
                                  for r in clean])
        clean = [r for r in clean if (r[0], r[1], r[2]) in new]
        if clean:
            self.conn.execute(
                "INSERT INTO quarantine (site, box, seq, kind, reason, bytes, sample) "
                "SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::text[], "
                "%s::text[], %s::int[], %s::text[]) ON CONFLICT DO NOTHING",
                [[r[i] for r in clean] for i in range(7)])
        return len(clean)

    def prune_messages(self, keep: dt.timedelta = dt.timedelta(hours=1),
                       limit: int = 200_000) -> int:
        """Forget confirmed messages received more than `keep` ago (the confirmed mark
        recognises their replays), at most `limit` rows (call again while it returns
        `limit`: each call is one short transaction); how many rows went."""
        cur = self.conn.execute(
            "DELETE FROM messages WHERE ctid IN (SELECT m.ctid FROM messages m JOIN confirmed c "
            "ON c.site = m.site AND c.box = m.box WHERE m.seq <= c.upto AND "
            "m.received < clock_timestamp() - %s LIMIT %s)", [keep, limit])
        return cur.rowcount

    def gaps(self) -> dict[str, int]:
        """Per site: sequence numbers missing between its confirmed mark and the newest
        message of the same outbox (lost on the way, or not arrived yet)."""
        rows = self.conn.execute(
            "SELECT m.site, sum(g) FROM (SELECT m.site, m.box, max(m.seq) - coalesce(c.upto, 0) "
            "- count(*) AS g FROM messages m LEFT JOIN confirmed c ON c.site = m.site AND "
            "c.box = m.box WHERE m.seq > coalesce(c.upto, 0) GROUP BY m.site, m.box, c.upto) m "
            "GROUP BY m.site").fetchall()
        return {site: int(g) for site, g in rows}

    def confirm(self, boxes: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """Move each outbox's confirmed mark over the run of sequence numbers stored without
        a gap after it; the marks of all of `boxes`."""
        if not boxes:
            return {}
        sites, bs = [b[0] for b in sorted(boxes)], [b[1] for b in sorted(boxes)]
        self.conn.execute(
            "INSERT INTO confirmed (site, box, upto) "
            "SELECT site, box, upto + n FROM ("
            "  SELECT c.site, c.box, c.upto, count(*) AS n FROM ("
            "    SELECT b.site, b.box, coalesce(k.upto, 0) AS upto FROM "
            "    unnest(%s::text[], %s::text[]) AS b(site, box) "
            "    LEFT JOIN confirmed k ON k.site = b.site AND k.box = b.box) c "
            "  JOIN LATERAL (SELECT m.seq, row_number() OVER (ORDER BY m.seq) AS rn "
            "    FROM messages m WHERE m.site = c.site AND m.box = c.box AND m.seq > c.upto "
            "    ORDER BY m.seq LIMIT 100000) x ON x.seq = c.upto + x.rn "
            "  GROUP BY c.site, c.box, c.upto) moved "
            "ORDER BY site, box "
            "ON CONFLICT (site, box) DO UPDATE SET upto = greatest(confirmed.upto, excluded.upto)",
            [sites, bs])
        rows = self.conn.execute(
            "SELECT k.site, k.box, k.upto FROM confirmed k JOIN unnest(%s::text[], %s::text[]) "
            "AS b(site, box) ON k.site = b.site AND k.box = b.box", [sites, bs]).fetchall()
        return {(s, b): u for s, b, u in rows}

    def _copy_upsert(self, table: str, columns: tuple[str, ...], types: str,
                     rows: list[tuple], conflict: str, update: str | None) -> int:
        if not rows:
            return 0
        tmp = f"stage_{table}"
        self.conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {tmp} ({types}) ON COMMIT DELETE ROWS")
        with self.conn.cursor().copy(f"COPY {tmp} ({', '.join(columns)}) FROM STDIN") as cp:
            for r in rows:
                cp.write_row(r)
        action = f"DO UPDATE SET {update}" if update else "DO NOTHING"
        cols = ", ".join(columns)
        # the same key twice in one batch (a replay inside the batch) is kept once
        cur = self.conn.execute(
            f"INSERT INTO {table} ({cols}) SELECT DISTINCT ON ({conflict}) {cols} FROM {tmp} "
            f"ORDER BY {conflict} ON CONFLICT ({conflict}) {action}")
        self.conn.execute(f"DELETE FROM {tmp}")
        return cur.rowcount

    def add_readings(self, rows: list[tuple[str, str, dt.datetime, float | None]]) -> int:
        self.ensure_partitions("readings", {r[2] for r in rows})
        return self._copy_upsert("readings", ("site", "point", "t", "value"),
                                 "site text, point text, t timestamptz, value double precision",
                                 rows, "site, point, t", None)

    def add_energy(self, rows: list[tuple[str, str, dt.datetime, float | None]]) -> int:
        rows = sorted(rows)  # rows locked in one order whichever ingest writes them
        """15-minute kWh; a value sent again (a site's backfill filled a gap) replaces the
        old one. The daily rollup of every (site, day) touched is recomputed."""
        if not rows:
            return 0
        self.ensure_partitions("energy", {r[2] for r in rows})
        n = self._copy_upsert("energy", ("site", "meter", "t", "kwh"),
                              "site text, meter text, t timestamptz, kwh double precision",
                              rows, "site, meter, t", "kwh = excluded.kwh")
        days = sorted({(r[0], r[2]) for r in rows})
        sites = [d[0] for d in days]
        self.conn.execute(
            "WITH touched AS (SELECT DISTINCT u.site, (u.t AT TIME ZONE s.timezone)::date AS day "
            "  FROM unnest(%s::text[], %s::timestamptz[]) AS u(site, t) JOIN sites s "
            "  ON s.id = u.site) "
            "INSERT INTO energy_daily (site, meter, day, kwh, n) "
            "SELECT e.site, e.meter, tc.day, sum(e.kwh), count(e.kwh) FROM touched tc "
            "JOIN sites s ON s.id = tc.site JOIN energy e ON e.site = tc.site "
            "AND e.t >= (tc.day::timestamp AT TIME ZONE s.timezone) "
            "AND e.t < ((tc.day + 1)::timestamp AT TIME ZONE s.timezone) "
            "WHERE e.kwh IS NOT NULL GROUP BY e.site, e.meter, tc.day ORDER BY 1, 2, 3 "
            "ON CONFLICT (site, meter, day) DO UPDATE SET kwh = excluded.kwh, n = excluded.n",
            [sites, [d[1] for d in days]])
        return n

    def upsert_site(self, site: str, b: dict) -> None:
        main = next((m["id"] for m in b["meters"] if m["measures"] == "main"
                     and not m.get("parent")), None)
        self.conn.execute(
            "INSERT INTO sites (id, name, timezone, organisation, floor_area_m2, staff, points, "
            "meters, main_meter, outdoor_point) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET name = excluded.name, timezone = excluded.timezone, "
            "organisation = excluded.organisation, floor_area_m2 = excluded.floor_area_m2, "
            "staff = excluded.staff, points = excluded.points, meters = excluded.meters, "
            "main_meter = excluded.main_meter, outdoor_point = excluded.outdoor_point "
            "RETURNING (xmax = 0)",
            [site, b["name"], b["timezone"], b["organisation"], b["floor_area_m2"], b["staff"],
             b["points"], json.dumps(b["meters"], ensure_ascii=False), main, b.get("outdoor")])
        # energy that came before the site was registered (or under another time zone)
        self.conn.execute("DELETE FROM energy_daily WHERE site = %s", [site])
        self.conn.execute(
            "INSERT INTO energy_daily (site, meter, day, kwh, n) SELECT e.site, e.meter, "
            "(e.t AT TIME ZONE s.timezone)::date, sum(e.kwh), count(e.kwh) FROM energy e "
            "JOIN sites s ON s.id = e.site WHERE e.site = %s AND e.kwh IS NOT NULL "
            "GROUP BY 1, 2, 3", [site])

    def upsert_monthly(self, site: str, b: dict) -> None:
        self.conn.execute(
            "INSERT INTO monthly VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT "
            "(site, month) DO UPDATE SET kwh = excluded.kwh, kwh_ac = excluded.kwh_ac, "
            "vnd = excluded.vnd, peak_kw = excluded.peak_kw, coverage = excluded.coverage, "
            "hours_below_25 = excluded.hours_below_25",
            [site, b["month"], b.get("kwh"), b.get("kwh_ac"), b.get("vnd"), b.get("peak_kw"),
             b.get("coverage"), b.get("hours_below_25")])

    def upsert_faults(self, site: str, faults: list[dict]) -> None:
        for f in faults:
            self.conn.execute(
                "INSERT INTO faults VALUES (%s, %s, %s, %s, %s, to_timestamp(%s), "
                "to_timestamp(%s), %s, %s) ON CONFLICT (site, id) DO UPDATE SET "
                "status = excluded.status, last = excluded.last, "
                "kwh_per_day = excluded.kwh_per_day, vnd_per_day = excluded.vnd_per_day",
                [site, f["id"], f["rule"], f["target"], f["status"], f["first"], f["last"],
                 f["kwh_per_day"], f["vnd_per_day"]])

    def upsert_ledger(self, site: str, b: dict) -> None:
        self.conn.execute(
            "INSERT INTO ledger_days VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT "
            "(site, day) DO UPDATE SET writes = excluded.writes, failed = excluded.failed, "
            "released = excluded.released, held = excluded.held, "
            "below_floor = excluded.below_floor",
            [site, b["day"], b["writes"], b["failed"], b["released"], b["held"],
             b["below_floor"]])

    def seen(self, site: str, seq: int, last_reading: dt.datetime | None) -> None:
        self.conn.execute(
            "UPDATE sites SET last_seen = now(), last_seq = greatest(last_seq, %s), "
            "last_reading = CASE WHEN %s::timestamptz IS NULL THEN last_reading "
            "ELSE greatest(coalesce(last_reading, %s::timestamptz), %s::timestamptz) END "
            "WHERE id = %s", [seq, last_reading, last_reading, last_reading, site])

    def count_dropped(self, counts: dict[str, int], last_topic: str | None = None) -> None:
        for code, n in counts.items():
            self.conn.execute(
                "INSERT INTO dropped VALUES (%s, %s, now(), %s) ON CONFLICT (code) DO UPDATE "
                "SET n = dropped.n + excluded.n, last = now(), last_topic = excluded.last_topic",
                [code, n, (last_topic or "")[:200]])

    def save_forecasts(self, rows: list[tuple[str, str, dt.datetime, float, str]],
                       issued: dt.datetime) -> int:
        if not rows:
            return 0
        self.conn.commit()  # end what reading opened: the block below is then committed
        with self.conn.transaction():
            return self._copy_upsert(
                "forecasts", ("site", "meter", "t", "kw", "model", "issued"),
                "site text, meter text, t timestamptz, kw double precision, model text, "
                "issued timestamptz", [r + (issued,) for r in rows], "site, meter, t",
                "kw = excluded.kw, model = excluded.model, issued = excluded.issued")

    def hourly_energy(self, since: dt.datetime) -> list[tuple]:
        """(site, meter, local hour, kWh) of every meter since `since`: an hour with fewer
        than three of its quarters is left out."""
        return self.conn.execute(
            "SELECT e.site, e.meter, date_trunc('hour', e.t AT TIME ZONE s.timezone) AS h, "
            "sum(e.kwh) * 4.0 / count(e.kwh) FROM energy e JOIN sites s ON s.id = e.site "
            "WHERE e.t >= %s AND e.kwh IS NOT NULL GROUP BY 1, 2, 3 HAVING count(e.kwh) >= 3 "
            "ORDER BY 1, 2, 3", [since]).fetchall()

    def hourly_outdoor(self, since: dt.datetime) -> list[tuple]:
        """(site, local hour, °C) of each centre's outdoor temperature (the point its
        registry names) since `since`."""
        return self.conn.execute(
            "SELECT r.site, date_trunc('hour', r.t AT TIME ZONE s.timezone) AS h, avg(r.value) "
            "FROM readings r JOIN sites s ON s.id = r.site AND r.point = s.outdoor_point "
            "WHERE r.t >= %s AND r.value IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2",
            [since]).fetchall()

    def site_zones(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT id, timezone FROM sites").fetchall())

    def dropped(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT code, n FROM dropped").fetchall())
