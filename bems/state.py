"""BEMS's small pieces of state, each declared once with its type: what the runtime decided
(the demand level), what it learned (cool-down and warm-up rates), the predictive strategy's
models and plans, the outdoor forecast's cache, the controllers' clocks, acknowledged alarms,
an admin's strategy settings, and the city portfolio's cursors.

Each kind is a `Key`: a name, a default, and a check that turns what is stored into the type
(anything else, written by an older version or around BEMS, reads as the default). Callers
read and write through `Store.get(KEY)` and `Store.put(KEY, value)`; the `meta` table is how
they are kept, not an interface.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Key(Generic[T]):
    name: str
    default: T
    check: Callable[[Any], T]

    def read(self, raw: Any) -> T:
        """What is stored as this key's type; a fresh copy of the default when absent or not
        of its type (a caller that fills in a default dict must never fill the shared one)."""
        if raw is None:
            return copy.deepcopy(self.default)
        try:
            return self.check(raw)
        except (TypeError, ValueError, KeyError, AttributeError):
            return copy.deepcopy(self.default)


def _int(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError
    return int(v)


def _dict(v: Any) -> dict:
    if not isinstance(v, dict):
        raise ValueError
    return v


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError
    return v


def _day(v: Any) -> str:
    dt.date.fromisoformat(_str(v))
    return v


def _month(v: Any) -> str:
    dt.date.fromisoformat(_str(v) + "-01")
    return v


def day_key(prefix: str) -> Callable[[dt.date | str], "Key[dict]"]:
    """A key per local day (the predictive strategy's plans of a day)."""
    def make(day: dt.date | str) -> Key[dict]:
        d = day.isoformat() if isinstance(day, dt.date) else str(day)
        return Key(prefix + d, {}, _dict)
    return make


# --- the decision path and the runtime --------------------------------------------------------
DEMAND_LEVEL: Key[int] = Key("demand_level", 0, _int)
LEARNED_RATES: Key[dict] = Key("learned_rates", {}, _dict)
DECISION_LOOKBACK_S: Key[int] = Key("decision_lookback_s", 0, _int)
STRATEGY_PARAMS: Key[dict] = Key("strategy_params", {}, _dict)
COMMISSIONING: Key[dict] = Key("commissioning", {}, _dict)  # {} or {"start", "days", "by", "at"}
CONTROLLER_CLOCKS: Key[dict] = Key("controller_clocks", {}, _dict)
ALARM_ACKS: Key[dict] = Key("alarm_acks", {}, _dict)
# notifications: the last fault already told about (None: not yet started), and when the
# runtime last evaluated alarms (a gap at start is an outage people are told about)
NOTIFY_FAULTS_AFTER: Key[int | None] = Key("notify.faults_after", None, _int)
ALARMS_ALIVE_AT: Key[int | None] = Key("alarms.alive_at", None, _int)
JOBS_ALIVE: Key[dict] = Key("jobs.alive", {}, _dict)  # job name -> epoch of its last good run
BACKUP_FAILED: Key[dict] = Key("backup.failed", {}, _dict)  # {"error", "at"} or {}

# --- the predictive strategy ------------------------------------------------------------------
PREDICTIVE_MODEL: Key[dict | None] = Key("predictive_model", None, _dict)
PREDICTIVE_PLAN: Key[dict | None] = Key("predictive_plan", None, _dict)
PREDICTIVE_DAY = day_key("predictive_plan_day:")
WEATHER_FORECAST: Key[dict | None] = Key("weather_forecast", None, _dict)

# --- the city portfolio (moved with the outbox, in its transactions) --------------------------
PORTFOLIO_BOX: Key[str | None] = Key("portfolio.box", None, _str)
READINGS_TO: Key[int | None] = Key("portfolio.readings_to", None, _int)
ENERGY_TO: Key[int | None] = Key("portfolio.energy_to", None, _int)
LATE_ID: Key[int] = Key("portfolio.late_id", 0, _int)
FAULTS_AT: Key[int] = Key("portfolio.faults_at", 0, _int)
LEDGER_DAY: Key[str | None] = Key("portfolio.ledger_day", None, _day)
MONTH: Key[str | None] = Key("portfolio.month", None, _month)
SITE_HASH: Key[str | None] = Key("portfolio.site_hash", None, _str)
