"""The read API's tokens (hashes only) and how much each is used per day."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from typing import Any

from bems.storage.common import from_epoch, to_epoch

_COLS = ("name", "hash", "scope", "created_ts", "created_by", "expires_ts", "revoked_ts",
         "last_used_ts")


def _row(r: tuple) -> dict:
    d = dict(zip(_COLS, r))
    for k in ("created", "expires", "revoked", "last_used"):
        ts = d.pop(f"{k}_ts")
        d[k] = from_epoch(ts) if ts is not None else None
    return d


class Tokens:
    db: Any

    def add_token(self, name: str, hashed: str, scope: str, now: dt.datetime | int,
                  expires: dt.datetime | None, by: str | None) -> bool:
        try:
            with self.db.atomic():
                self.db.execute("INSERT INTO api_tokens (name, hash, scope, created_ts, "
                                "created_by, expires_ts) VALUES (?, ?, ?, ?, ?, ?)",
                                [name, hashed, scope, to_epoch(now), by,
                                 to_epoch(expires) if expires else None])
        except sqlite3.IntegrityError:
            return False
        return True

    def token_by_hash(self, hashed: str) -> dict | None:
        r = self.db.execute(f"SELECT {', '.join(_COLS)} FROM api_tokens WHERE hash = ?",
                            [hashed]).fetchone()
        return _row(r) if r else None

    def tokens(self) -> list[dict]:
        rows = [_row(r) for r in self.db.execute(
            f"SELECT {', '.join(_COLS)} FROM api_tokens ORDER BY name")]
        for t in rows:
            t.pop("hash")
            t["uses"] = dict(self.db.execute("SELECT day, n FROM api_use WHERE token = ? "
                                             "ORDER BY day DESC LIMIT 31", [t["name"]]))
        return rows

    def revoke_token(self, name: str, now: dt.datetime | int) -> bool:
        with self.db.atomic():
            cur = self.db.execute("UPDATE api_tokens SET revoked_ts = ? WHERE name = ? AND "
                                  "revoked_ts IS NULL", [to_epoch(now), name])
        return cur.rowcount == 1

    def count_token_use(self, name: str, day: str, now: dt.datetime | int) -> None:
        """One more use of the token on a local day (YYYY-MM-DD); its first use of a day is
        also a line in the audit (the day's count is in `tokens()`)."""
        with self.db.atomic():
            n = self.db.execute("INSERT INTO api_use (token, day, n) VALUES (?, ?, 1) "
                                "ON CONFLICT (token, day) DO UPDATE SET n = n + 1 "
                                "RETURNING n", [name, day]).fetchone()[0]
            self.db.execute("UPDATE api_tokens SET last_used_ts = ? WHERE name = ?",
                            [to_epoch(now), name])
            if n == 1:
                self.db.execute("INSERT INTO audit (ts, user, action, detail) VALUES "
                                "(?, ?, 'token.use', ?)",
                                [to_epoch(now), f"token:{name}",
                                 json.dumps({"name": name, "day": day})])
