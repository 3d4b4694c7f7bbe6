"""The write ledger: every attempt to write a device (done, unchanged, rejected, failed,
released), and which writes may still sit in a priority array."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable

from bems.reasons import Reason, from_ledger
from bems.storage.common import epoch_or_now, from_epoch, time_range, to_epoch


@dataclass(frozen=True)
class WriteRecord:
    id: int
    ts: dt.datetime
    point: str
    action: str
    value: str | None
    priority: int | None
    source: str | None
    reason: str | None  # a bems.reasons.Reason when its parts were kept (str: older rows)
    outcome: str
    error: str | None
    readback: str | None
    released_at: dt.datetime | None
    device: str | None = None
    object: str | None = None
    previous: str | None = None  # what a write to a non-commandable point replaced


# write outcomes after which a value may sit in a device: held until released
HELD_OUTCOMES = "'done', 'failed', 'unconfirmed'"


class Ledger:
    """Mixin of `Store`."""

    def record_write(self, *, point: str, action: str, value: Any, priority: int | None,
                     source: str, reason: str, outcome: str, error: str | None = None,
                     readback: Any = None, device: str | None = None, object: str | None = None,
                     ts: dt.datetime | int | None = None, previous: Any = None) -> int:
        """Append one write attempt to the ledger."""
        with self.db.atomic():
            cur = self.db.execute(
                "INSERT INTO writes (ts, point, device, object, action, value, priority, source, "
                "reason, reason_parts, outcome, error, readback, previous) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [epoch_or_now(ts), point, device, object, action,
                 None if value is None else str(value), priority, source,
                 None if reason is None else str(reason),
                 reason.to_json() if isinstance(reason, Reason) else None, outcome, error,
                 None if readback is None else str(readback),
                 None if previous is None else str(previous)])
        return cur.lastrowid

    def mark_released(self, point: str, priority: int | None, ts: dt.datetime | int) -> int:
        """Mark every held write of a point at a priority (None: a non-commandable point's
        direct writes) as released."""
        with self.db.atomic():
            cur = self.db.execute("UPDATE writes SET released_at = ? WHERE point = ? AND "
                                  "priority IS ? AND action = 'write' AND outcome IN "
                                  f"({HELD_OUTCOMES}) AND released_at IS NULL",
                                  [to_epoch(ts), point, priority])
        return cur.rowcount

    def held_writes(self) -> list[WriteRecord]:
        """Writes that may sit in a priority array and were never released: what a restart
        must clean up. A write that failed its read-back may still have landed, so it counts."""
        return self.writes(action="write", outcomes=("done", "failed", "unconfirmed"),
                           held=True)

    def writes(self, *, point: str | None = None, action: str | None = None,
               sources: Iterable[str] | None = None, outcomes: Iterable[str] | None = None,
               since: dt.datetime | int | None = None, until: dt.datetime | int | None = None,
               held: bool = False, limit: int = 1000) -> list[WriteRecord]:
        """Ledger rows, newest first, filtered by point, action, sources, outcomes, time
        [since, until) and, with held, only those never released."""
        where, args = ["1"], []
        for column, value in (("point", point), ("action", action)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        for column, values in (("source", sources), ("outcome", outcomes)):
            if values is not None:
                values = list(values)
                where.append(f"{column} IN ({','.join('?' * len(values))})")
                args += values
        time_range(where, args, since, until)
        if held:
            where.append("released_at IS NULL")
        cur = self.db.execute(
            "SELECT id, ts, point, action, value, priority, source, reason, outcome, error, "
            f"readback, released_at, device, object, previous, reason_parts FROM writes WHERE "
            f"{' AND '.join(where)} ORDER BY id DESC LIMIT ?", [*args, limit])
        return [WriteRecord(r[0], from_epoch(r[1]), r[2], r[3], r[4], r[5], r[6],
                            from_ledger(r[7], r[15]), r[8], r[9], r[10],
                            from_epoch(r[11]) if r[11] else None, r[12], r[13], r[14])
                for r in cur]

    def count_writes(self) -> int:
        return self.db.execute("SELECT count(*) FROM writes").fetchone()[0]
