"""Faults found by the rules, and what people did about them (acknowledge, assign, close)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from bems.storage.common import from_epoch, to_epoch

STATUSES = ("open", "acknowledged", "closed")
# the same fault found again within four days is the same occurrence: a fault that recurs every
# working day stays one line over a weekend or a public holiday (Tết, longer, starts a new one)
MERGE_S = 4 * 24 * 3600


class Faults:
    db: Any

    def record_fault(self, f: dict, now: dt.datetime | int) -> int:
        """Record a finding: extend the occurrence of the same rule on the same target that
        it overlaps or comes within four days of (unless that one was closed), or start a new
        one. `f` has rule, target, target_kind, first, last, detected (datetimes), kwh_per_day,
        vnd_per_day, discomfort_kh, evidence (dict). Returns the fault's id."""
        first, last = to_epoch(f["first"]), to_epoch(f["last"])
        row = self.db.execute(
            "SELECT id, first_ts, last_ts, detected_ts FROM faults WHERE rule = ? AND target = ? "
            "AND status != 'closed' AND last_ts >= ? AND first_ts <= ? "
            "ORDER BY last_ts DESC LIMIT 1",
            [f["rule"], f["target"], first - MERGE_S, last + MERGE_S]).fetchone()
        values = [f["kwh_per_day"], f["vnd_per_day"], f["discomfort_kh"],
                  json.dumps(f.get("evidence", {}), ensure_ascii=False), to_epoch(now)]
        with self.db.atomic():
            if row is not None:
                self.db.execute(
                    "UPDATE faults SET first_ts = min(first_ts, ?), last_ts = max(last_ts, ?), "
                    "detected_ts = min(detected_ts, ?), kwh_per_day = ?, vnd_per_day = ?, "
                    "discomfort_kh = ?, evidence = ?, updated_at = ? WHERE id = ?",
                    [first, last, to_epoch(f["detected"]), *values, row[0]])
                return row[0]
            cur = self.db.execute(
                "INSERT INTO faults (rule, target, target_kind, first_ts, last_ts, detected_ts, "
                "kwh_per_day, vnd_per_day, discomfort_kh, evidence, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [f["rule"], f["target"], f["target_kind"], first, last, to_epoch(f["detected"]),
                 *values])
            return cur.lastrowid

    def faults(self, since: dt.datetime | int | None = None, status: str | None = None,
               target: str | None = None, limit: int = 500) -> list[dict]:
        """Faults seen since `since` (all if None), most costly first."""
        where, args = [], []
        if since is not None:
            where.append("last_ts >= ?")
            args.append(to_epoch(since))
        if status == "active":
            where.append("status != 'closed'")
        elif status is not None:
            where.append("status = ?")
            args.append(status)
        if target is not None:
            where.append("target = ?")
            args.append(target)
        sql = "SELECT * FROM faults" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY vnd_per_day DESC, discomfort_kh DESC, last_ts DESC LIMIT ?"
        cur = self.db.execute(sql, args + [limit])
        cols = [c[0] for c in cur.description]
        return [_row(dict(zip(cols, r))) for r in cur]

    def faults_changed(self, since: dt.datetime | int, limit: int = 1000) -> list[dict]:
        """Faults seen again or edited by someone at or after `since`, oldest change first."""
        t = to_epoch(since)
        cur = self.db.execute("SELECT * FROM faults WHERE last_ts >= ? OR updated_at >= ? "
                              "ORDER BY max(last_ts, coalesce(updated_at, 0)), id LIMIT ?",
                              [t, t, limit])
        cols = [c[0] for c in cur.description]
        return [_row(dict(zip(cols, r))) for r in cur]

    def faults_after(self, fault_id: int, limit: int = 1000) -> list[dict]:
        """Faults recorded after the one with this id (ids only grow), oldest first."""
        cur = self.db.execute("SELECT * FROM faults WHERE id > ? ORDER BY id LIMIT ?",
                              [fault_id, limit])
        cols = [c[0] for c in cur.description]
        return [_row(dict(zip(cols, r))) for r in cur]

    def last_fault_id(self) -> int:
        return self.db.execute("SELECT coalesce(max(id), 0) FROM faults").fetchone()[0]

    def fault(self, fault_id: int) -> dict | None:
        cur = self.db.execute("SELECT * FROM faults WHERE id = ?", [fault_id])
        r = cur.fetchone()
        return _row(dict(zip([c[0] for c in cur.description], r))) if r else None

    def update_fault(self, fault_id: int, user: str, now: dt.datetime, *, status: str | None = None,
                     assignee: str | None = None, note: str = "") -> bool:
        """Acknowledge, assign or close a fault, with a note; the change is audited."""
        f = self.fault(fault_id)
        if f is None or (status is not None and status not in STATUSES):
            return False
        notes = f["notes"] + [{"at": now.isoformat(), "by": user, "status": status,
                               "assignee": assignee, "note": note}]
        with self.db.atomic():
            self.db.execute(
                "UPDATE faults SET status = coalesce(?, status), assignee = coalesce(?, assignee), "
                "notes = ?, updated_at = ? WHERE id = ?",
                [status, assignee, json.dumps(notes, ensure_ascii=False), to_epoch(now), fault_id])
        self.audit(user, "fault.update", {"id": fault_id, "rule": f["rule"], "target": f["target"],
                                          "status": status, "assignee": assignee, "note": note},
                   now)
        return True

    def count_faults(self, since: dt.datetime | int) -> dict[str, int]:
        """Active faults seen since `since`, by target kind."""
        cur = self.db.execute("SELECT target_kind, count(*) FROM faults WHERE status != 'closed' "
                              "AND last_ts >= ? GROUP BY target_kind", [to_epoch(since)])
        return dict(cur.fetchall())


def _row(r: dict) -> dict:
    for k in ("first_ts", "last_ts", "detected_ts", "updated_at"):
        r[k.replace("_ts", "")] = from_epoch(r[k]) if r.get(k) is not None else None
    r["evidence"] = json.loads(r["evidence"] or "{}")
    r["notes"] = json.loads(r["notes"] or "[]")
    return r
