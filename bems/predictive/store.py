"""Where the predictive strategy keeps its state in the store: the zone models (refitted every
night), the latest plan (reused for 15 minutes) and, per local day, the first and the latest
plan (what the UI shows against what happened)."""

from __future__ import annotations

import datetime as dt
import logging

from bems.predictive.model import BuildingModel, fit, history_from_store
from bems.predictive.mpc import Plan
from bems.state import PREDICTIVE_DAY, PREDICTIVE_MODEL, PREDICTIVE_PLAN

log = logging.getLogger(__name__)


HISTORY_DAYS = 14
REPLAN_MIN = 15


def load_model(store) -> BuildingModel | None:
    d = store.get(PREDICTIVE_MODEL)
    if not isinstance(d, dict):
        return None
    try:
        return BuildingModel.from_json(d)
    except (TypeError, ValueError, KeyError):
        log.warning("the stored zone models could not be read; they are refitted tonight")
        return None


def refit(site, store, now: dt.datetime, days: float = HISTORY_DAYS) -> BuildingModel:
    """Fit every zone's model on the last `days` of readings and keep it."""
    h = history_from_store(site, store, now - dt.timedelta(days=days), now)
    model = fit(site, h, now, load_model(store))
    store.put(PREDICTIVE_MODEL, model.to_json())
    return model


def save_plan(store, plan: Plan, note: str = "") -> None:
    doc = {**plan.to_json(), "note": note}
    store.put(PREDICTIVE_PLAN, doc)
    day = plan.start_local[:10]
    kept = store.get(PREDICTIVE_DAY(day))
    kept = {"first": kept.get("first") or doc, "latest": doc}
    store.put(PREDICTIVE_DAY(day), kept)


def _plan(d) -> Plan | None:
    if not isinstance(d, dict):
        return None
    try:
        d = {k: v for k, v in d.items() if k != "note"}
        return Plan.from_json(d)
    except (TypeError, ValueError, KeyError):
        return None


def latest_plan(store) -> Plan | None:
    return _plan(store.get(PREDICTIVE_PLAN))


def latest_note(store) -> str:
    """Why some zones were left to the rules when the latest plan was made."""
    d = store.get(PREDICTIVE_PLAN)
    return str(d.get("note", "")) if isinstance(d, dict) else ""


def day_plans(store, day: dt.date) -> tuple[Plan | None, Plan | None, str]:
    """(first plan of a local day, latest plan, the latest one's note)."""
    kept = store.get(PREDICTIVE_DAY(day))
    latest = kept.get("latest") or {}
    return _plan(kept.get("first")), _plan(latest), latest.get("note", "") if isinstance(
        latest, dict) else ""


def step_of(plan: Plan, local: dt.datetime) -> int | None:
    """The step of a plan that `local` falls in, if the plan was made under REPLAN_MIN minutes
    before it (else None: time to solve again)."""
    start = dt.datetime.fromisoformat(plan.start_local)
    age = (local - start).total_seconds()
    if not 0 <= age < REPLAN_MIN * 60 or plan.steps <= 0:
        return None
    return int(age // 900)
