"""The predictive strategy as the decision path sees it: the rule set's decisions, with each
zone's AC replaced by the first step of the day's plan where the plan can be made.

Lighting, outdoor air and operator overrides stay the rule set's. A zone without a fitted
model is left to the rules (and named in the note); when no plan can be made at all — no
model, no temperature, no forecast, the solver failed or was too slow — every zone is, and the
note says why. Pure: the model, the forecast and the zones' surface temperatures are inputs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from bems.calendar import SiteCalendar
from bems.intents import WriteIntent
from bems.predictive.model import (STEP_H, BuildingModel, History, local_days, occupancy_grid,
                                   outdoor)
from bems.predictive.mpc import (Plan, PlanError, ZonePlan, horizon, make_plan,
                                 setpoint_for)
from bems.reasons import Reason, reason
from bems.site import Site
from bems.strategies.plan import Learned, Override, ZoneDecision, outdoor_air, plan


RULES_CHEAPER = "rules_cheaper"  # the note: the rule set's schedule beat the plan


@dataclass
class Outcome:
    decisions: list[ZoneDecision]
    plan: Plan | None
    note: str  # "" when every zone follows the plan; else the code and detail of why not


def _surfaces(site: Site, model: BuildingModel, h: History):
    """(zone, air, surface temperature) by step over a history, for each zone with a fitted
    model and readings: the surfaces from the model's filter of the air (two days are
    plenty)."""
    to = outdoor(site, h)
    harm = h.sun(site)
    calendar = SiteCalendar(site)
    for z in site.zones:
        m = model.zones.get(z.id)
        if m is None or not m.fit or not z.temperature:
            continue
        ta = h.get(z.temperature)
        if not np.isfinite(ta).any() or not np.isfinite(to).any():
            continue
        occ = h.get(z.occupancy) if z.occupancy else None
        if occ is None or not np.isfinite(occ).any():
            occ = occupancy_grid(site, calendar, z.schedule, h.t0, h.n)
        yield z, ta, m.mass(ta, to, np.nan_to_num(occ), harm)


def mass_now(site: Site, model: BuildingModel, h: History) -> dict[str, float]:
    """Each zone's surface temperature now, from the recent history of its air temperature."""
    return {z.id: float(tm[-1]) for z, _ta, tm in _surfaces(site, model, h)
            if np.isfinite(tm[-1])}


def spent_today(site: Site, model: BuildingModel, h: History, day: dt.date
                ) -> dict[str, float]:
    """Each zone's discomfort so far on `day` (local) as the "budget" mode counts it: the
    kelvin-hours its operative temperature (measured air, estimated surfaces) spent outside
    the plan's band in working hours, a kelvin past half counting three times."""
    p = site.strategies
    high = p.comfort_high - p.predictive_margin_k
    calendar = SiteCalendar(site)
    today = local_days(site, h) == day.toordinal()
    grids: dict[str, np.ndarray] = {}  # zones share schedules
    out = {}
    for z, ta, tm in _surfaces(site, model, h):
        if z.schedule not in grids:
            grids[z.schedule] = occupancy_grid(site, calendar, z.schedule, h.t0, h.n) * today
        occ = grids[z.schedule]
        op = 0.5 * (ta + tm)
        hot = np.nan_to_num(np.maximum(occ * (op - high), 0))
        cold = np.nan_to_num(np.maximum(occ * (p.comfort_low - op), 0))
        out[z.id] = float(STEP_H * (hot + 2 * np.maximum(hot - 0.5, 0) + cold).sum())
    return out


def candidates(site: Site) -> list:
    """The zones a plan can control: a temperature, an AC, a setpoint and a schedule."""
    return [z for z in site.zones if z.temperature and z.ac_status and z.cooling_setpoint
            and z.schedule]


def steps_today(site: Site, calendar: SiteCalendar, now: dt.datetime) -> int:
    """How many 15-minute steps the plan would cover from `now` (0: nobody comes any more
    today, and the inputs of a plan need not be gathered)."""
    return horizon(site, calendar, candidates(site), now)[1]


def decide(site: Site, calendar: SiteCalendar, values: dict[str, float | None],
           now: dt.datetime, now_aware: dt.datetime, learned: Learned, level: int,
           overrides: list[Override] | None, model: BuildingModel | None,
           mass: dict[str, float], forecast: np.ndarray | None,
           weather_source: str = "", spent: dict[str, float] | None = None) -> Outcome:
    rules = plan(site, calendar, values, now, learned, level, overrides, now_aware=now_aware)
    if steps_today(site, calendar, now) == 0:
        return Outcome(rules, None, "nobody_today")
    if model is None:
        return Outcome(rules, None, "no_model")
    if forecast is None:
        return Outcome(rules, None, "no_forecast")
    cand = candidates(site)
    fit = [z for z in cand if z.id in model.zones and model.zones[z.id].fit]
    if not fit:
        return Outcome(rules, None, "no_model")
    temps = {z.id: values.get(z.temperature) for z in fit}
    usable = [z for z in fit if temps[z.id] is not None and z.id in mass]
    if not usable:
        return Outcome(rules, None, "no_temperature")
    ac_on = {z.id: (values.get(z.ac_status) or 0.0) > 0.5 for z in usable}
    try:
        p = make_plan(site, calendar, model, usable, temps, mass, forecast, now, now_aware,
                      site.strategies.comfort_weight, weather_source,
                      site.strategies.predictive_time_limit_s, learned, ac_on, spent)
    except PlanError as exc:
        return Outcome(rules, None, str(exc))
    if p.follows == "rules":
        return Outcome(rules, p, RULES_CHEAPER)
    left = sorted(z.id for z in cand if z not in usable)
    note = f"no_model: {', '.join(left)}" if left else ""
    return Outcome(_merge(site, rules, p, 0, overrides, now_aware, values), p, note)


