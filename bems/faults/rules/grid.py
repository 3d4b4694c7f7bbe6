"""The rules' common ground: the 15-minute grid (`Data`), a rule's result (`Finding`), the
thresholds of the site file's `[faults]` table, and the register of the rules (`RULES`: each
rule's name and the kind of thing it judges, declared where the rule is written; a finding of an
undeclared rule is an error, and every declared rule must have its texts in both languages)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


STEP_S = 900  # the grid: 15-minute means (the store's 15-min rollups)

# name: (default, low, high, unit)
THRESHOLDS: dict[str, tuple[float, float, float, str]] = {
    "persist_min": (30.0, 15.0, 240.0, "min"),  # a condition this long is a fault
    "after_hours_grace_min": (30.0, 0.0, 240.0, "min"),  # AC/lights allowed after closing
    "precool_allowance_h": (5.0, 0.0, 12.0, "h"),  # AC allowed before opening (optimal start)
    "setpoint_error_k": (0.8, 0.3, 5.0, "K"),  # zone above its setpoint while cooling
    "pulldown_h": (1.5, 0.0, 6.0, "h"),  # after the AC starts, before the setpoint is due
    "reach_persist_h": (1.0, 0.25, 8.0, "h"),
    "cycles_per_3h": (6.0, 3.0, 40.0, ""),  # AC on/off changes in 3 h: short-cycling
    "flat_h": (3.0, 1.0, 24.0, "h"),  # a sensor that does not move this long while it should
    "flat_band_k": (0.05, 0.0, 0.5, "K"),
    "bias_k": (1.0, 0.3, 5.0, "K"),  # a zone's night offset from its neighbours, changed
    "sensor_min_c": (5.0, -30.0, 20.0, "°C"),
    "sensor_max_c": (45.0, 30.0, 90.0, "°C"),
    "empty_lights_h": (2.0, 0.5, 12.0, "h"),  # lights on in an empty zone while open
    "sat_error_k": (1.5, 0.5, 6.0, "K"),  # GL36: supply air above its setpoint, full cooling
    "mat_error_k": (1.0, 0.2, 5.0, "K"),  # GL36 FC2/FC3: mixed air outside return..outdoor
    "oa_excess_pct": (20.0, 5.0, 90.0, "%"),  # outdoor-air share above its usual
    "base_load_excess_pct": (5.0, 1.0, 200.0, "%"),  # night load above the usual nights
    "off_day_excess_pct": (15.0, 2.0, 300.0, "%"),  # a closed day's energy above the usual
    "meter_missing_h": (1.0, 0.25, 24.0, "h"),
    "history_days": (14.0, 3.0, 60.0, "d"),
}


def thresholds(site_values: dict[str, float] | None = None) -> dict[str, float]:
    out = {k: v[0] for k, v in THRESHOLDS.items()}
    out.update(site_values or {})
    return out


def check_threshold(name: str, value: object) -> str | None:
    """Why a `[faults]` value is refused, or None."""
    if name not in THRESHOLDS:
        return f"unknown threshold (one of {', '.join(THRESHOLDS)})"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "must be a number"
    if not np.isfinite(float(value)):
        return "must be a finite number"
    _, lo, hi, unit = THRESHOLDS[name]
    if not lo <= float(value) <= hi:
        return f"must be within {lo:g}..{hi:g} {unit}".rstrip()
    return None


@dataclass
class Finding:
    rule: str
    target: str  # a zone, air handler or meter id
    target_kind: str  # zone | ahu | meter
    first: dt.datetime  # UTC
    last: dt.datetime
    detected: dt.datetime  # when the rule could first say so (persistence met)
    kwh_per_day: float = 0.0
    vnd_per_day: float = 0.0
    discomfort_kh: float = 0.0
    evidence: dict = field(default_factory=dict)  # points, figures; for the page and the texts

    def as_dict(self) -> dict:
        return {"rule": self.rule, "target": self.target, "target_kind": self.target_kind,
                "first": self.first, "last": self.last, "detected": self.detected,
                "kwh_per_day": round(self.kwh_per_day, 2),
                "vnd_per_day": round(self.vnd_per_day), "discomfort_kh": round(
                    self.discomfort_kh, 2), "evidence": self.evidence}


@dataclass
class Data:
    """Everything the rules read, on one 15-minute grid from `t0` (UTC epoch), `n` steps.
    `mean[point]` are interval means (NaN: no reading); `changes[point]` the on/off changes
    counted in the raw readings of status points; `drops[point]` the falls of energy
    registers (kWh); masks by zone from the calendar and the overrides."""

    t0: int
    n: int
    start: int  # the first step the rules report on (the ones before are history)
    local: list[dt.datetime]  # naive local time of each step's start
    mean: dict[str, np.ndarray]
    changes: dict[str, np.ndarray] = field(default_factory=dict)
    drops: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # (step, kWh)
    open: dict[str, np.ndarray] = field(default_factory=dict)  # zone → occupied by schedule
    allow_ac: dict[str, np.ndarray] = field(default_factory=dict)  # zone → AC may run
    allow_light: dict[str, np.ndarray] = field(default_factory=dict)
    overridden: dict[str, np.ndarray] = field(default_factory=dict)
    workday: np.ndarray | None = None  # the site's main schedule has periods that day
    expected: dict[str, np.ndarray] = field(default_factory=dict)  # meter → forecast kW
    price_vnd: np.ndarray | None = None  # VND/kWh incl. VAT at each step

    def time(self, i: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.t0 + i * STEP_S, dt.timezone.utc)

    def get(self, pid: str | None) -> np.ndarray:
        if pid and pid in self.mean:
            return self.mean[pid]
        return np.full(self.n, np.nan)


RULES: dict[str, str] = {}  # rule name → the kind of target it judges (zone | ahu | meter)


def declare(kind: str, *names: str) -> None:
    """Register rules (where they are written): their findings name this kind of target."""
    for name in names:
        if RULES.get(name, kind) != kind:
            raise ValueError(f"rule {name} declared twice, for {RULES[name]} and {kind}")
        RULES[name] = kind


@dataclass(frozen=True)
class Rule:
    """A declared rule: the kind of target it judges, the target's points it needs (it does not
    run without them), the operating mode it judges, the threshold that says how long a
    condition must last; its texts are in bems/faults/texts.py. `check` reads the target's
    series (computed once per target) and adds its findings."""

    name: str
    kind: str
    needs: tuple[str, ...]
    mode: str
    persistence: str
    check: Callable[[Any], None]


DECLARED: dict[str, list[Rule]] = {}  # kind → its rules, in the order they run


def rule(kind: str, name: str, needs: tuple[str, ...], mode: str, persistence: str = ""):
    """Declares the function below it as the rule `name` (a new rule is a new small block)."""
    def add(check: Callable[[Any], None]) -> Callable[[Any], None]:
        declare(kind, name)
        DECLARED.setdefault(kind, []).append(Rule(name, kind, needs, mode, persistence, check))
        return check
    return add


def run_declared(kind: str, target, series) -> None:
    """Every declared rule of `kind` whose points `target` has, over its `series`."""
    for r in DECLARED.get(kind, []):
        if all(getattr(target, need) for need in r.needs):
            r.check(series)


def runs(mask: np.ndarray, min_len: int = 1) -> list[tuple[int, int]]:
    """Contiguous True stretches [i0, i1) at least `min_len` long."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.diff(m.astype(np.int8))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return [(int(a), int(b)) for a, b in zip(starts, ends) if b - a >= min_len]


