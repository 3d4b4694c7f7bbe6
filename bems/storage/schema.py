"""The database schema, created and upgraded by sqlite-utils migrations (applied in order)."""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.migrations import Migrations

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




@migrations(name="0003_sessions")
def _m0003(db: sqlite_utils.Database) -> None:
    # web sessions held on the server: logout, a password change or a disabled account ends
    # them, whatever a browser (or a thief of its cookie) still holds
    db.execute("CREATE TABLE sessions (id TEXT PRIMARY KEY, user TEXT NOT NULL, "
               "created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL)")
    db.execute("CREATE INDEX sessions_user ON sessions (user)")


@migrations(name="0004_restorable_writes")
def _m0004(db: sqlite_utils.Database) -> None:
    # a write to a point without a priority array replaces a value: kept, to restore it
    db.execute("ALTER TABLE writes ADD COLUMN previous TEXT")


@migrations(name="0005_faults")
def _m0005(db: sqlite_utils.Database) -> None:
    # a fault found by the rules (bems/faults): one row per occurrence; a rule that finds the
    # same fault on the same target again within a day extends it instead of adding a row
    db.execute("CREATE TABLE faults (id INTEGER PRIMARY KEY, rule TEXT NOT NULL, "
               "target TEXT NOT NULL, target_kind TEXT NOT NULL, first_ts INTEGER NOT NULL, "
               "last_ts INTEGER NOT NULL, detected_ts INTEGER NOT NULL, "
               "kwh_per_day REAL NOT NULL DEFAULT 0, vnd_per_day REAL NOT NULL DEFAULT 0, "
               "discomfort_kh REAL NOT NULL DEFAULT 0, evidence TEXT, "
               "status TEXT NOT NULL DEFAULT 'open', assignee TEXT, notes TEXT, "
               "updated_at INTEGER)")
    db.execute("CREATE INDEX faults_target ON faults (rule, target, last_ts)")
    db.execute("CREATE INDEX faults_last ON faults (last_ts)")


@migrations(name="0006_portfolio_outbox")
def _m0006(db: sqlite_utils.Database) -> None:
    # What the city portfolio has not yet acknowledged. The row id is the message's sequence
    # number (AUTOINCREMENT: never reused, so the receiver can count gaps).
    db.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, "
               "body TEXT NOT NULL, created INTEGER NOT NULL, sent INTEGER)")
    db.execute("CREATE INDEX outbox_unsent ON outbox (sent, id)")


@migrations(name="0007_implausible_readings")
def _m0007(db: sqlite_utils.Database) -> None:
    # finite readings outside a point's plausible range: stored as `bad` without a value in
    # `readings`, the raw number kept here for the record
    db.execute("CREATE TABLE implausible (ts INTEGER NOT NULL, point INTEGER NOT NULL, "
               "raw REAL NOT NULL, PRIMARY KEY (ts, point)) WITHOUT ROWID")


@migrations(name="0008_portfolio_late_spans")
def _m0008(db: sqlite_utils.Database) -> None:
    # spans of readings stored behind the city portfolio's readings cursor (a trend-log
    # backfill of a polling gap): the collector sends them with a cursor of their own
    db.execute("CREATE TABLE portfolio_late (id INTEGER PRIMARY KEY, lo INTEGER NOT NULL, "
               "hi INTEGER NOT NULL)")


@migrations(name="0009_reason_parts")
def _m0009(db: sqlite_utils.Database) -> None:
    # a write's reason as data (bems/reasons.py): [[code, {arguments}], ...] beside its English
    # text, so the UI renders it in the reader's language without parsing the text
    db.execute("ALTER TABLE writes ADD COLUMN reason_parts TEXT")


@migrations(name="0010_alarm_log_and_notifications")
def _m0010(db: sqlite_utils.Database) -> None:
    # every alarm's occurrence: raised, acknowledged (by whom), cleared
    db.execute("CREATE TABLE alarm_log (id INTEGER PRIMARY KEY, key TEXT NOT NULL, "
               "kind TEXT NOT NULL, severity TEXT NOT NULL, target TEXT NOT NULL, value REAL, "
               "raised_ts INTEGER NOT NULL, acked_ts INTEGER, acked_by TEXT, cleared_ts INTEGER)")
    db.execute("CREATE INDEX alarm_log_open ON alarm_log (cleared_ts, key)")
    db.execute("CREATE INDEX alarm_log_raised ON alarm_log (raised_ts)")
    # messages to people (e-mail, webhook), kept until delivered: one per event and recipient
    # and channel (the UNIQUE makes a second enqueue of the same event a no-op)
    db.execute("CREATE TABLE notifications (id INTEGER PRIMARY KEY, ref TEXT NOT NULL, "
               "key TEXT NOT NULL, event TEXT NOT NULL, recipient TEXT NOT NULL, "
               "channel TEXT NOT NULL, severity TEXT NOT NULL, body TEXT NOT NULL, "
               "created_ts INTEGER NOT NULL, due_ts INTEGER NOT NULL, "
               "attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, sent_ts INTEGER, "
               "UNIQUE (ref, event, recipient, channel))")
    db.execute("CREATE INDEX notifications_due ON notifications (sent_ts, due_ts)")
    db.execute("CREATE INDEX notifications_key ON notifications (key, recipient, created_ts)")


@migrations(name="0011_api_tokens")
def _m0011(db: sqlite_utils.Database) -> None:
    # bearer tokens of the read API: only a hash is kept; use counted per token and local day
    db.execute("CREATE TABLE api_tokens (name TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, "
               "scope TEXT NOT NULL, created_ts INTEGER NOT NULL, created_by TEXT, "
               "expires_ts INTEGER, revoked_ts INTEGER, last_used_ts INTEGER)")
    db.execute("CREATE TABLE api_use (token TEXT NOT NULL, day TEXT NOT NULL, "
               "n INTEGER NOT NULL, PRIMARY KEY (token, day)) WITHOUT ROWID")