def follow(site: Site, calendar: SiteCalendar, values: dict[str, float | None],
           now: dt.datetime, now_aware: dt.datetime, learned: Learned, level: int,
           overrides: list[Override] | None, p: Plan, k: int, note: str = "") -> Outcome:
    """The decisions of a plan made up to 15 minutes ago, at its step k."""
    rules = plan(site, calendar, values, now, learned, level, overrides, now_aware=now_aware)
    if p.follows == "rules":
        return Outcome(rules, p, note or RULES_CHEAPER)
    return Outcome(_merge(site, rules, p, k, overrides, now_aware, values), p, note)


def _merge(site: Site, rules: list[ZoneDecision], p: Plan, k: int,
           overrides: list[Override] | None, now_aware: dt.datetime,
           values: dict[str, float | None]) -> list[ZoneDecision]:
    zone_ids = {z.id for z in site.zones}
    by_zone = {d.zone: d for d in rules if d.zone in zone_ids}
    live = {o.point for o in overrides or [] if o.expires_at > now_aware}
    decisions = []
    for z in site.zones:
        d = by_zone[z.id]
        zp = p.zones.get(z.id)
        if zp is not None and k < len(zp.cooling):
            d = _apply(z, d, zp.from_step(k) if k else zp, live,
                       site.control.policy_min_cooling_setpoint, site.strategies.idle_band_k)
        decisions.append(d)
    if site.strategies.outdoor_air:
        ov = {o.point: o for o in overrides or [] if o.expires_at > now_aware}
        decisions += outdoor_air(site, decisions, ov, values)
    return decisions


def _apply(z, d: ZoneDecision, zp: ZonePlan, overridden: set[str], floor: float,
           idle_band: float) -> ZoneDecision:
    """The zone's decision with its AC from the plan (an operator's override still wins)."""
    mode, why = explain(zp, d.mode)
    sp = zp.setpoint[0]
    if sp is None and zp.occupied[0]:
        # people are there: the unit follows the planned temperature rather than stopping on
        # the model's word; it idles (off) only well under it, as the rules' idle band does
        planned = setpoint_for(z, zp.air[1], floor)
        if zp.air[0] > planned - idle_band:
            sp, mode = planned, "occupied"
            why = why.replace_code("plan_off", "plan_follow")
    ac = [WriteIntent(z.ac_status, 1.0 if sp is not None else 0.0, why, "strategy")]
    if sp is not None:
        ac.append(WriteIntent(z.cooling_setpoint, sp, why, "strategy"))
    else:
        kept = next((i for i in d.intents if i.point == z.cooling_setpoint), None)
        if kept is not None:
            ac.append(WriteIntent(z.cooling_setpoint, kept.value, why, "strategy"))
    keep = [i for i in d.intents if i.point not in (z.ac_status, z.cooling_setpoint)
            or i.point in overridden]
    mine = [i for i in ac if i.point not in overridden]
    return ZoneDecision(z.id, "override" if d.mode == "override" else mode,
                        tuple(mine + keep))


def explain(zp: ZonePlan, rules_mode: str) -> tuple[str, Reason]:
    """(mode, reason) of the plan's first step, in the words people check it by."""
    start = dt.datetime.fromisoformat(zp.start)
    at = lambda k: (start + dt.timedelta(minutes=15 * k)).strftime("%H:%M")  # noqa: E731
    H = len(zp.cooling)
    occ_steps = [k for k in range(H) if zp.occupied[k]]
    on = zp.setpoint[0] is not None
    if on:
        sp = zp.setpoint[0]
        if zp.occupied[0]:
            k = max(occ_steps, key=lambda j: zp.operative[j + 1])
            kf = max(occ_steps, key=lambda j: zp.free_operative[j + 1])
            return "occupied", (reason("plan_cool", setpoint=sp)
                                + reason("plan_peak", peak=zp.operative[k + 1], at=at(k + 1),
                                         free=zp.free_operative[kf + 1]))
        nxt = next((k for k in occ_steps if k > 0), None)
        if nxt is None:
            return rules_mode, reason("plan_cool", setpoint=sp)
        kf = max(occ_steps, key=lambda j: zp.free_operative[j + 1])
        mode = "break" if rules_mode == "break" else "cooldown"
        return mode, (reason("plan_precool", setpoint=sp, at=at(nxt))
                      + reason("plan_would_reach", free=zp.free_operative[kf + 1], at=at(kf + 1)))
    nxt_on = next((k for k in range(1, H) if zp.setpoint[k] is not None), None)
    if zp.occupied[0]:
        until = nxt_on if nxt_on is not None else H
        peak = max(zp.operative[1:until + 1])
        return "idle", (reason("plan_off")
                        + reason("plan_stays_under", peak=peak + 0.05, until=at(until)))
    mode = "break" if rules_mode == "break" else "unoccupied"
    if nxt_on is None:
        return mode, reason("plan_off_rest")
    return mode, reason("plan_off_until", until=at(nxt_on))
