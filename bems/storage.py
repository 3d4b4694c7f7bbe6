"""The store: the only module with SQL. SQLite through sqlite-utils, WAL, schema by migrations."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence
from zoneinfo import ZoneInfo

import sqlite_utils
from sqlite_utils.migrations import Migrations

from bems.errors import StoreError

QUALITY = {"good": 0, "uncertain": 1, "stale": 2, "bad": 3}
QUALITY_NAMES = {v: k for k, v in QUALITY.items()}
LEVELS = {"15min": 900, "hour": 3600, "day": 86400}

migrations = Migrations("bems")


# --- schema -------------------------------------------------------------------------------
# Readings are keyed by a small integer per point and stored clustered by (ts, point) in a
# WITHOUT ROWID table: polls arrive in time order, so a batch is appended at the end of one
# b-tree (no separate index to maintain), a re-poll of the same instant is ignored instead of
# duplicated, and the rollup job reads new data as one contiguous range. Reading one point over
# a long period is the slow direction: that is what the rollups are for.
# Times are integer seconds since the epoch, UTC.

def _rollup_sql(name: str) -> str:
    return (f"CREATE TABLE {name} (point INTEGER NOT NULL, bucket INTEGER NOT NULL, "
            "n INTEGER NOT NULL, sum REAL NOT NULL, min REAL, max REAL, "
            "last_ts INTEGER, last REAL, PRIMARY KEY (bucket, point)) WITHOUT ROWID")


@migrations(name="0001_readings_and_ledger")
def _m0001(db: sqlite_utils.Database) -> None:
    db.execute("CREATE TABLE point_keys (key INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE)")
    db.execute("CREATE TABLE readings (ts INTEGER NOT NULL, point INTEGER NOT NULL, "
               "value REAL, quality INTEGER NOT NULL DEFAULT 0, "
               "PRIMARY KEY (ts, point)) WITHOUT ROWID")
    # Time spans written since the last rollup refresh (one row per batch).
    db.execute("CREATE TABLE rollup_pending (id INTEGER PRIMARY KEY, lo INTEGER, hi INTEGER)")
    for level in LEVELS:
        db.execute(_rollup_sql(f"rollup_{level}"))
        db.execute(f"CREATE INDEX rollup_{level}_point ON rollup_{level} (point, bucket)")
    db.execute("CREATE TABLE writes (id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, "
               "point TEXT NOT NULL, device TEXT, object TEXT, action TEXT NOT NULL, "
               "value TEXT, priority INTEGER, source TEXT, reason TEXT, outcome TEXT NOT NULL, "
               "error TEXT, readback TEXT, released_at INTEGER)")
    db.execute("CREATE INDEX writes_ts ON writes (ts)")
    db.execute("CREATE INDEX writes_point ON writes (point, ts)")
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")


@migrations(name="0002_operations")
def _m0002(db: sqlite_utils.Database) -> None:
    db.execute("CREATE TABLE schedules (id TEXT PRIMARY KEY, name TEXT, definition TEXT NOT NULL, "
               "updated_at INTEGER, updated_by TEXT)")
    db.execute("CREATE TABLE schedule_exceptions (id INTEGER PRIMARY KEY, day TEXT NOT NULL, "
               "kind TEXT NOT NULL, name TEXT, schedule TEXT, periods TEXT, "
               "created_at INTEGER, created_by TEXT)")
    db.execute("CREATE INDEX schedule_exceptions_day ON schedule_exceptions (day)")
    db.execute("CREATE TABLE overrides (id INTEGER PRIMARY KEY, zone TEXT, point TEXT NOT NULL, "
               "value TEXT, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, "
               "created_by TEXT, reason TEXT, released_at INTEGER, released_by TEXT)")
    db.execute("CREATE TABLE forecasts (meter TEXT NOT NULL, issued_at INTEGER NOT NULL, "
               "ts INTEGER NOT NULL, yhat REAL, yhat_lower REAL, yhat_upper REAL, model TEXT, "
               "PRIMARY KEY (meter, issued_at, ts)) WITHOUT ROWID")
    db.execute("CREATE TABLE models (id INTEGER PRIMARY KEY, meter TEXT NOT NULL, "
               "name TEXT NOT NULL, created_at INTEGER NOT NULL, payload TEXT, scores TEXT, "
               "selected INTEGER NOT NULL DEFAULT 0)")
    db.execute("CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL, "
               "password_hash TEXT NOT NULL, lang TEXT NOT NULL DEFAULT 'vi', "
               "created_at INTEGER NOT NULL, disabled INTEGER NOT NULL DEFAULT 0)")
    db.execute("CREATE TABLE audit (id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, user TEXT, "
               "action TEXT NOT NULL, detail TEXT)")
    db.execute("CREATE INDEX audit_ts ON audit (ts)")


# --- helpers ------------------------------------------------------------------------------

def to_epoch(t: dt.datetime | float | int) -> int:
    """Aware datetime or epoch seconds → integer epoch seconds (UTC)."""
    if isinstance(t, dt.datetime):
        if t.tzinfo is None:
            raise ValueError(f"naive datetime {t!r}: times must carry a time zone")
        return int(t.timestamp())
    return int(t)


def from_epoch(ts: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


@dataclass(frozen=True)
class WriteRecord:
    id: int
    ts: dt.datetime
    point: str
    action: str
    value: str | None
    priority: int | None
    source: str | None
    reason: str | None
    outcome: str
    error: str | None
    readback: str | None
    released_at: dt.datetime | None
    device: str | None = None
    object: str | None = None


class Store:
    """A BEMS database file. One Store per thread; SQLite itself serialises writers."""

    def __init__(self, path: str | Path, timezone: str = "Asia/Ho_Chi_Minh",
                 migrate: bool = True):
        self.path = Path(path)
        try:
            conn = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False)
            self.db = sqlite_utils.Database(conn)
            self.db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL: a committed transaction survives a crash of this process; only a
            # power loss can take back the last commits, never corrupt the file.
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA cache_size=-65536")
            self.db.execute("PRAGMA temp_store=MEMORY")
            if migrate:
                migrations.apply(self.db)
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{self.path}: cannot open the database: {err}") from err
        # Daily rollups follow the site's local day. Vietnam has no daylight saving time, so one
        # offset serves; a site with DST gets days aligned to its standard time.
        self.day_offset = int(ZoneInfo(timezone).utcoffset(dt.datetime(2000, 1, 15)).total_seconds())
        self._keys: dict[str, int] = {}

    def close(self) -> None:
        self.db.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- points ---------------------------------------------------------------------------

    def point_keys(self, ids: Iterable[str]) -> dict[str, int]:
        """Integer key of each point id, creating keys for ids not seen before."""
        missing = [i for i in set(ids) if i not in self._keys]
        if missing:
            with self.db.atomic():
                self.db.conn.executemany("INSERT OR IGNORE INTO point_keys (id) VALUES (?)",
                                         [(i,) for i in missing])
            for key, pid in self.db.execute("SELECT key, id FROM point_keys"):
                self._keys[pid] = key
        return self._keys

    def _key(self, point: str) -> int | None:
        if point not in self._keys:
            row = self.db.execute("SELECT key FROM point_keys WHERE id = ?", [point]).fetchone()
            if row is None:
                return None
            self._keys[point] = row[0]
        return self._keys[point]

    # --- readings -------------------------------------------------------------------------

    def insert_readings(self, rows: Iterable[Sequence]) -> int:
        """Store a batch of (point_id, time, value[, quality]) in one transaction.

        Time is epoch seconds or an aware datetime; quality a name from QUALITY or its code.
        A reading already stored for the same point and second is kept and the new one
        ignored. The batch's time span is queued for `refresh_rollups`, in the same
        transaction, so no committed reading is ever left out of the rollups.
        Returns the number of new readings.
        """
        rows = rows if isinstance(rows, list) else list(rows)
        if not rows:
            return 0
        keys = self._keys
        if any(r[0] not in keys for r in rows):
            keys = self.point_keys(r[0] for r in rows)
        try:
            staged = [(to_epoch(r[1]), keys[r[0]], None if r[2] is None else float(r[2]),
                       _quality(r[3]) if len(r) > 3 else 0) for r in rows]
        except (TypeError, ValueError) as err:
            raise StoreError(f"batch of {len(rows)} readings refused: {err}") from err
        lo = min(r[0] for r in staged)
        hi = max(r[0] for r in staged)
        conn = self.db.conn
        try:
            with self.db.atomic():
                before = conn.total_changes
                conn.executemany("INSERT OR IGNORE INTO readings (ts, point, value, quality) "
                                 "VALUES (?, ?, ?, ?)", staged)
                inserted = conn.total_changes - before
                conn.execute("INSERT INTO rollup_pending (lo, hi) VALUES (?, ?)", [lo, hi])
        except sqlite3.Error as err:
            raise StoreError(f"{self.path}: batch of {len(staged)} readings not stored: {err}") from err
        return inserted

    def _bucket_expr(self, width: int, column: str = "ts") -> str:
        if width < 86400:
            return f"({column} / {width}) * {width}"
        off = self.day_offset
        return f"(({column} + {off}) / 86400) * 86400 - {off}"

    def _align(self, ts: int, width: int) -> int:
        if width < 86400:
            return ts // width * width
        return (ts + self.day_offset) // 86400 * 86400 - self.day_offset

    def refresh_rollups(self) -> int:
        """Recompute the 15-min, hourly and daily rollups over every span written since the
        last refresh. Idempotent: buckets are rebuilt from what is stored, never incremented.
        Returns the number of pending spans processed."""
        conn = self.db.conn
        with self.db.atomic():
            spans = conn.execute("SELECT id, lo, hi FROM rollup_pending ORDER BY lo").fetchall()
            if not spans:
                return 0
            # Each level is rebuilt over the buckets the new data touched: 15-min from the raw
            # readings, hourly from complete 15-min buckets, daily from complete hours.
            for table, source, tcol, vcol, width in (
                    ("rollup_15min", "readings", "ts", "value", 900),
                    ("rollup_hour", "rollup_15min", "bucket", None, 3600),
                    ("rollup_day", "rollup_hour", "bucket", None, 86400)):
                for lo, hi in _merge((self._align(lo, width), self._align(hi, width) + width)
                                     for _, lo, hi in spans):
                    # a day at a time keeps the sort behind GROUP BY small
                    for a in range(lo, hi, 86400):
                        self._rebuild(table, source, tcol, vcol, width, a, min(a + 86400, hi))
            conn.execute("DELETE FROM rollup_pending WHERE id <= ?", [max(s[0] for s in spans)])
        return len(spans)

    def _rebuild(self, table: str, source: str, tcol: str, vcol: str | None, width: int,
                 lo: int, hi: int) -> None:
        conn = self.db.conn
        conn.execute(f"DELETE FROM {table} WHERE bucket >= ? AND bucket < ?", [lo, hi])
        bucket = self._bucket_expr(width, tcol)
        if vcol:  # from raw readings; only good and uncertain values count
            sql = f"""INSERT INTO {table} (point, bucket, n, sum, min, max, last_ts, last)
                WITH src AS (SELECT point, {bucket} AS b, ts, value FROM {source}
                             WHERE ts >= ? AND ts < ? AND value IS NOT NULL AND quality < 2),
                agg AS (SELECT point, b, count(*) AS n, sum(value) AS s, min(value) AS lo,
                               max(value) AS hi FROM src GROUP BY point, b),
                lst AS (SELECT point, b, max(ts) AS lt, value AS lv FROM src GROUP BY point, b)
                SELECT agg.point, agg.b, n, s, lo, hi, lt, lv FROM agg JOIN lst USING (point, b)"""
        else:  # from the finer rollup
            sql = f"""INSERT INTO {table} (point, bucket, n, sum, min, max, last_ts, last)
                WITH src AS (SELECT point, {bucket} AS b, n, sum, min, max, last_ts, last
                             FROM {source} WHERE bucket >= ? AND bucket < ?),
                agg AS (SELECT point, b, sum(n) AS n, sum(sum) AS s, min(min) AS lo,
                               max(max) AS hi FROM src GROUP BY point, b),
                lst AS (SELECT point, b, max(last_ts) AS lt, last AS lv FROM src
                        GROUP BY point, b)
                SELECT agg.point, agg.b, n, s, lo, hi, lt, lv FROM agg JOIN lst USING (point, b)"""
        conn.execute(sql, [lo, hi])

    def readings(self, point: str, start: dt.datetime | int, end: dt.datetime | int,
                 ) -> list[tuple[dt.datetime, float | None, str]]:
        """Raw readings of one point in [start, end)."""
        key = self._key(point)
        if key is None:
            return []
        cur = self.db.execute("SELECT ts, value, quality FROM readings WHERE ts >= ? AND ts < ? "
                              "AND point = ? ORDER BY ts", [to_epoch(start), to_epoch(end), key])
        return [(from_epoch(ts), v, QUALITY_NAMES.get(q, "bad")) for ts, v, q in cur]

    def latest(self, points: Iterable[str] | None = None, now: dt.datetime | int | None = None,
               lookback_s: int = 3600) -> dict[str, tuple[dt.datetime, float | None, str]]:
        """The newest reading of each point within `lookback_s` before `now` (default: the
        newest reading stored). A point with nothing that recent is absent: it is stale."""
        if now is None:
            row = self.db.execute("SELECT max(ts) FROM readings").fetchone()
            if row[0] is None:
                return {}
            end = row[0] + 1
        else:
            end = to_epoch(now) + 1
        cur = self.db.execute(
            "SELECT k.id, max(r.ts), r.value, r.quality FROM readings r JOIN point_keys k "
            "ON k.key = r.point WHERE r.ts >= ? AND r.ts < ? GROUP BY r.point",
            [end - 1 - lookback_s, end])
        wanted = None if points is None else set(points)
        return {pid: (from_epoch(ts), v, QUALITY_NAMES.get(q, "bad")) for pid, ts, v, q in cur
                if wanted is None or pid in wanted}

    def rollups(self, level: str, points: Iterable[str], start: dt.datetime | int,
                end: dt.datetime | int) -> Iterator[dict]:
        """Rollup rows (point, bucket start, n, sum, mean, min, max, last) in [start, end)."""
        if level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}")
        self.refresh_rollups()
        for point in points:
            key = self._key(point)
            if key is None:
                continue
            cur = self.db.execute(f"SELECT bucket, n, sum, min, max, last_ts, last FROM rollup_{level} "
                                  "WHERE point = ? AND bucket >= ? AND bucket < ? ORDER BY bucket",
                                  [key, to_epoch(start), to_epoch(end)])
            for bucket, n, s, lo, hi, last_ts, last in cur:
                yield {"point": point, "bucket": from_epoch(bucket), "n": n, "sum": s,
                       "mean": s / n if n else None, "min": lo, "max": hi,
                       "last_ts": from_epoch(last_ts) if last_ts is not None else None,
                       "last": last}

    def summary(self, start: dt.datetime | int, end: dt.datetime | int,
                points: Iterable[str] | None = None) -> dict[str, dict]:
        """Per point over [start, end): count, sum, mean, min, max, from the daily rollups.

        start and end should fall on local midnights (a month, a week); the daily rollups are
        what make a month over hundreds of points answer in milliseconds.
        """
        self.refresh_rollups()
        where, args = "bucket >= ? AND bucket < ?", [to_epoch(start), to_epoch(end)]
        if points is not None:
            keys = [k for k in (self._key(p) for p in points) if k is not None]
            where += f" AND point IN ({','.join('?' * len(keys))})"
            args += keys
        cur = self.db.execute(
            "SELECT k.id, sum(r.n), sum(r.sum), min(r.min), max(r.max) FROM rollup_day r "
            f"JOIN point_keys k ON k.key = r.point WHERE {where} GROUP BY r.point", args)
        return {pid: {"n": n, "sum": s, "mean": s / n if n else None, "min": lo, "max": hi}
                for pid, n, s, lo, hi in cur}

    def count_readings(self, point: str | None = None) -> int:
        if point is None:
            return self.db.execute("SELECT count(*) FROM readings").fetchone()[0]
        key = self._key(point)
        if key is None:
            return 0
        return self.db.execute("SELECT count(*) FROM readings WHERE point = ?",
                               [key]).fetchone()[0]

    def stats(self) -> dict[str, Any]:
        first, last, n = self.db.execute("SELECT min(ts), max(ts), count(*) FROM readings").fetchone()
        return {
            "file": str(self.path),
            "points": self.db.execute("SELECT count(*) FROM point_keys").fetchone()[0],
            "readings": n,
            "first reading": from_epoch(first).isoformat() if first is not None else "-",
            "last reading": from_epoch(last).isoformat() if last is not None else "-",
            "ledger entries": self.db.execute("SELECT count(*) FROM writes").fetchone()[0],
            "held writes": len(self.held_writes()),
            "schema": ", ".join(m.name for m in migrations.applied(self.db)),
        }

    def purge_readings(self, before: dt.datetime | int) -> int:
        """Delete raw readings older than `before`; rollups are kept."""
        with self.db.atomic():
            cur = self.db.execute("DELETE FROM readings WHERE ts < ?", [to_epoch(before)])
        return cur.rowcount

    # --- the write ledger -----------------------------------------------------------------

    def record_write(self, *, point: str, action: str, value: Any, priority: int | None,
                     source: str, reason: str, outcome: str, error: str | None = None,
                     readback: Any = None, device: str | None = None, object: str | None = None,
                     ts: dt.datetime | int | None = None) -> int:
        """Append one write attempt (done, rejected, failed, released) to the ledger."""
        when = to_epoch(ts) if ts is not None else int(dt.datetime.now(dt.timezone.utc).timestamp())
        with self.db.atomic():
            cur = self.db.execute(
                "INSERT INTO writes (ts, point, device, object, action, value, priority, source, "
                "reason, outcome, error, readback) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [when, point, device, object, action, None if value is None else str(value),
                 priority, source, reason, outcome, error,
                 None if readback is None else str(readback)])
        return cur.lastrowid

    def mark_released(self, point: str, priority: int, ts: dt.datetime | int) -> int:
        """Mark every held write of a point at a priority as released."""
        with self.db.atomic():
            cur = self.db.execute("UPDATE writes SET released_at = ? WHERE point = ? AND "
                                  "priority = ? AND action = 'write' AND outcome IN ('done', "
                                  "'failed') AND released_at IS NULL",
                                  [to_epoch(ts), point, priority])
        return cur.rowcount

    def held_writes(self) -> list[WriteRecord]:
        """Writes that may sit in a priority array and were never released: what a restart
        must clean up. A write that failed its read-back may still have landed, so it counts."""
        return self.writes("outcome IN ('done', 'failed') AND action = 'write' AND "
                           "released_at IS NULL")

    def writes(self, where: str = "1", args: Sequence = (), limit: int = 1000) -> list[WriteRecord]:
        cur = self.db.execute(
            "SELECT id, ts, point, action, value, priority, source, reason, outcome, error, "
            f"readback, released_at, device, object FROM writes WHERE {where} "
            "ORDER BY id DESC LIMIT ?", [*args, limit])
        return [WriteRecord(r[0], from_epoch(r[1]), r[2], r[3], r[4], r[5], r[6], r[7], r[8],
                            r[9], r[10], from_epoch(r[11]) if r[11] else None, r[12], r[13])
                for r in cur]

    # --- schedules, exceptions and operator overrides ---------------------------------------

    def save_schedule(self, schedule_id: str, name: str, definition: dict, user: str,
                      when: dt.datetime | int) -> None:
        with self.db.atomic():
            self.db.execute("INSERT INTO schedules (id, name, definition, updated_at, updated_by) "
                            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET name = "
                            "excluded.name, definition = excluded.definition, updated_at = "
                            "excluded.updated_at, updated_by = excluded.updated_by",
                            [schedule_id, name, json.dumps(definition, ensure_ascii=False),
                             to_epoch(when), user])

    def schedules(self) -> dict[str, dict]:
        cur = self.db.execute("SELECT id, name, definition, updated_at, updated_by FROM schedules")
        return {i: {"name": n, "definition": json.loads(d), "updated_at": from_epoch(u),
                    "updated_by": by} for i, n, d, u, by in cur}

    def add_exception(self, day: dt.date, kind: str, name: str, user: str,
                      when: dt.datetime | int, schedule: str | None = None) -> int:
        with self.db.atomic():
            cur = self.db.execute("INSERT INTO schedule_exceptions (day, kind, name, schedule, "
                                  "created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)",
                                  [day.isoformat(), kind, name, schedule, to_epoch(when), user])
        return cur.lastrowid

    def delete_exception(self, exception_id: int) -> int:
        with self.db.atomic():
            return self.db.execute("DELETE FROM schedule_exceptions WHERE id = ?",
                                   [exception_id]).rowcount

    def exceptions(self) -> list[dict]:
        cur = self.db.execute("SELECT id, day, kind, name, schedule, created_by FROM "
                              "schedule_exceptions ORDER BY day")
        return [{"id": i, "day": dt.date.fromisoformat(d), "kind": k, "name": n,
                 "schedule": s_, "created_by": by} for i, d, k, n, s_, by in cur]

    def add_override(self, point: str, value: float, expires_at: dt.datetime, user: str,
                     reason: str, when: dt.datetime, zone: str | None = None) -> int:
        with self.db.atomic():
            cur = self.db.execute("INSERT INTO overrides (zone, point, value, created_at, "
                                  "expires_at, created_by, reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                  [zone, point, str(value), to_epoch(when), to_epoch(expires_at),
                                   user, reason])
        return cur.lastrowid

    def release_override(self, override_id: int, user: str, when: dt.datetime) -> int:
        with self.db.atomic():
            return self.db.execute("UPDATE overrides SET released_at = ?, released_by = ? "
                                   "WHERE id = ? AND released_at IS NULL",
                                   [to_epoch(when), user, override_id]).rowcount

    def overrides(self, active_at: dt.datetime | None = None) -> list[dict]:
        """Overrides not released (and, with `active_at`, not expired then)."""
        where, args = "released_at IS NULL", []
        if active_at is not None:
            where += " AND expires_at > ?"
            args.append(to_epoch(active_at))
        cur = self.db.execute("SELECT id, zone, point, value, created_at, expires_at, created_by, "
                              f"reason FROM overrides WHERE {where} ORDER BY id", args)
        return [{"id": i, "zone": z, "point": p, "value": float(v), "created_at": from_epoch(c),
                 "expires_at": from_epoch(e), "created_by": by, "reason": r}
                for i, z, p, v, c, e, by, r in cur]

    # --- users -----------------------------------------------------------------------------

    def add_user(self, name: str, role: str, password_hash: str, lang: str = "vi",
                 when: dt.datetime | int | None = None) -> None:
        ts = to_epoch(when) if when is not None else int(dt.datetime.now(dt.timezone.utc).timestamp())
        with self.db.atomic():
            self.db.execute("INSERT INTO users (name, role, password_hash, lang, created_at) "
                            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET role = "
                            "excluded.role, password_hash = excluded.password_hash",
                            [name, role, password_hash, lang, ts])

    def user(self, name: str) -> dict | None:
        row = self.db.execute("SELECT name, role, password_hash, lang, disabled FROM users "
                              "WHERE name = ?", [name]).fetchone()
        if row is None:
            return None
        return {"name": row[0], "role": row[1], "password_hash": row[2], "lang": row[3],
                "disabled": bool(row[4])}

    def users(self) -> list[dict]:
        return [{"name": n, "role": r, "lang": lang, "disabled": bool(d)} for n, r, lang, d in
                self.db.execute("SELECT name, role, lang, disabled FROM users ORDER BY name")]

    def set_user_lang(self, name: str, lang: str) -> None:
        with self.db.atomic():
            self.db.execute("UPDATE users SET lang = ? WHERE name = ?", [lang, name])

    def audit_rows(self, limit: int = 200, user: str | None = None,
                   action: str | None = None) -> list[dict]:
        where, args = [], []
        if user:
            where.append("user = ?")
            args.append(user)
        if action:
            where.append("action LIKE ?")
            args.append(action + "%")
        sql = ("SELECT ts, user, action, detail FROM audit"
               + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ?")
        return [{"ts": from_epoch(ts), "user": u, "action": a, "detail": d}
                for ts, u, a, d in self.db.execute(sql, [*args, limit])]

    # --- forecasts and models -------------------------------------------------------------

    def save_forecast(self, meter: str, issued_at: dt.datetime | int, model: str,
                      rows: Iterable[tuple[dt.datetime | int, float]]) -> int:
        issued = to_epoch(issued_at)
        data = [(meter, issued, to_epoch(ts), float(v), model) for ts, v in rows]
        with self.db.atomic():
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO forecasts (meter, issued_at, ts, yhat, model) "
                "VALUES (?, ?, ?, ?, ?)", data)
        return len(data)

    def latest_forecasts(self, meter: str | None = None) -> dict[str, list[dict]]:
        """The most recent forecast issued for each meter: {meter: [{ts, yhat, model, ...}]}."""
        where, args = "", []
        if meter is not None:
            where, args = "WHERE meter = ?", [meter]
        out: dict[str, list[dict]] = {}
        for m, issued in self.db.execute(
                f"SELECT meter, max(issued_at) FROM forecasts {where} GROUP BY meter", args):
            cur = self.db.execute("SELECT ts, yhat, model FROM forecasts WHERE meter = ? AND "
                                  "issued_at = ? ORDER BY ts", [m, issued])
            out[m] = [{"ts": from_epoch(ts), "yhat": y, "model": model,
                       "issued_at": from_epoch(issued)} for ts, y, model in cur]
        return out

    def save_model(self, meter: str, name: str, payload: str, scores: dict,
                   when: dt.datetime | int, selected: bool = True) -> int:
        with self.db.atomic():
            if selected:
                self.db.execute("UPDATE models SET selected = 0 WHERE meter = ?", [meter])
            cur = self.db.execute("INSERT INTO models (meter, name, created_at, payload, scores, "
                                  "selected) VALUES (?, ?, ?, ?, ?, ?)",
                                  [meter, name, to_epoch(when), payload, json.dumps(scores),
                                   1 if selected else 0])
        return cur.lastrowid

    def selected_model(self, meter: str) -> dict | None:
        row = self.db.execute("SELECT name, created_at, payload, scores FROM models WHERE "
                              "meter = ? AND selected = 1 ORDER BY id DESC LIMIT 1",
                              [meter]).fetchone()
        if row is None:
            return None
        return {"name": row[0], "created_at": from_epoch(row[1]), "payload": row[2],
                "scores": json.loads(row[3] or "{}")}

    # --- small key/value settings and audit ------------------------------------------------

    def set_meta(self, key: str, value: Any) -> None:
        with self.db.atomic():
            self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) "
                            "DO UPDATE SET value = excluded.value", [key, json.dumps(value)])

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return json.loads(row[0]) if row else default

    def audit(self, user: str | None, action: str, detail: dict | None = None,
              ts: dt.datetime | int | None = None) -> None:
        when = to_epoch(ts) if ts is not None else int(dt.datetime.now(dt.timezone.utc).timestamp())
        with self.db.atomic():
            self.db.execute("INSERT INTO audit (ts, user, action, detail) VALUES (?, ?, ?, ?)",
                            [when, user, action, json.dumps(detail or {}, ensure_ascii=False)])

    def integrity_check(self) -> str:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0]


def _merge(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(lo, hi) for lo, hi in out]


def _quality(q: Any) -> int:
    if isinstance(q, int):
        return q
    try:
        return QUALITY[q]
    except KeyError:
        raise ValueError(f"unknown quality {q!r}; one of {', '.join(QUALITY)}") from None


