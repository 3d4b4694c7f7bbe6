"""The alarm log (every occurrence of an alarm: raised, acknowledged by whom, cleared) and the
notifications to people that alarms and faults cause, kept until delivered.

An occurrence is opened when an alarm's key becomes active and closed when it is no longer
active; the runtime compares the active set with the open rows every minute (`sync_alarms`).
Notifications are rows of their own, one per event, recipient and channel (a second enqueue
of the same event is ignored); a row is marked sent only after the relay or webhook accepted
it, so a crash loses nothing (the message in flight at a crash may go twice, with the same
Message-ID or delivery id).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Iterable

from bems.storage.common import from_epoch, time_range, to_epoch

_LOG_COLS = ("id", "key", "kind", "severity", "target", "value", "raised_ts", "acked_ts",
             "acked_by", "cleared_ts")


def _log_row(r: tuple) -> dict:
    d = dict(zip(_LOG_COLS, r))
    for k in ("raised", "acked", "cleared"):
        ts = d.pop(f"{k}_ts")
        d[k] = from_epoch(ts) if ts is not None else None
    return d


class AlarmLog:
    db: Any

    # --- the log ----------------------------------------------------------------------------

    def sync_alarms(self, active: Iterable[dict], now: dt.datetime | int
                    ) -> list[tuple[str, dict]]:
        """Open an occurrence for each active alarm (key, kind, severity, target, value) that
        has none, close the open ones no longer active. Returns the events, ("raised", row)
        and ("cleared", row), in that order."""
        t = to_epoch(now)
        active = {a["key"]: a for a in active}
        events: list[tuple[str, dict]] = []
        with self.db.atomic():
            open_rows = {r["key"]: r for r in self.open_alarms()}
            for key, a in active.items():
                if key in open_rows:
                    continue
                events.append(("raised", self._insert_alarm({**a, "key": key}, t)))
            for key, r in open_rows.items():
                if key not in active:
                    self.db.execute("UPDATE alarm_log SET cleared_ts = ? WHERE id = ?",
                                    [t, r["id"]])
                    r["cleared"] = from_epoch(t)
                    events.append(("cleared", r))
        return events

    def open_alarm(self, a: dict, raised: dt.datetime | int) -> dict:
        """An occurrence opened by someone other than the runtime's evaluation (the web
        process's watch over the runtime); the next evaluation closes it."""
        with self.db.atomic():
            return self._insert_alarm(a, raised)

    def log_closed_alarm(self, a: dict, raised: dt.datetime | int, cleared: dt.datetime | int
                         ) -> dict:
        """An occurrence known only once it was over (an outage of BEMS itself)."""
        with self.db.atomic():
            return self._insert_alarm(a, raised, cleared)

    def _insert_alarm(self, a: dict, raised: dt.datetime | int,
                      cleared: dt.datetime | int | None = None) -> dict:
        cur = self.db.execute(
            "INSERT INTO alarm_log (key, kind, severity, target, value, raised_ts, cleared_ts) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [a["key"], a["kind"], a["severity"], str(a["target"])[:200], a.get("value"),
             to_epoch(raised), to_epoch(cleared) if cleared is not None else None])
        return self.alarm_entry(cur.lastrowid)

    def open_alarms(self) -> list[dict]:
        cur = self.db.execute(f"SELECT {', '.join(_LOG_COLS)} FROM alarm_log "
                              "WHERE cleared_ts IS NULL ORDER BY id")
        return [_log_row(r) for r in cur]

    def alarm_entry(self, entry_id: int) -> dict | None:
        r = self.db.execute(f"SELECT {', '.join(_LOG_COLS)} FROM alarm_log WHERE id = ?",
                            [entry_id]).fetchone()
        return _log_row(r) if r else None

    def ack_alarm_entry(self, key: str, user: str, now: dt.datetime | int) -> int:
        """The open occurrence of `key` acknowledged by `user` (the first acknowledgement
        counts). Returns the rows changed."""
        with self.db.atomic():
            cur = self.db.execute("UPDATE alarm_log SET acked_ts = ?, acked_by = ? WHERE key = ? "
                                  "AND cleared_ts IS NULL AND acked_ts IS NULL",
                                  [to_epoch(now), user[:100], key])
        return cur.rowcount

    def alarm_history(self, since: dt.datetime | int | None = None,
                      until: dt.datetime | int | None = None, kind: str | None = None,
                      state: str | None = None, limit: int = 1000) -> list[dict]:
        """Occurrences raised in [since, until), newest first; `state` "open", "cleared",
        "unacknowledged". Each with the notifications it caused (`sent`, `pending`)."""
        where: list[str] = []
        args: list = []
        time_range(where, args, since, until, "raised_ts")
        if kind:
            where.append("kind = ?")
            args.append(kind)
        if state == "open":
            where.append("cleared_ts IS NULL")
        elif state == "cleared":
            where.append("cleared_ts IS NOT NULL")
        elif state == "unacknowledged":
            where.append("acked_ts IS NULL")
        sql = f"SELECT {', '.join(_LOG_COLS)} FROM alarm_log"
        sql += (" WHERE " + " AND ".join(where)) if where else ""
        rows = [_log_row(r) for r in self.db.execute(sql + " ORDER BY raised_ts DESC, id DESC "
                                                     "LIMIT ?", [*args, limit])]
        if rows:
            counts: dict[str, list[int]] = {}
            refs = [f"alarm:{r['id']}" for r in rows]
            for i in range(0, len(refs), 500):
                part = refs[i:i + 500]
                cur = self.db.execute(
                    "SELECT ref, sum(sent_ts IS NOT NULL), sum(sent_ts IS NULL) FROM "
                    f"notifications WHERE ref IN ({', '.join('?' * len(part))}) GROUP BY ref",
                    part)
                counts.update({ref: [s, p] for ref, s, p in cur})
            for r in rows:
                r["sent"], r["pending"] = counts.get(f"alarm:{r['id']}", [0, 0])
        return rows

    def alarm_summary(self, since: dt.datetime | int, until: dt.datetime | int) -> dict:
        """For a report: occurrences raised in [since, until) by severity, how many were
        acknowledged, and the median minutes to acknowledge."""
        cur = self.db.execute("SELECT severity, acked_ts - raised_ts FROM alarm_log "
                              "WHERE raised_ts >= ? AND raised_ts < ?",
                              [to_epoch(since), to_epoch(until)])
        by_sev: dict[str, int] = {}
        waits = []
        for sev, wait in cur:
            by_sev[sev] = by_sev.get(sev, 0) + 1
            if wait is not None:
                waits.append(max(0, wait) / 60)
        waits.sort()
        n = len(waits)
        median = None if not n else (waits[n // 2] if n % 2 else
                                     (waits[n // 2 - 1] + waits[n // 2]) / 2)
        return {"raised": sum(by_sev.values()), "by_severity": by_sev, "acknowledged": n,
                "median_ack_min": median}

    def purge_alarm_log(self, before: dt.datetime | int) -> int:
        """Closed occurrences and delivered notifications older than `before`."""
        t = to_epoch(before)
        with self.db.atomic():
            n = self.db.execute("DELETE FROM alarm_log WHERE cleared_ts < ?", [t]).rowcount
            self.db.execute("DELETE FROM notifications WHERE sent_ts < ?", [t])
        return n

    # --- notifications ----------------------------------------------------------------------

    def enqueue_notifications(self, rows: Iterable[dict], now: dt.datetime | int) -> int:
        """Rows with ref, key, event, recipient, channel, severity, body (dict), due (time).
        An event already queued for that recipient and channel is ignored. Returns how
        many were added."""
        t = to_epoch(now)
        n = 0
        with self.db.atomic():
            for r in rows:
                cur = self.db.execute(
                    "INSERT OR IGNORE INTO notifications (ref, key, event, recipient, channel, "
                    "severity, body, created_ts, due_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [r["ref"], r["key"], r["event"], r["recipient"], r["channel"],
                     r["severity"], json.dumps(r["body"], ensure_ascii=False, allow_nan=False),
                     t, to_epoch(r.get("due", t))])
                n += cur.rowcount
        return n

    def notified(self, ref: str, recipient: str, channel: str) -> set[str]:
        """The events of `ref` queued (sent or not) for a recipient and channel."""
        cur = self.db.execute("SELECT event FROM notifications WHERE ref = ? AND recipient = ? "
                              "AND channel = ?", [ref, recipient, channel])
        return {e for (e,) in cur}

    def last_raised(self, key: str, recipient: str, channel: str) -> dt.datetime | None:
        """When a "raised" message for alarm `key` was last queued for this recipient."""
        r = self.db.execute("SELECT max(created_ts) FROM notifications WHERE key = ? AND "
                            "recipient = ? AND channel = ? AND event = 'raised'",
                            [key, recipient, channel]).fetchone()
        return from_epoch(r[0]) if r and r[0] is not None else None

    def due_notifications(self, now: dt.datetime | int, limit: int = 500) -> list[dict]:
        cur = self.db.execute(
            "SELECT id, ref, key, event, recipient, channel, severity, body, created_ts, "
            "attempts FROM notifications WHERE sent_ts IS NULL AND due_ts <= ? "
            "ORDER BY id LIMIT ?", [to_epoch(now), limit])
        out = []
        for i, ref, key, event, rcpt, ch, sev, body, created, attempts in cur:
            out.append({"id": i, "ref": ref, "key": key, "event": event, "recipient": rcpt,
                        "channel": ch, "severity": sev, "body": json.loads(body),
                        "created": from_epoch(created), "attempts": attempts})
        return out

    def mark_notified(self, ids: list[int], now: dt.datetime | int) -> None:
        with self.db.atomic():
            self.db.conn.executemany(
                "UPDATE notifications SET sent_ts = ?, attempts = attempts + 1, last_error = NULL "
                "WHERE id = ? AND sent_ts IS NULL", [(to_epoch(now), i) for i in ids])

    def notification_failed(self, ids: list[int], error: str, retry_at: dt.datetime | int
                            ) -> None:
        with self.db.atomic():
            self.db.conn.executemany(
                "UPDATE notifications SET attempts = attempts + 1, last_error = ?, due_ts = ? "
                "WHERE id = ? AND sent_ts IS NULL",
                [(error[:500], to_epoch(retry_at), i) for i in ids])

    def count_unsent_notifications(self) -> int:
        return self.db.execute("SELECT count(*) FROM notifications WHERE sent_ts IS NULL"
                               ).fetchone()[0]

    def notifications(self, ref: str | None = None, limit: int = 1000) -> list[dict]:
        """Queued and delivered notifications, newest first (all, or those of one event's
        cause `ref`)."""
        where, args = ("WHERE ref = ?", [ref]) if ref is not None else ("", [])
        cur = self.db.execute(
            "SELECT id, ref, key, event, recipient, channel, severity, created_ts, due_ts, "
            f"attempts, last_error, sent_ts FROM notifications {where} ORDER BY id DESC LIMIT ?",
            [*args, limit])
        cols = [c[0] for c in cur.description]
        out = []
        for r in cur:
            d = dict(zip(cols, r))
            for k in ("created", "due", "sent"):
                ts = d.pop(f"{k}_ts")
                d[k] = from_epoch(ts) if ts is not None else None
            out.append(d)
        return out
