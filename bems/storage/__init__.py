"""The store: the only package with SQL. One SQLite file (WAL) through sqlite-utils, its schema
made and upgraded by migrations, split by concern:

- `timeseries`: readings and their 15-minute, hourly and daily rollups;
- `ledger`: every attempt to write a device;
- `operations`: schedules, exception days, overrides, users, the audit of user actions;
- `forecasts`: forecasts and fitted models;
- `faults`: faults the rules found, and what people did about them;
- `outbox`: messages for the city portfolio until the broker has them;
- `alarms`: the alarm log, and notifications to people until delivered;
- `tokens`: the read API's bearer tokens (hashes) and their use per day.

`Store` is all of them over one connection. Callers pass typed arguments, never SQL.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlite_utils

from bems.errors import StoreError
from bems.storage.common import QUALITY, QUALITY_NAMES, from_epoch, to_epoch
from bems.storage.alarms import AlarmLog
from bems.storage.faults import Faults
from bems.storage.forecasts import Forecasts
from bems.storage.ledger import Ledger, WriteRecord
from bems.storage.operations import Operations
from bems.storage.outbox import Outbox
from bems.storage.schema import LEVELS, migrations
from bems.storage.timeseries import TimeSeries
from bems.storage.tokens import Tokens

__all__ = ["Store", "WriteRecord", "QUALITY", "QUALITY_NAMES", "LEVELS", "migrations",
           "to_epoch", "from_epoch"]


def _create_private(path: Path) -> None:
    """A new store file is its owner's alone (0600; SQLite gives its -wal and -shm files the
    same mode): it holds users' password hashes, sessions and the ledger."""
    if str(path) == ":memory:" or path.exists():
        return
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass
    except OSError as err:
        raise StoreError(f"{path}: cannot create the database: {err.strerror}") from err


class Store(TimeSeries, Ledger, Operations, Forecasts, Faults, Outbox, AlarmLog, Tokens):
    """A BEMS database file. One Store per thread; SQLite itself serialises writers."""

    def __init__(self, path: str | Path, timezone: str = "Asia/Ho_Chi_Minh",
                 migrate: bool = True):
        self.path = Path(path)
        self.upgrade_backup: Path | None = None  # the copy made before a migration, if any
        try:
            _create_private(self.path)
            conn = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False)
            self.db = sqlite_utils.Database(conn)
            self.db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL: a committed transaction survives a crash of this process; only a
            # power loss can take back the last commits, never corrupt the file.
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA cache_size=-65536")
            self.db.execute("PRAGMA temp_store=MEMORY")
            if migrate:
                self._upgrade()
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{self.path}: cannot open the database: {err}") from err
        # Daily rollups follow the site's local day. Vietnam has no daylight saving time, so one
        # offset serves; a site with DST gets days aligned to its standard time.
        self.day_offset = int(ZoneInfo(timezone).utcoffset(dt.datetime(2000, 1, 15)).total_seconds())
        self._keys: dict[str, int] = {}

    def _upgrade(self) -> None:
        """Apply pending migrations; a store that has data is backed up first (beside it, in
        backups/, named …-before-upgrade), so a failed or unwanted upgrade can be undone."""
        if "_sqlite_migrations" in self.db.table_names() and migrations.pending(self.db):
            from bems.storage.backup import backup

            self.upgrade_backup = backup(self.path, self.path.parent / "backups",
                                         label="-before-upgrade")
        migrations.apply(self.db)

    def close(self) -> None:
        self.db.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def stats(self) -> dict[str, Any]:
        first, last, n = self.time_span()
        return {
            "file": str(self.path),
            "points": self.db.execute("SELECT count(*) FROM point_keys").fetchone()[0],
            "readings": n,
            "first reading": first.isoformat() if first is not None else "-",
            "last reading": last.isoformat() if last is not None else "-",
            "ledger entries": self.count_writes(),
            "held writes": len(self.held_writes()),
            "schema": ", ".join(m.name for m in migrations.applied(self.db)),
        }

    def integrity_check(self) -> str:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0]
