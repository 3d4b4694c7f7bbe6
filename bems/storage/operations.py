"""Operations: schedules and exception days as edited, operator overrides, users, the audit
of user actions, and small settings (meta)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from bems.storage.common import epoch_or_now, from_epoch, time_range, to_epoch
from bems.state import Key


class Operations:
    """Mixin of `Store`."""

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

    def audit_count_by_day(self, action: str, since: dt.datetime | int,
                           until: dt.datetime | int) -> dict[dt.date, int]:
        """How many times an action was audited per local day in [since, until)."""
        off = self.day_offset
        cur = self.db.execute("SELECT (ts + ?) / 86400, count(*) FROM audit WHERE action = ? "
                              "AND ts >= ? AND ts < ? GROUP BY 1",
                              [off, action, to_epoch(since), to_epoch(until)])
        return {dt.date(1970, 1, 1) + dt.timedelta(days=d): n for d, n in cur}

    def add_user(self, name: str, role: str, password_hash: str, lang: str = "vi",
                 when: dt.datetime | int | None = None) -> bool:
        """A new user; False (and nothing changed) if the name is taken."""
        with self.db.atomic():
            cur = self.db.execute("INSERT OR IGNORE INTO users (name, role, password_hash, lang, "
                                  "created_at) VALUES (?, ?, ?, ?, ?)",
                                  [name, role, password_hash, lang, epoch_or_now(when)])
        return cur.rowcount == 1

    def update_user(self, name: str, *, role: str | None = None,
                    password_hash: str | None = None, disabled: bool | None = None) -> bool:
        sets, args = [], []
        for column, value in (("role", role), ("password_hash", password_hash),
                              ("disabled", None if disabled is None else int(disabled))):
            if value is not None:
                sets.append(f"{column} = ?")
                args.append(value)
        if not sets:
            return False
        with self.db.atomic():
            cur = self.db.execute(f"UPDATE users SET {', '.join(sets)} WHERE name = ?",
                                  [*args, name])
        return cur.rowcount == 1

    def delete_user(self, name: str) -> bool:
        with self.db.atomic():
            self.db.execute("DELETE FROM sessions WHERE user = ?", [name])
            return self.db.execute("DELETE FROM users WHERE name = ?", [name]).rowcount == 1

    # --- web sessions ------------------------------------------------------------------------

    def create_session(self, session_id: str, user: str, now: dt.datetime,
                       expires_at: dt.datetime) -> None:
        with self.db.atomic():
            self.db.execute("DELETE FROM sessions WHERE expires_at <= ?", [to_epoch(now)])
            self.db.execute("INSERT INTO sessions (id, user, created_at, expires_at) VALUES "
                            "(?, ?, ?, ?)", [session_id, user, to_epoch(now),
                                             to_epoch(expires_at)])

    def session_user(self, session_id: str, now: dt.datetime) -> str | None:
        row = self.db.execute("SELECT user FROM sessions WHERE id = ? AND expires_at > ?",
                              [session_id, to_epoch(now)]).fetchone()
        return row[0] if row else None

    def end_sessions(self, *, session_id: str | None = None, user: str | None = None) -> int:
        column, value = ("id", session_id) if session_id is not None else ("user", user)
        with self.db.atomic():
            return self.db.execute(f"DELETE FROM sessions WHERE {column} = ?", [value]).rowcount

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
                   action: str | None = None, since: dt.datetime | int | None = None,
                   until: dt.datetime | int | None = None, oldest_first: bool = False,
                   exclude: tuple[str, ...] = ()) -> list[dict]:
        """User actions, newest first (or oldest first), filtered by user, action prefix,
        time [since, until), and without the actions in `exclude`."""
        where, args = ["1"], []
        if exclude:
            where.append(f"action NOT IN ({','.join('?' * len(exclude))})")
            args += list(exclude)
        if user:
            where.append("user = ?")
            args.append(user)
        if action:
            where.append("action LIKE ? ESCAPE '\\'")
            args.append(action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                        + "%")
        time_range(where, args, since, until)
        order = "ASC" if oldest_first else "DESC"
        sql = (f"SELECT ts, user, action, detail FROM audit WHERE {' AND '.join(where)} "
               f"ORDER BY id {order} LIMIT ?")
        return [{"ts": from_epoch(ts), "user": u, "action": a, "detail": d}
                for ts, u, a, d in self.db.execute(sql, [*args, limit])]

    # --- BEMS's typed state (bems.state) and the audit ------------------------------

    def put(self, key: "Key", value: Any) -> None:
        """Keep a piece of state (its kind declared in bems.state)."""
        with self.db.atomic():
            self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) "
                            "DO UPDATE SET value = excluded.value",
                            [key.name, json.dumps(value)])

    def get(self, key: "Key") -> Any:
        """A piece of state as its kind says (its default when absent or not of its type)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key.name]).fetchone()
        return key.read(json.loads(row[0]) if row else None)

    def audit(self, user: str | None, action: str, detail: dict | None = None,
              ts: dt.datetime | int | None = None) -> None:
        when = epoch_or_now(ts)
        with self.db.atomic():
            self.db.execute("INSERT INTO audit (ts, user, action, detail) VALUES (?, ?, ?, ?)",
                            [when, user, action, json.dumps(detail or {}, ensure_ascii=False)])
