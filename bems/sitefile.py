"""Settings edited from the UI, written into the site file, which stays the source of truth.

The file is edited with tomlkit, so its comments and layout are kept; every edit is checked by
the one site-file loader (`bems.config.parse_site`) before anything is written; the file is
replaced atomically (written beside it, flushed, renamed), and the version it replaces is kept
beside it (`NAME.toml.TIME.prev`, the newest ten). An edit names the version of the file it was
made on (a hash of its bytes): if the file changed since (another admin, an engineer over SSH),
it is refused rather than lost.

What can be edited: zones (name, occupied setpoint, setpoint limits), meters (name, parent),
tariffs (flat or time of use, with their dates) and notification recipients.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import os
from pathlib import Path
from typing import Any

import tomlkit

from bems.errors import BemsError

KEEP_PREVIOUS = 10
UNCHANGED = object()  # an edit's argument that leaves the field as it is
_UNSET = UNCHANGED


def _same(old: Any, new: Any) -> bool:
    """Equal as TOML values: 2226 and 2226.0 are the same price; tables and arrays by their
    contents (a field written back unchanged must not change the file)."""
    if hasattr(old, "unwrap"):
        old = old.unwrap()
    if isinstance(old, dict) and isinstance(new, dict):
        return old.keys() == new.keys() and all(_same(old[k], new[k]) for k in old)
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(_same(a, b) for a, b in zip(old, new))
    if isinstance(old, (int, float)) and isinstance(new, (int, float)) and \
            not isinstance(old, bool) and not isinstance(new, bool):
        return float(old) == float(new)
    return old == new


class SettingsError(BemsError):
    """An edit that cannot be made: `code` says which (for the UI's words)."""

    def __init__(self, message: str, code: str = "invalid"):
        super().__init__(message)
        self.code = code


def version(text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()[:16]


class SiteFile:
    """One site file and the edits made on it, not yet written."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.original = self.path.read_text(encoding="utf-8")
        except OSError as err:
            raise SettingsError(f"{path}: cannot read the site file: {err.strerror}",
                                "unreadable") from err
        self.version = version(self.original)
        try:
            self.doc = tomlkit.parse(self.original)
        except tomlkit.exceptions.TOMLKitError as err:
            raise SettingsError(f"{path}: not valid TOML: {err}", "unreadable") from err
        if tomlkit.dumps(self.doc) != self.original:
            # (tables of one kind split across the file: tomlkit writes them together)
            raise SettingsError(f"{path}: its layout cannot be kept when it is written back; "
                                "put all the tables of each kind ([[points]], [[zones]]…) "
                                "together, then edit here", "layout")

    # --- edits ----------------------------------------------------------------------------

    def _item(self, table: str, item_id: str) -> Any:
        for t in self.doc.get(table, []):
            if t.get("id") == item_id:
                return t
        raise SettingsError(f"no {table[:-1]} {item_id!r} in the site file", "unknown")

    @staticmethod
    def _set(t: Any, key: str, value: Any) -> None:
        """Set a field (left as it is when it already holds that value), or remove it when
        the value is None (its default then applies)."""
        if value is None:
            if key in t:
                del t[key]
        elif key not in t or not _same(t[key], value):
            t[key] = value

    def zone(self, zone_id: str, *, name: str | None = None, occupied_setpoint=_UNSET,
             setpoint_min=_UNSET, setpoint_max=_UNSET) -> None:
        z = self._item("zones", zone_id)
        if name is not None:
            self._set(z, "name", name)
        for key, v in (("occupied_setpoint", occupied_setpoint), ("setpoint_min", setpoint_min),
                       ("setpoint_max", setpoint_max)):
            if v is not _UNSET:
                self._set(z, key, v)

    def meter(self, meter_id: str, *, name: str | None = None, parent=_UNSET) -> None:
        m = self._item("meters", meter_id)
        if name is not None:
            self._set(m, "name", name)
        if parent is not _UNSET:
            self._set(m, "parent", parent)

    def tariff(self, index: int | None, fields: dict) -> None:
        """Replace tariff `index` (or add one when None) by `fields`: name, valid_from, vat,
        kind and price_vnd_per_kwh (flat) or prices and periods (tou)."""
        arr = self.doc.get("tariffs")
        if arr is None:
            arr = tomlkit.aot()
            self.doc["tariffs"] = arr
        t = tomlkit.table()
        for k, v in fields.items():
            if k == "periods":
                a = tomlkit.array()
                for p in v:
                    it = tomlkit.inline_table()
                    it.update(p)
                    a.append(it)
                t[k] = a
            elif k == "prices":
                it = tomlkit.inline_table()
                it.update(v)
                t[k] = it
            else:
                t[k] = v
        if index is None:
            arr.append(t)
        elif 0 <= index < len(arr):
            old = arr[index]
            for k in list(old):
                if k not in fields:
                    del old[k]
            for k in fields:
                if k not in old or not _same(old[k], fields[k]):
                    old[k] = t[k]
        else:
            raise SettingsError(f"no tariff number {index + 1}", "unknown")

    def remove_tariff(self, index: int) -> None:
        arr = self.doc.get("tariffs", [])
        if not 0 <= index < len(arr):
            raise SettingsError(f"no tariff number {index + 1}", "unknown")
        del arr[index]

    def recipient(self, index: int | None, fields: dict) -> None:
        """Replace recipient `index` of [notify] (or add one): name, email, webhook, lang,
        min_severity, escalate_after_min, quiet_hours (None: left out)."""
        notify = self.doc.get("notify")
        if notify is None:
            raise SettingsError("the site file has no [notify] table (the mail relay is set "
                                "there by the engineer)", "no_notify")
        arr = notify.get("recipients")
        if arr is None:
            arr = tomlkit.aot()
            notify["recipients"] = arr
        clean = {k: v for k, v in fields.items() if v is not None and v != ""}
        if index is None:
            t = tomlkit.table()
            t.update(clean)
            arr.append(t)
            return
        if not 0 <= index < len(arr):
            raise SettingsError(f"no recipient number {index + 1}", "unknown")
        old = arr[index]
        for k in ("name", "email", "webhook", "lang", "min_severity", "escalate_after_min",
                  "quiet_hours"):
            self._set(old, k, clean.get(k))

    def remove_recipient(self, index: int) -> None:
        arr = (self.doc.get("notify") or {}).get("recipients", [])
        if not 0 <= index < len(arr):
            raise SettingsError(f"no recipient number {index + 1}", "unknown")
        del arr[index]

    # --- check and write ------------------------------------------------------------------

    def text(self) -> str:
        return tomlkit.dumps(self.doc)

    def diff(self) -> str:
        return "".join(difflib.unified_diff(
            self.original.splitlines(keepends=True), self.text().splitlines(keepends=True),
            fromfile="before", tofile="after", n=1))

    def check(self):
        """The site the edited file describes (ConfigError if it is not valid)."""
        from bems.config import parse_site

        return parse_site(self.text(), str(self.path), source=self.path)

    def save(self, expected_version: str, now: dt.datetime):
        """Write the edited file if the file on disk is still the version the edit was made
        on and the result is valid. Returns the new Site."""
        import fcntl

        site = self.check()  # raises ConfigError: nothing is written
        lock = self.path.with_name(f".{self.path.name}.lock")
        try:
            with open(lock, "a") as held:
                fcntl.flock(held, fcntl.LOCK_EX)  # two saves at once: one after the other
                self._replace(expected_version, now)
        except OSError as err:  # a read-only folder, a full disk: nothing was replaced
            raise SettingsError(f"{self.path}: cannot write the site file "
                                f"({err.strerror or err})", "unwritable") from err
        return site

    def _replace(self, expected_version: str, now: dt.datetime) -> None:
        current = self.path.read_bytes()
        if version(current) != expected_version or version(current) != self.version:
            raise SettingsError("the site file was changed by someone else since this page "
                                "was opened; open it again", "concurrent")
        stamp = now.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        prev = self.path.with_name(f"{self.path.name}.{stamp}.prev")
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        mode = self.path.stat().st_mode & 0o777
        prev.write_bytes(current)
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(self.text())
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, self.path)
        olds = sorted(self.path.parent.glob(f"{self.path.name}.*.prev"))
        for old in olds[:-KEEP_PREVIOUS]:
            old.unlink(missing_ok=True)


def file_version(path: Path) -> str | None:
    try:
        return version(Path(path).read_bytes())
    except OSError:
        return None
