"""Backups of a store: SQLite's online backup (a consistent copy while `bems run` keeps writing:
in WAL mode a reader never blocks the writer), checked with `PRAGMA integrity_check`, written
under a temporary name and renamed into place (a crash leaves no half backup under a backup's
name), owner-only like the store, and rotated (the newest N kept; only files this module named
are ever deleted).

Restore puts a backup in the store's place: never while `bems run` holds the store (its run
lock), never a file that is not an intact BEMS store, and the store it replaces is kept aside.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import re
import sqlite3
from pathlib import Path

from bems.errors import BemsError

STAMP = "%Y%m%dT%H%M%SZ"


class BackupError(BemsError):
    pass


def _name(db: Path, when: dt.datetime, label: str = "") -> str:
    return f"{db.stem}-{when.astimezone(dt.timezone.utc).strftime(STAMP)}{label}.sqlite"


def _pattern(db: Path) -> re.Pattern:
    return re.compile(re.escape(db.stem) + r"-\d{8}T\d{6}Z\.sqlite")


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True, timeout=30)


def _copy(src_path: Path, dst_path: Path, check: bool = False) -> str:
    """SQLite's online backup of `src_path` into a new owner-only file `dst_path`, a single
    file (no WAL); with `check`, what `PRAGMA integrity_check` says of the copy."""
    os.close(os.open(dst_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    src, dst = _read_only(src_path), sqlite3.connect(str(dst_path))
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
        return dst.execute("PRAGMA integrity_check").fetchone()[0] if check else "ok"
    finally:
        dst.close()
        src.close()


def backup(db: Path, out_dir: Path, keep: int | None = None, now: dt.datetime | None = None,
           label: str = "") -> Path:
    """A checked copy of the store `db` in `out_dir`; then only the newest `keep` of the
    rotated backups are kept (None: all). The path of the new backup."""
    db, out_dir = Path(db), Path(out_dir)
    if not db.is_file():
        raise BackupError(f"{db}: no such database")
    try:
        out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as err:
        raise BackupError(f"{out_dir}: cannot create the backup folder: {err.strerror}") from err
    now = now or dt.datetime.now(dt.timezone.utc)
    final = out_dir / _name(db, now, label)
    part = final.with_name(final.name + ".part")
    part.unlink(missing_ok=True)
    try:
        ok = _copy(db, part, check=True)
        if ok != "ok":
            raise BackupError(f"{db}: the copy failed its integrity check: {ok}")
        with open(part, "rb") as f:
            os.fsync(f.fileno())
        os.replace(part, final)
    except (OSError, sqlite3.Error) as err:
        part.unlink(missing_ok=True)
        raise BackupError(f"{db}: backup to {out_dir} failed: {err}") from err
    except BackupError:
        part.unlink(missing_ok=True)
        raise
    if keep is not None:
        rotate(db, out_dir, keep)
    return final


def backups(db: Path, out_dir: Path) -> list[Path]:
    """The rotated backups of `db` in `out_dir`, oldest first."""
    pattern = _pattern(Path(db))
    if not Path(out_dir).is_dir():
        return []
    return sorted(p for p in Path(out_dir).iterdir() if pattern.fullmatch(p.name))


def rotate(db: Path, out_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` rotated backups; what was deleted."""
    old = backups(db, out_dir)[:-keep] if keep > 0 else backups(db, out_dir)
    for p in old:
        p.unlink(missing_ok=True)
    return old


def check_store(path: Path) -> str:
    """What a BEMS store file holds ('ok' and its migrations), or BackupError."""
    try:
        conn = _read_only(path)
        try:
            ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
            names = [r[0] for r in conn.execute(
                "SELECT name FROM _sqlite_migrations WHERE migration_set = 'bems'")]
        finally:
            conn.close()
    except sqlite3.Error as err:
        raise BackupError(f"{path}: not a BEMS database ({err})") from err
    if ok != "ok":
        raise BackupError(f"{path}: fails its integrity check: {ok}")
    if not names:
        raise BackupError(f"{path}: not a BEMS database (no schema of ours)")
    return f"ok, {len(names)} migrations"


class RunLock:
    """`bems run`'s hold on a store (an exclusive lock on DB.run.lock, released by the operating
    system if the process dies): one runtime per store, and no restore under a running one."""

    def __init__(self, db: Path):
        self.db = Path(db)
        self.path = Path(f"{db}.run.lock")
        self.fd: int | None = None

    def acquire(self) -> "RunLock":
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise BackupError(f"{self.db}: another `bems run` is using this database") from None
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

def restore(backup_file: Path, db: Path, now: dt.datetime | None = None) -> Path | None:
    """Put `backup_file` in the place of the store `db`; the store it replaced is kept as
    DB.before-restore-STAMP (its path, or None when there was none)."""
    backup_file, db = Path(backup_file), Path(db)
    if not backup_file.is_file():
        raise BackupError(f"{backup_file}: no such backup")
    check_store(backup_file)
    try:
        lock = RunLock(db).acquire()
    except BackupError:
        raise BackupError(f"{db}: `bems run` is using this database; stop it first") from None
    try:
        now = now or dt.datetime.now(dt.timezone.utc)
        aside = None
        if db.exists():
            aside = db.with_name(f"{db.name}.before-restore-{now.strftime(STAMP)}")
            # the old store's last commits are in its -wal: fold them in before moving it
            conn = sqlite3.connect(str(db))
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()
            os.replace(db, aside)
        for extra in ("-wal", "-shm"):
            Path(f"{db}{extra}").unlink(missing_ok=True)
        part = db.with_name(db.name + ".restoring")
        part.unlink(missing_ok=True)
        _copy(backup_file, part)
        os.replace(part, db)
        return aside
    except (OSError, sqlite3.Error) as err:
        raise BackupError(f"{db}: restore from {backup_file} failed: {err}") from err
    finally:
        lock.release()
