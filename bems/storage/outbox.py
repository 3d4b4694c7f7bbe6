"""The portfolio outbox: messages for the city energy office, kept until the city confirms it
has stored them.

Rows are added in one transaction with the cursor that says what they cover, so a crash never
sends something twice as a new message nor skips it; the row id is the message's sequence
number. Sent rows are kept a while (for the UI and for a replay asked by hand), then pruned.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Any, Iterable

from bems.storage.common import to_epoch
from bems.state import LATE_ID, PORTFOLIO_BOX


class Outbox:
    def enqueue(self, messages: Iterable[tuple[str, dict]], now: dt.datetime | int,
                cursors: dict[str, Any] | None = None) -> int:
        """Add (kind, body) messages and move the named cursors, all or nothing."""
        t = to_epoch(now)
        rows = [(kind, json.dumps(body, separators=(",", ":"), ensure_ascii=False,
                                  allow_nan=False), t) for kind, body in messages]
        with self.db.atomic():
            # a write first: the transaction takes the write lock at once (waiting its turn),
            # instead of reading first and finding its snapshot stale when it comes to write
            self.db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                            [PORTFOLIO_BOX.name, json.dumps(secrets.token_hex(8))])
            self.db.conn.executemany("INSERT INTO outbox (kind, body, created) VALUES (?, ?, ?)", rows)
            for key, value in (cursors or {}).items():  # Keys of bems.state
                self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) "
                                "DO UPDATE SET value = excluded.value",
                                [key.name, json.dumps(value)])
        return len(rows)

    def portfolio_late(self, after: int, limit: int = 1000) -> list[tuple[int, int, int]]:
        """(id, lo, hi) of the readings spans stored behind the portfolio's cursor, after
        id `after`."""
        return self.db.execute("SELECT id, lo, hi FROM portfolio_late WHERE id > ? ORDER BY id "
                               "LIMIT ?", [after, limit]).fetchall()

    def outbox_id(self) -> str | None:
        """The outbox's own id (made with its first message): sequence numbers count in it."""
        return self.get(PORTFOLIO_BOX)

    def unsent(self, after: int = 0, limit: int = 500) -> list[tuple[int, str, str, int]]:
        """(seq, kind, body, created) not yet acknowledged, oldest first, after seq `after`."""
        return self.db.execute("SELECT id, kind, body, created FROM outbox WHERE sent IS NULL "
                               "AND id > ? ORDER BY id LIMIT ?", [after, limit]).fetchall()

    def confirm_sent(self, upto: int, now: dt.datetime | int, after: int = 0) -> int:
        """The city holds everything up to `upto`: mark it sent (the rows after `after`: what
        was marked before need not be looked at again); how many rows changed."""
        with self.db.atomic():
            return self.db.execute("UPDATE outbox SET sent = ? WHERE id > ? AND id <= ? AND "
                                   "sent IS NULL", [to_epoch(now), after, upto]).rowcount

    def outbox_status(self) -> dict[str, Any]:
        n, oldest = self.db.execute("SELECT count(*), min(created) FROM outbox "
                                    "WHERE sent IS NULL").fetchone()
        last_sent, last_seq = self.db.execute("SELECT max(sent), max(id) FROM outbox").fetchone()
        return {"unsent": n, "oldest_unsent": oldest, "last_sent": last_sent,
                "last_seq": last_seq or 0}

    def prune_outbox(self, sent_before: dt.datetime | int, max_unsent: int) -> tuple[int, int]:
        """Delete rows sent before `sent_before`; of the unsent, keep the newest `max_unsent`
        (a link down for months must not fill the disk). Returns (pruned, dropped unsent)."""
        with self.db.atomic():
            pruned = self.db.execute("DELETE FROM outbox WHERE sent IS NOT NULL AND sent < ?",
                                     [to_epoch(sent_before)]).rowcount
            row = self.db.execute("SELECT id FROM outbox WHERE sent IS NULL ORDER BY id DESC "
                                  "LIMIT 1 OFFSET ?", [max_unsent]).fetchone()
            dropped = 0
            if row is not None:
                dropped = self.db.execute("DELETE FROM outbox WHERE sent IS NULL AND id <= ?",
                                          [row[0]]).rowcount
            done = self.db.execute("SELECT value FROM meta WHERE key = ?",
                                   [LATE_ID.name]).fetchone()
            if done is not None:  # late spans already queued
                self.db.execute("DELETE FROM portfolio_late WHERE id <= ?", [json.loads(done[0])])
        return pruned, dropped
