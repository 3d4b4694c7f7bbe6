"""Readings and their rollups: append in batches, read raw, latest, rollups and summaries.

Readings are keyed by a small integer per point and stored clustered by (ts, point) in a
WITHOUT ROWID table: polls arrive in time order, so a batch is appended at the end of one b-tree,
a re-poll of the same instant is ignored instead of duplicated, and the rollup job reads new data
as one contiguous range. Reading one point over a long period is the slow direction: that is
what the rollups are for.

Reads never write. Each batch queues its time span in `rollup_pending` (in the same
transaction); `refresh_rollups` (the runtime's job, and the commands that load data) rebuilds
those buckets. Until it has, `rollups` and `summary` compute the pending buckets from the raw
readings, so what they return always equals the raw data.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sqlite3
from typing import Iterable, Iterator, Sequence

from bems.errors import StoreError
from bems.storage.common import QUALITY_NAMES, from_epoch, quality_code, to_epoch
from bems.storage.schema import LEVELS
from bems.state import READINGS_TO

# raw readings that enter the rollups: a value, of good or uncertain quality
_COUNTED = "value IS NOT NULL AND quality < 2"


class TimeSeries:
    """Mixin of `Store`: needs `self.db`, `self.path`, `self.day_offset`, `self._keys`."""

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

    # --- writing readings -----------------------------------------------------------------

    def insert_readings(self, rows: Iterable[Sequence], newer: bool = False) -> int:
        """Store a batch of (point_id, time, value[, quality]) in one transaction.

        Time is epoch seconds or an aware datetime; quality a name from QUALITY or its code.
        A reading already stored for the same point and second is kept and the new one
        ignored (a backfill or a retry stores nothing twice), unless `newer`: the batch is
        known to be later than what was stored in its second (what a write left on a device,
        read back just after that second's poll) and replaces it. The batch's time span is
        queued for `refresh_rollups` in the same transaction, so no committed reading is ever
        left out of the rollups. Returns the number of readings stored.
        """
        rows = rows if isinstance(rows, list) else list(rows)
        if not rows:
            return 0
        keys = self._keys
        if any(r[0] not in keys for r in rows):
            keys = self.point_keys(r[0] for r in rows)
        try:
            staged = [_staged(to_epoch(r[1]), keys[r[0]], r[2],
                              quality_code(r[3]) if len(r) > 3 else 0) for r in rows]
        except (TypeError, ValueError, OverflowError) as err:
            raise StoreError(f"batch of {len(rows)} readings refused: {err}") from err
        lo = min(r[0] for r in staged)
        hi = max(r[0] for r in staged)
        conn = self.db.conn
        try:
            with self.db.atomic():
                before = conn.total_changes
                conn.executemany(f"INSERT OR {'REPLACE' if newer else 'IGNORE'} INTO readings "
                                 "(ts, point, value, quality) VALUES (?, ?, ?, ?)", staged)
                inserted = conn.total_changes - before
                conn.execute("INSERT INTO rollup_pending (lo, hi) VALUES (?, ?)", [lo, hi])
        except sqlite3.Error as err:
            raise StoreError(f"{self.path}: batch of {len(staged)} readings not stored: {err}") from err
        return inserted

    def insert_screened(self, rows: list[Sequence], screen) -> int:
        """Readings through a `bems.plausible.Screen`: implausible values are stored as bad
        readings without a value, their raw numbers kept in `implausible`."""
        keep, odd = screen.rows(rows)
        n = self.insert_readings(keep)
        if odd:
            keys = self.point_keys(r[0] for r in odd)
            with self.db.atomic():
                self.db.conn.executemany(
                    "INSERT OR IGNORE INTO implausible (ts, point, raw) VALUES (?, ?, ?)",
                    [(to_epoch(t), keys[p], v) for p, t, v in odd])
        return n

    def implausible(self, point: str | None = None, limit: int = 1000
                    ) -> list[tuple[dt.datetime, str, float]]:
        """The raw values kept for the record, newest first: (time, point, raw)."""
        where, args = "", []
        if point is not None:
            key = self._key(point)
            if key is None:
                return []
            where, args = "WHERE i.point = ?", [key]
        cur = self.db.execute("SELECT i.ts, k.id, i.raw FROM implausible i JOIN point_keys k "
                              f"ON k.key = i.point {where} ORDER BY i.ts DESC LIMIT ?",
                              [*args, limit])
        return [(from_epoch(ts), pid, raw) for ts, pid, raw in cur]

    def purge_readings(self, before: dt.datetime | int) -> int:
        """Delete raw readings older than `before`; rollups are kept (brought up to date
        first, so nothing pending is lost with the raw data)."""
        self.refresh_rollups()
        with self.db.atomic():
            cur = self.db.execute("DELETE FROM readings WHERE ts < ?", [to_epoch(before)])
            self.db.execute("DELETE FROM implausible WHERE ts < ?", [to_epoch(before)])
        return cur.rowcount

    # --- rollups ----------------------------------------------------------------------------

    def _bucket_expr(self, width: int, column: str = "ts") -> str:
        if width < 86400:
            return f"({column} / {width}) * {width}"
        off = self.day_offset
        return f"(({column} + {off}) / 86400) * 86400 - {off}"

    def _align(self, ts: int, width: int) -> int:
        if width < 86400:
            return ts // width * width
        return (ts + self.day_offset) // 86400 * 86400 - self.day_offset

    def _pending(self, width: int, spans: list | None = None) -> list[tuple[int, int]]:
        """The bucket ranges [lo, hi) of a level that data written since the last refresh
        touches (merged)."""
        if spans is None:
            spans = self.db.execute("SELECT id, lo, hi FROM rollup_pending").fetchall()
        return _merge((self._align(lo, width), self._align(hi, width) + width)
                      for _, lo, hi in spans)

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
            for table, source, width, finer in (("rollup_15min", "readings", 900, 0),
                                                ("rollup_hour", "rollup_15min", 3600, 900),
                                                ("rollup_day", "rollup_hour", 86400, 3600)):
                for lo, hi in self._pending(width, spans):
                    # a day at a time keeps the sort behind GROUP BY small
                    for a in range(lo, hi, 86400):
                        self._rebuild(table, source, width, finer, a, min(a + 86400, hi))
            # what was written behind the city portfolio's readings cursor is sent late
            cursor = conn.execute("SELECT value FROM meta WHERE key = ?",
                                  [READINGS_TO.name]).fetchone()
            if cursor is not None:
                behind = int(json.loads(cursor[0]))
                late = [(lo, min(hi, behind)) for _i, lo, hi in spans if lo < behind]
                conn.executemany("INSERT INTO portfolio_late (lo, hi) VALUES (?, ?)", late)
            conn.execute("DELETE FROM rollup_pending WHERE id <= ?", [max(s[0] for s in spans)])
        return len(spans)

    def _rebuild(self, table: str, source: str, width: int, finer: int, lo: int,
                 hi: int) -> None:
        """One level's buckets in [lo, hi) from the level below (`finer`: its width; 0 for the
        raw readings). One pass groups; each bucket's last value is then looked up by the
        key of the row that holds it (a second grouping pass took longer)."""
        conn = self.db.conn
        conn.execute(f"DELETE FROM {table} WHERE bucket >= ? AND bucket < ?", [lo, hi])
        if not finer:  # from raw readings; only good and uncertain values count
            bucket = self._bucket_expr(width, "ts")
            sql = f"""INSERT INTO {table} (point, bucket, n, sum, min, max, last_ts, last)
                SELECT point, b, n, s, lo, hi, lt,
                       (SELECT value FROM readings r WHERE r.ts = g.lt AND r.point = g.point)
                FROM (SELECT point, {bucket} AS b, count(*) AS n, sum(value) AS s,
                             min(value) AS lo, max(value) AS hi, max(ts) AS lt
                      FROM readings WHERE ts >= ? AND ts < ? AND {_COUNTED}
                      GROUP BY point, b) g"""
        else:  # from the finer rollup: the last value is in the finer bucket holding last_ts
            bucket = self._bucket_expr(width, "bucket")
            sql = f"""INSERT INTO {table} (point, bucket, n, sum, min, max, last_ts, last)
                SELECT point, b, n, s, lo, hi, lt,
                       (SELECT last FROM {source} f WHERE f.point = g.point
                        AND f.bucket = (g.lt / {finer}) * {finer})
                FROM (SELECT point, {bucket} AS b, sum(n) AS n, sum(sum) AS s,
                             min(min) AS lo, max(max) AS hi, max(last_ts) AS lt
                      FROM {source} WHERE bucket >= ? AND bucket < ? GROUP BY point, b) g"""
        conn.execute(sql, [lo, hi])

    def _raw_buckets(self, key: int, width: int, lo: int, hi: int) -> list[tuple]:
        """Rollup rows (bucket, n, sum, min, max, last_ts, last) of one point computed from the
        raw readings in [lo, hi): what `refresh_rollups` would store there."""
        b = self._bucket_expr(width)
        return self.db.execute(
            f"""WITH src AS (SELECT {b} AS b, ts, value FROM readings
                             WHERE ts >= ? AND ts < ? AND point = ? AND {_COUNTED}),
                agg AS (SELECT b, count(*) AS n, sum(value) AS s, min(value) AS lo,
                               max(value) AS hi FROM src GROUP BY b),
                lst AS (SELECT b, max(ts) AS lt, value AS lv FROM src GROUP BY b)
                SELECT agg.b, n, s, lo, hi, lt, lv FROM agg JOIN lst USING (b)""",
            [lo, hi, key]).fetchall()

    # --- reading --------------------------------------------------------------------------

    def readings(self, point: str, start: dt.datetime | int, end: dt.datetime | int,
                 ) -> list[tuple[dt.datetime, float | None, str]]:
        """Raw readings of one point in [start, end)."""
        key = self._key(point)
        if key is None:
            return []
        cur = self.db.execute("SELECT ts, value, quality FROM readings WHERE ts >= ? AND ts < ? "
                              "AND point = ? ORDER BY ts", [to_epoch(start), to_epoch(end), key])
        return [(from_epoch(ts), v, QUALITY_NAMES.get(q, "bad")) for ts, v, q in cur]

    def readings_between(self, start: dt.datetime | int, end: dt.datetime | int,
                         ) -> list[tuple[int, str, float | None]]:
        """Every point's raw readings in [start, end) as (epoch s, point id, value), by time."""
        return self.db.execute(
            "SELECT r.ts, k.id, r.value FROM readings r JOIN point_keys k ON k.key = r.point "
            "WHERE r.ts >= ? AND r.ts < ? ORDER BY r.ts, k.id",
            [to_epoch(start), to_epoch(end)]).fetchall()

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
        width = LEVELS[level]
        s, e = to_epoch(start), to_epoch(end)
        pending = [(lo, hi) for lo, hi in self._pending(width) if lo < e and hi > s]
        for point in points:
            key = self._key(point)
            if key is None:
                continue
            rows = [r for r in self.db.execute(
                f"SELECT bucket, n, sum, min, max, last_ts, last FROM rollup_{level} "
                "WHERE point = ? AND bucket >= ? AND bucket < ? ORDER BY bucket", [key, s, e])
                if not _inside(r[0], pending)]
            for lo, hi in pending:
                rows += [r for r in self._raw_buckets(key, width, lo, hi) if s <= r[0] < e]
            for bucket, n, total, lo, hi, last_ts, last in sorted(rows):
                yield {"point": point, "bucket": from_epoch(bucket), "n": n, "sum": total,
                       "mean": total / n if n else None, "min": lo, "max": hi,
                       "last_ts": from_epoch(last_ts) if last_ts is not None else None,
                       "last": last}

    def rollup_grid(self, level: str, points: Iterable[str], t0: dt.datetime | int,
                    n: int) -> dict[str, list[float]]:
        """Each point's rollup mean in the `n` buckets from `t0` (a bucket start), NaN where
        there is none: the regular grid models and rules compute on."""
        width = LEVELS[level] if level in LEVELS else 0
        s = to_epoch(t0)
        grid = {p: [math.nan] * n for p in points}
        for r in self.rollups(level, list(grid), s, s + n * width):
            i = (to_epoch(r["bucket"]) - s) // width
            if 0 <= i < n and r["mean"] is not None and math.isfinite(r["mean"]):
                grid[r["point"]][i] = r["mean"]
        return grid

    def summary(self, start: dt.datetime | int, end: dt.datetime | int,
                points: Iterable[str] | None = None) -> dict[str, dict]:
        """Per point over [start, end): count, sum, mean, min, max, from the daily rollups.

        start and end should fall on local midnights (a month, a week); the daily rollups are
        what make a month over hundreds of points answer in milliseconds.
        """
        s, e = to_epoch(start), to_epoch(end)
        pending = [(lo, hi) for lo, hi in self._pending(86400) if lo < e and hi > s]
        keys = None
        if points is not None:
            keys = [k for k in (self._key(p) for p in points) if k is not None]
        where, args = "bucket >= ? AND bucket < ?", [s, e]
        for lo, hi in pending:
            where += " AND NOT (bucket >= ? AND bucket < ?)"
            args += [lo, hi]
        if keys is not None:
            where += f" AND point IN ({','.join('?' * len(keys))})"
            args += keys
        parts = list(self.db.execute(
            f"SELECT point, sum(n), sum(sum), min(min), max(max) FROM rollup_day WHERE {where} "
            "GROUP BY point", args))
        day = self._bucket_expr(86400)
        for lo, hi in pending:
            w, a = f"ts >= ? AND ts < ? AND {_COUNTED} AND {day} >= ? AND {day} < ?", \
                [lo, hi, s, e]
            if keys is not None:
                w += f" AND point IN ({','.join('?' * len(keys))})"
                a += keys
            parts += self.db.execute("SELECT point, count(*), sum(value), min(value), "
                                     f"max(value) FROM readings WHERE {w} GROUP BY point", a)
        merged: dict[int, list] = {}
        for key, n, total, lo, hi in parts:
            m = merged.setdefault(key, [0, 0.0, None, None])
            m[0] += n or 0
            m[1] += total or 0.0
            m[2] = lo if m[2] is None else (m[2] if lo is None else min(m[2], lo))
            m[3] = hi if m[3] is None else (m[3] if hi is None else max(m[3], hi))
        names = dict(self.db.execute("SELECT key, id FROM point_keys")) if merged else {}
        return {names[k]: {"n": n, "sum": total, "mean": total / n if n else None, "min": lo,
                           "max": hi} for k, (n, total, lo, hi) in merged.items()}

    def count_readings(self, point: str | None = None) -> int:
        if point is None:
            return self.db.execute("SELECT count(*) FROM readings").fetchone()[0]
        key = self._key(point)
        if key is None:
            return 0
        return self.db.execute("SELECT count(*) FROM readings WHERE point = ?",
                               [key]).fetchone()[0]

    def newest_reading(self) -> dt.datetime | None:
        """When the newest reading was taken (one step down the clustered key)."""
        ts = self.db.execute("SELECT max(ts) FROM readings").fetchone()[0]
        return from_epoch(ts) if ts is not None else None

    def time_span(self) -> tuple[dt.datetime | None, dt.datetime | None, int]:
        """First and last reading and how many there are."""
        first, last, n = self.db.execute("SELECT min(ts), max(ts), count(*) FROM readings").fetchone()
        return (from_epoch(first) if first is not None else None,
                from_epoch(last) if last is not None else None, n)


def _staged(ts: int, key: int, value, quality: int) -> tuple:
    """A reading as stored: a value that is not a finite number (NaN, inf from a device) is
    kept as a `bad` reading without a value, so it never enters a rollup or a decision."""
    if value is None:
        return ts, key, None, quality
    v = float(value)
    if not math.isfinite(v):
        return ts, key, None, 3
    return ts, key, v, quality


def _inside(bucket: int, ranges: list[tuple[int, int]]) -> bool:
    return any(lo <= bucket < hi for lo, hi in ranges)


def _merge(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(lo, hi) for lo, hi in out]