def on_for(mask: np.ndarray) -> np.ndarray:
    """At each step, how many steps in a row `mask` has been true (0 where it is false)."""
    mask = np.asarray(mask, bool)
    idx = np.arange(len(mask))
    last_off = np.maximum.accumulate(np.where(~mask, idx, -1))
    return np.where(mask, idx - last_off, 0)


def _steps(minutes: float) -> int:
    return max(1, int(round(minutes * 60 / STEP_S)))


def _finding(data: Data, rule: str, target: str, kind: str, i0: int, i1: int, detect_i: int,
             **kw) -> Finding:
    if RULES.get(rule) != kind:
        raise ValueError(f"rule {rule!r} is not declared for a {kind} (rules.grid.declare)")
    f = Finding(rule, target, kind, data.time(i0), data.time(i1), data.time(detect_i + 1), **kw)
    f.evidence.setdefault("hours", round((i1 - i0) * STEP_S / 3600, 2))
    return f


def _cost(data: Data, i0: int, i1: int, kw: float) -> tuple[float, float]:
    """kWh and VND of `kw` over steps [i0, i1), per day of the stretch (at most a day)."""
    hours = (i1 - i0) * STEP_S / 3600
    kwh = kw * min(hours, 24.0)
    prices = data.price_vnd[i0:i1] if data.price_vnd is not None else np.array([0.0])
    price = float(np.nanmean(prices)) if len(prices) and np.isfinite(prices).any() else 0.0
    return kwh, kwh * price




def _r(v) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return round(v, 2) if np.isfinite(v) else None
