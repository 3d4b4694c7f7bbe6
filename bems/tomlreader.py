"""The generic half of the site-file loader: TOML's keys located on their lines, and a reader
that checks each field's type and range and collects every problem (file, line, field,
message) instead of stopping at the first. `bems.config` holds what each table means."""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from bems.errors import BemsError
from bems.text import FIRST_YEAR, LAST_YEAR

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ConfigError(BemsError):
    """A site file with one or more errors; `issues` holds all of them."""

    def __init__(self, issues: list[ConfigIssue]):
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


# --- locating keys in the text ------------------------------------------------------------

_HEADER = re.compile(r"^\s*\[(\[)?\s*([^\]]+?)\s*\]\]?")
_KEY = re.compile(r'^\s*([A-Za-z0-9_\-]+|"[^"]*")\s*=\s*(.*)$')


def _key_lines(text: str) -> dict[Path_, int]:
    """Map each table, key and multi-line array element to the line it starts on."""
    lines: dict[Path_, int] = {}
    counts: dict[Path_, int] = {}
    current: Path_ = ()
    array: Path_ | None = None
    depth = elem = 0
    for n, raw in enumerate(text.splitlines(), 1):
        s = raw.split("#", 1)[0].strip() if '"' not in raw else raw.strip()
        if not s or s.startswith("#"):
            continue
        if array is not None:  # inside a multi-line array: one element per line
            if depth == 1 and s[0] not in "]":
                lines[array + (elem,)] = n
                elem += 1
            depth += s.count("[") - s.count("]")
            if depth <= 0:
                array = None
            continue
        m = _HEADER.match(s)
        if m:
            names = [x.strip().strip('"') for x in m.group(2).split(".")]
            resolved: list[str | int] = []
            for i, name in enumerate(names):
                resolved.append(name)
                key = tuple(resolved)
                if key in counts and i < len(names) - 1:
                    resolved.append(counts[key])
            base = tuple(resolved)
            if m.group(1):  # [[array of tables]]
                counts[base] = counts.get(base, -1) + 1
                current = base + (counts[base],)
            else:
                current = base
            lines.setdefault(current, n)
            continue
        m = _KEY.match(s)
        if m:
            key = current + tuple(m.group(1).strip('"').split("."))
            lines[key] = n
            value = m.group(2)
            if value.startswith("["):
                d = value.count("[") - value.count("]")
                if d > 0:
                    array, depth, elem = key, d, 0
    return lines


def _fmt(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


# --- reading values -----------------------------------------------------------------------

class _Reader:
    def __init__(self, filename: str, lines: dict[Path_, int]):
        self.file = filename
        self.lines = lines
        self.issues: list[ConfigIssue] = []

    def line(self, path: Path_) -> int | None:
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def error(self, path: Path_, message: str) -> None:
        self.issues.append(ConfigIssue(self.file, self.line(path), _fmt(path), message))

    def table(self, d: Any, path: Path_, allowed: tuple[str, ...]) -> dict:
        if not isinstance(d, dict):
            self.error(path, "must be a table")
            return {}
        for k in d:
            if k not in allowed:
                self.error(path + (k,), f"unknown field (expected one of: {', '.join(allowed)})")
        return d

    def tables(self, data: dict, key: str) -> list[tuple[Path_, dict]]:
        items = data.get(key, [])
        if not isinstance(items, list):
            self.error((key,), f"must be an array of tables ([[{key}]])")
            return []
        return [((key, i), it) for i, it in enumerate(items)]

    def get(self, d: dict, path: Path_, key: str, kind: type | tuple, default: Any = ...,
            check: Callable[[Any], str | None] | None = None) -> Any:
        if key not in d:
            if default is ...:
                self.error(path + (key,), "required field is missing")
                return None
            return default
        v = d[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, kinds) or (isinstance(v, bool) and bool not in kinds):
            names = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
            self.error(path + (key,), f"must be {names}, got {v!r}")
            return None if default is ... else default
        if isinstance(v, float) and not math.isfinite(v):  # TOML has nan and inf
            self.error(path + (key,), f"must be a finite number, got {v!r}")
            return None if default is ... else default
        if isinstance(v, str) and len(v) > MAX_TEXT:
            self.error(path + (key,), f"is {len(v)} characters long; at most {MAX_TEXT}")
            return None if default is ... else default
        if check is not None:
            problem = check(v)
            if problem:
                self.error(path + (key,), problem)
                return None if default is ... else default
        return v

    def file_path(self, d: dict, path: Path_, key: str, source: Path | None) -> Path | None:
        """An optional file named in the site file, relative to the site file's folder."""
        v = self.get(d, path, key, str, None)
        if v is None:
            return None
        here = source.parent if source else Path.cwd()
        f = (here / v) if not Path(v).is_absolute() else Path(v)
        if not f.is_file():
            self.error(path + (key,), f"no such file: {f}")
        return f

    def date(self, d: dict, path: Path_, key: str, default: Any = ...) -> dt.date | None:
        v = self.get(d, path, key, (dt.date, str), default)
        return self._to_date(v, path + (key,))

    def _to_date(self, v: Any, path: Path_) -> dt.date | None:
        """A date of the years BEMS can meet (2000-2100): anything else is an error here,
        not a crash (or a loop over eight thousand years) later."""
        if v is None:
            return v
        if isinstance(v, dt.datetime):
            v = v.date()
        elif not isinstance(v, dt.date):
            try:
                v = dt.date.fromisoformat(v)
            except (TypeError, ValueError):
                self.error(path, f"must be a date YYYY-MM-DD, got {str(v)[:40]!r}")
                return None
        if not FIRST_YEAR <= v.year <= LAST_YEAR:
            self.error(path, f"must be a date in {FIRST_YEAR}..{LAST_YEAR}, got {v.isoformat()}")
            return None
        return v


MAX_TEXT = 1000  # any text field of a site file

_TYPE_NAMES = {str: "text", float: "a number", int: "a whole number", bool: "true or false",
               list: "a list", dict: "a table", dt.date: "a date"}


def _one_of(options: tuple[str, ...]) -> Callable[[Any], str | None]:
    return lambda v: None if v in options else f"must be one of {', '.join(options)}; got {v!r}"


def _positive(v: float) -> str | None:
    return None if v > 0 else f"must be greater than 0, got {v}"


def _priority(v: int) -> str | None:
    return None if 1 <= v <= 16 else f"BACnet priority must be 1..16, got {v}"


