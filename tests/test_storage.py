"""The store: migrations, batch insert, rollups, ledger, retention."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlite_utils

from bems.errors import StoreError
from bems.storage import Store, migrations

UTC = dt.timezone.utc
T0 = int(dt.datetime(2026, 7, 1, tzinfo=UTC).timestamp()) - 7 * 3600  # local midnight, UTC+7


def _tables(path) -> set[str]:
    return set(sqlite_utils.Database(path).table_names())


def test_migrations_from_empty(tmp_path):
    path = tmp_path / "new.sqlite"
    Store(path).close()
    assert {"readings", "rollup_15min", "rollup_hour", "rollup_day", "writes", "schedules",
            "overrides", "forecasts", "models", "users", "audit"} <= _tables(path)
    db = sqlite_utils.Database(path)
    assert [m.name for m in migrations.applied(db)] == [m.name for m in migrations._migrations]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    Store(path).close()  # a second open applies nothing and fails nothing


def test_migrations_from_an_older_schema_keep_data(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite_utils.Database(path)
    migrations.apply(db, stop_before="0003_sessions")  # the schema of BEMS 0.1
    assert "sessions" not in db.table_names()
    db.execute("INSERT INTO writes (ts, point, action, value, priority, source, reason, "
               "outcome) VALUES (?, 'a', 'write', '25', 12, 'test', 'r', 'done')", [T0])
    db.conn.commit()
    db.conn.close()
    old = Store(path, migrate=False)
    old.insert_readings([("a", T0, 1.5), ("a", T0 + 300, 2.5)])
    old.close()

    with Store(path) as store:
        assert "sessions" in _tables(path)
        assert "previous" in sqlite_utils.Database(path)["writes"].columns_dict
        assert [v for _, v, _ in store.readings("a", T0, T0 + 3600)] == [1.5, 2.5]
        assert [(w.point, w.value, w.previous) for w in store.held_writes()] == [("a", "25", None)]
        assert store.summary(T0, T0 + 86400)["a"]["sum"] == pytest.approx(4.0)


def _year_like_batches(points: int, days: int, step: int = 300):
    for h in range(days * 24):
        yield [(f"p{i}", T0 + h * 3600 + m * step, float((i * 7 + h + m) % 13), "good")
               for m in range(3600 // step) for i in range(points)]


def test_batch_insert_and_rollups_match_raw_totals(store):
    total = n = 0
    for batch in _year_like_batches(points=20, days=3):
        n += store.insert_readings(batch)
        total += sum(r[2] for r in batch)
    assert n == 20 * 3 * 288 == store.count_readings()
    store.refresh_rollups()
    for level in ("15min", "hour", "day"):
        s, c = store.db.execute(f"SELECT sum(sum), sum(n) FROM rollup_{level}").fetchone()
        assert c == n
        assert s == pytest.approx(total)
    # per point and per bucket, against the raw readings
    raw = store.readings("p3", T0 + 3600, T0 + 7200)
    hour = list(store.rollups("hour", ["p3"], T0 + 3600, T0 + 7200))
    assert len(hour) == 1
    assert hour[0]["sum"] == pytest.approx(sum(v for _, v, _ in raw))
    assert hour[0]["max"] == max(v for _, v, _ in raw)
    assert hour[0]["last"] == raw[-1][1]
    # daily buckets start at local midnight (UTC+7)
    days = list(store.rollups("day", ["p0"], T0, T0 + 3 * 86400))
    assert [d["bucket"].hour for d in days] == [17, 17, 17]
    assert all(d["n"] == 288 for d in days)


def test_duplicates_are_ignored_and_not_double_counted(store):
    batch = [("p", T0 + i * 60, 1.0) for i in range(10)]
    assert store.insert_readings(batch) == 10
    store.refresh_rollups()
    # the same readings again, plus two new ones, and a duplicate inside the batch
    again = batch + [("p", T0 + 600, 5.0), ("p", T0 + 660, 5.0), ("p", T0 + 660, 9.0)]
    assert store.insert_readings(again) == 2
    summary = store.summary(T0, T0 + 86400)["p"]
    assert summary["n"] == 12
    assert summary["sum"] == pytest.approx(20.0)


def test_stale_and_bad_readings_are_kept_raw_but_not_aggregated(store):
    store.insert_readings([("p", T0, 10.0, "good"), ("p", T0 + 60, None, "stale"),
                           ("p", T0 + 120, 99.0, "bad"), ("p", T0 + 180, 20.0, "uncertain")])
    assert store.count_readings("p") == 4
    s = store.summary(T0, T0 + 86400)["p"]
    assert (s["n"], s["sum"], s["max"]) == (2, 30.0, 20.0)
    assert [q for _, _, q in store.readings("p", T0, T0 + 600)] == ["good", "stale", "bad",
                                                                     "uncertain"]


def test_latest_and_staleness(store):
    store.insert_readings([("a", T0, 1.0), ("a", T0 + 60, 2.0), ("b", T0 - 7200, 3.0)])
    latest = store.latest(now=T0 + 60)
    assert latest["a"][1] == 2.0
    assert "b" not in latest  # older than the look-back: stale


def test_purge_keeps_rollups(store):
    for batch in _year_like_batches(points=2, days=2):
        store.insert_readings(batch)
    before = store.summary(T0, T0 + 2 * 86400)
    deleted = store.purge_readings(T0 + 86400)
    assert deleted == 2 * 288
    assert store.count_readings() == 2 * 288
    assert store.summary(T0, T0 + 2 * 86400) == before


def test_bad_batches_are_refused_whole(store):
    with pytest.raises(StoreError):
        store.insert_readings([("a", T0, 1.0), ("a", dt.datetime(2026, 1, 1), 2.0)])  # naive
    with pytest.raises(StoreError):
        store.insert_readings([("a", T0, 1.0, "excellent")])
    assert store.count_readings() == 0


def test_write_ledger_holds_and_releases(store):
    store.record_write(point="z.sp", action="write", value=26.0, priority=12, source="strategy",
                       reason="occupied", outcome="done", readback=26.0, ts=T0)
    store.record_write(point="z.sp", action="write", value=99, priority=12, source="ui",
                       reason="typo", outcome="rejected", error="above max 30", ts=T0 + 1)
    held = store.held_writes()
    assert [(w.point, w.value, w.readback) for w in held] == [("z.sp", "26.0", "26.0")]
    assert store.mark_released("z.sp", 12, T0 + 60) == 1
    assert store.held_writes() == []
    outcomes = [w.outcome for w in store.writes()]
    assert outcomes == ["rejected", "done"]


def test_unopenable_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "not-a-db.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open"):
        Store(bad)


def test_reads_never_write_and_still_equal_the_raw_data(tmp_path):
    path = tmp_path / "ro.sqlite"
    with Store(path) as writer:
        batches = list(_year_like_batches(points=3, days=3))
        for b in batches[:30]:
            writer.insert_readings(b)
        writer.refresh_rollups()
        for b in batches[30:]:  # the rest is written but not rolled up yet
            writer.insert_readings(b)
        writer.insert_readings([("p0", T0 + 40 * 3600, 5.0, "stale"),  # not counted
                                ("p0", T0 + 40 * 3600 + 1, None, "good")])
    rows = [r for b in batches for r in b]
    with Store(path) as reader:
        conn = reader.db.conn
        before = (conn.total_changes, reader.db.execute("SELECT count(*) FROM rollup_pending")
                  .fetchone()[0])
        hours = list(reader.rollups("hour", ["p0", "p1"], T0, T0 + 3 * 86400))
        days = list(reader.rollups("day", ["p2"], T0, T0 + 3 * 86400))
        quarter = list(reader.rollups("15min", ["p1"], T0 + 36 * 3600, T0 + 48 * 3600))
        summary = reader.summary(T0, T0 + 3 * 86400)
        after = (conn.total_changes, reader.db.execute("SELECT count(*) FROM rollup_pending")
                 .fetchone()[0])
        assert after == before and before[1] > 0  # nothing written, spans still pending
    # what was read equals the raw data
    for point in ("p0", "p1", "p2"):
        raw = [r[2] for r in rows if r[0] == point]
        assert summary[point]["n"] == len(raw)
        assert summary[point]["sum"] == pytest.approx(sum(raw))
        assert (summary[point]["min"], summary[point]["max"]) == (min(raw), max(raw))
    assert len(hours) == 2 * 72 and len(days) == 3 and len(quarter) == 48
    h40 = next(h for h in hours if h["point"] == "p0" and
               h["bucket"] == dt.datetime.fromtimestamp(T0 + 40 * 3600, UTC))
    raw40 = [r[2] for r in rows if r[0] == "p0" and T0 + 40 * 3600 <= r[1] < T0 + 41 * 3600]
    assert (h40["n"], h40["sum"]) == (len(raw40), pytest.approx(sum(raw40)))
    # and the same once the rollups are refreshed
    with Store(path) as store:
        store.refresh_rollups()
        assert list(store.rollups("hour", ["p0", "p1"], T0, T0 + 3 * 86400)) == hours
        refreshed = store.summary(T0, T0 + 3 * 86400)
        for point, figures in summary.items():
            assert refreshed[point] == pytest.approx(figures)


def test_a_new_store_and_its_journal_are_its_owners_alone(tmp_path):
    import os
    import stat
    import subprocess
    import sys

    old = os.umask(0o022)  # a shell's usual umask
    try:
        with Store(tmp_path / "a.sqlite") as s:
            s.insert_readings([("p", dt.datetime(2026, 7, 6, tzinfo=dt.timezone.utc), 1.0)])
            for name in ("a.sqlite", "a.sqlite-wal", "a.sqlite-shm"):
                assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
        # the program itself: what it creates is private whatever the shell's umask
        r = subprocess.run([sys.executable, "-m", "bems", "db", "upgrade", "--db",
                            str(tmp_path / "b.sqlite")], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert stat.S_IMODE((tmp_path / "b.sqlite").stat().st_mode) == 0o600
    finally:
        os.umask(old)


# --- backups -------------------------------------------------------------------------------

def test_an_upgrade_keeps_a_backup_of_the_store_as_it_was(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite_utils.Database(path)
    migrations.apply(db, stop_before="0009_reason_parts")
    db.conn.close()
    with Store(path, migrate=False) as old:
        old.insert_readings([("a", T0, 1.5)])
    with Store(path):
        pass
    made = list((tmp_path / "backups").glob("old-*-before-upgrade.sqlite"))
    assert len(made) == 1, made
    kept = sqlite_utils.Database(made[0])
    assert "reason_parts" not in kept["writes"].columns_dict  # the old schema, as it was
    assert kept.execute("SELECT count(*) FROM readings").fetchone()[0] == 1
    with Store(path):  # nothing left to migrate: no new backup
        pass
    assert len(list((tmp_path / "backups").iterdir())) == 1


def test_a_backup_while_readings_pour_in_is_whole_and_restores(tmp_path):
    """SQLite's online backup of a store another connection keeps writing to: the copy passes
    its integrity check, holds the readings up to its moment, and restore brings them back."""
    import threading

    from bems.storage.backup import backup, backups, check_store, restore

    path = tmp_path / "live.sqlite"
    with Store(path) as s:
        s.insert_readings([("p", T0 + i, float(i)) for i in range(50_000)])
    stop = threading.Event()
    written = []

    def ingest() -> None:
        with Store(path) as s:
            i = 50_000
            while not stop.is_set():
                s.insert_readings([("p", T0 + i + k, float(i + k)) for k in range(500)])
                i += 500
                written.append(i)

    t = threading.Thread(target=ingest)
    t.start()
    try:
        while len(written) < 3:
            stop.wait(0.01)
        copies = [backup(path, tmp_path / "b", keep=2,
                         now=dt.datetime(2026, 12, 6, 1, k, tzinfo=dt.timezone.utc))
                  for k in range(3)]
    finally:
        stop.set()
        t.join()
    assert backups(path, tmp_path / "b") == copies[1:]  # the newest two kept
    assert oct(copies[-1].stat().st_mode & 0o777) == "0o600"
    assert check_store(copies[-1]).startswith("ok")
    with Store(copies[-1], migrate=False) as b:
        n_backup = b.db.execute("SELECT count(*) FROM readings").fetchone()[0]
    assert 50_000 < n_backup < written[-1]  # writes went on during the backup, and after it
    aside = restore(copies[-1], path)
    assert aside is not None and aside.exists()
    with Store(path) as s:
        assert s.db.execute("SELECT count(*) FROM readings").fetchone()[0] == n_backup
    with Store(aside, migrate=False) as s:  # the store it replaced, all of it
        assert s.db.execute("SELECT count(*) FROM readings").fetchone()[0] == written[-1]


def test_restore_refuses_a_running_store_and_what_is_not_a_store(tmp_path, runner):
    from bems.cli import main
    from bems.storage.backup import BackupError, RunLock, backup, restore

    path = tmp_path / "s.sqlite"
    with Store(path) as s:
        s.insert_readings([("a", T0, 1.0)])
    copy = backup(path, tmp_path / "b")
    lock = RunLock(path).acquire()  # what `bems run` holds
    try:
        with pytest.raises(BackupError, match="bems run"):
            restore(copy, path)
        r = runner.invoke(main, ["db", "restore", str(copy), "--db", str(path)])
        assert r.exit_code == 1 and "stop it first" in r.output, r.output
        with pytest.raises(BackupError, match="another `bems run`"):
            RunLock(path).acquire()
    finally:
        lock.release()
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)
    other = tmp_path / "other.sqlite"
    sqlite_utils.Database(other)["t"].insert({"a": 1})
    for bad in (junk, other):
        r = runner.invoke(main, ["db", "restore", str(bad), "--db", str(path)])
        assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    with Store(path) as s:  # untouched by the refusals
        assert s.db.execute("SELECT count(*) FROM readings").fetchone()[0] == 1
    r = runner.invoke(main, ["db", "backup", "--db", str(path), "--out", str(tmp_path / "c"),
                             "--keep", "1"])
    assert r.exit_code == 0 and "integrity ok" in r.output, r.output
    r = runner.invoke(main, ["db", "backup", "--db", str(path), "--out", "x", "--keep", "nan"])
    assert r.exit_code == 2, r.output
    (tmp_path / "b" / "notes.txt").write_text("mine")
    from bems.storage.backup import rotate
    rotate(path, tmp_path / "b", 0)
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["notes.txt"]  # only ours deleted


def test_a_default_piece_of_state_is_a_fresh_copy(tmp_path):
    """Filling in the default dict of one store must not fill another's (the default was one
    shared object: an alarm acknowledged in one store showed in the next one opened)."""
    from bems import state

    with Store(tmp_path / "a.sqlite") as a, Store(tmp_path / "b.sqlite") as b:
        acks = a.get(state.ALARM_ACKS)
        acks["stale:fc1"] = {"by": "an"}
        a.put(state.ALARM_ACKS, acks)
        assert b.get(state.ALARM_ACKS) == {} and state.ALARM_ACKS.default == {}
