"""The predictive plan: over the rest of the day, each zone's cooling, step by step, chosen to
cost the least electricity (priced by the tariff in force) plus a comfort penalty on the
estimated operative temperature while people are there, under the zones' learned models, the
outdoor temperature forecast and, when a peak target is set, a whole-building demand cap.

A convex program (cvxpy; Clarabel, HiGHS or OSQP): the cooling `Q ≥ 0` of each zone and step is
the decision, the zone temperatures follow linearly, the air may not be planned below the
policy floor (the setpoint we send is the planned air temperature), and the penalty is linear
in the kelvin-hours outside the comfort band. From the plan come the first step's intents — AC
on at the planned temperature or off — with reasons people can check; the plan is recomputed
every step, so forecast and model errors are corrected as they show.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from bems.calendar import SiteCalendar
from bems.predictive.model import (STEP_H, STEP_S, BuildingModel, ZoneModel, air_handler_areas,
                                   occupancy_grid, sun)
from bems.site import Site, Zone
from bems.strategies.plan import BREAK_MAX_H, Learned, plan_zone
from bems.tariff import band, price

FLOOR_PENALTY_VND = 1e7  # per K·step planned under the policy floor (it can only be a slack)
PEAK_PENALTY_VND = 1e6  # per kW·step over the peak target
WARM_PENALTY_VND = 1e5  # per K·step of air planned over the comfort limit while occupied
ON_FRACTION = 0.05  # of a zone's capacity: less planned cooling than this is "AC off"


def comfort_vnd_per_kh(weight: float) -> float:
    """The price of one kelvin-hour of discomfort for one zone, from the energy ↔ comfort
    slider (0 … 100): 1,000 VND at 0, about 32,000 at 50, 1,000,000 at 100."""
    w = min(max(float(weight), 0.0), 100.0)
    return 1000.0 * 10 ** (3 * w / 100)


BUDGET_MAX_KH = 3.0  # the "budget" mode's allowance per zone and working day at slider 0


def comfort_budget_kh(weight: float) -> float:
    """The kelvin-hours of discomfort one zone may spend in a working day in the "budget" mode
    (a kelvin past half a kelvin counts three times), from the energy ↔ comfort slider: 3 at
    0, 0.75 at 50, 0 at 100."""
    w = min(max(float(weight), 0.0), 100.0)
    return BUDGET_MAX_KH * (1 - w / 100) ** 2


@dataclass
class ZonePlan:
    zone: str
    start: str  # local ISO time of step 0
    air: list[float]  # planned air temperature at each step boundary (H + 1)
    operative: list[float]
    free_operative: list[float]  # without any cooling from now on
    cooling: list[float]  # K per step (H)
    setpoint: list[float | None]  # what would be sent, step by step (None: AC off)
    occupied: list[bool]

    def from_step(self, k: int) -> "ZonePlan":
        """The same plan seen from its step k (what it wants k × 15 minutes later)."""
        start = dt.datetime.fromisoformat(self.start) + dt.timedelta(seconds=STEP_S * k)
        return ZonePlan(self.zone, start.isoformat(), self.air[k:], self.operative[k:],
                        self.free_operative[k:], self.cooling[k:], self.setpoint[k:],
                        self.occupied[k:])


@dataclass
class Plan:
    made_at: str  # UTC ISO
    start_local: str
    steps: int
    zones: dict[str, ZonePlan] = field(default_factory=dict)
    kwh: float = 0.0
    cost_vnd: float = 0.0
    discomfort_kh: float = 0.0
    peak_kw: float = 0.0  # the plan's HVAC peak
    building_kw: list[float] = field(default_factory=list)  # HVAC + the rest, by step
    solver: str = ""
    status: str = ""
    cpu_s: float = 0.0
    weather: str = ""
    comfort_weight: float = 50.0
    # the plan's and the rule set's schedule, each priced by the same model and objective
    # (electricity at the tariff, the fans for every step a unit is on, discomfort at the
    # slider's price)
    objective_vnd: float | None = None
    relaxed_objective_vnd: float | None = None  # the relaxed schedule's, priced the same way
    rules_objective_vnd: float | None = None  # None when the rules' schedule was not simulated
    # of which penalties: the slacks of what the models say cannot be kept (a room under the
    # floor with its unit off on a cool day, over the comfort limit at full cooling)
    penalty_vnd: float | None = None
    rules_penalty_vnd: float | None = None
    follows: str = "plan"  # "rules": the rules' schedule came out cheaper, the rules decide
    on_off: str = ""  # the schedule kept: "half_hour" (rounded) or "continuous" (relaxed)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "Plan":
        d = dict(d)
        d["zones"] = {k: ZonePlan(**v) for k, v in d.get("zones", {}).items()}
        return cls(**d)


class PlanError(Exception):
    """The plan cannot be made: the rules decide. `code` names why (the UI translates it):
    nobody_today, no_model, no_temperature, no_forecast, solver_failed, too_slow."""

    def __init__(self, code: str, detail: str = ""):
        self.code, self.detail = code, detail
        super().__init__(f"{code}: {detail}" if detail else code)


def horizon(site: Site, calendar: SiteCalendar, zones: list[Zone], now: dt.datetime
            ) -> tuple[dt.datetime, int]:
    """(step 0 at `now` floored to the step, steps to the end of today's last occupied period
    of these zones); 0 steps when no one comes any more today."""
    t0 = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    end = None
    for z in zones:
        for p in calendar.periods(z.schedule, now.date()) if z.schedule else []:
            e = dt.datetime.combine(now.date(), p.end) if p.end != dt.time(0) else \
                dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(0))
            end = e if end is None or e > end else end
    if end is None or end <= t0:
        return t0, 0
    return t0, int(math.ceil((end - t0).total_seconds() / STEP_S))


def day_occupied_steps(site: Site, calendar: SiteCalendar, zones: list[Zone], day: dt.date
                       ) -> np.ndarray:
    """Each zone's occupied steps over the whole of `day` (its schedule and the calendar)."""
    t0 = int(dt.datetime.combine(day, dt.time(0), site.tz).timestamp())
    n = int(86400 // STEP_S)
    by_schedule = {s: occupancy_grid(site, calendar, s, t0, n).sum()
                   for s in {z.schedule for z in zones if z.schedule}}
    return np.array([by_schedule.get(z.schedule, 0.0) for z in zones], float)


def make_plan(site: Site, calendar: SiteCalendar, model: BuildingModel,
              zones: list[Zone], temps: dict[str, float], mass: dict[str, float],
              outdoor: np.ndarray, now: dt.datetime, now_utc: dt.datetime,
              comfort_weight: float, weather_source: str = "",
              time_limit_s: float = 10.0, learned: Learned | None = None,
              ac_on: dict[str, bool] | None = None,
              spent: dict[str, float] | None = None) -> Plan:
    """Solve the day's plan. `now`: naive local; `outdoor[k]`: the forecast at step k (°C);
    `temps` / `mass`: each zone's air and estimated surface temperature now. With `learned`
    (the rule set's learned rates) the rule set's own schedule of the day is simulated on the
    same models and priced the same way (`ac_on`: each zone's AC now); where it comes out
    cheaper than the plan, the plan says the rules should decide (`Plan.follows`). `spent`:
    each zone's discomfort so far today (`strategy.spent_today`), for the "budget" mode."""
    import cvxpy as cp

    cpu0 = time.process_time()
    p = site.strategies
    floor = site.control.policy_min_cooling_setpoint
    t0, H = horizon(site, calendar, zones, now)
    if H <= 0:
        raise PlanError("nobody_today")
    to = np.asarray(outdoor[:H], float)
    if len(to) < H or not np.isfinite(to).all() or (np.abs(to) > 70).any():
        raise PlanError("no_forecast", f"{len(to)} of {H} steps")
    times = [t0 + dt.timedelta(seconds=STEP_S * k) for k in range(H)]
    harm = sun(np.array([t.replace(tzinfo=site.tz).timestamp() for t in times]), site.latitude,
               site.longitude)
    models: list[ZoneModel] = []
    for z in zones:
        m = model.zones.get(z.id)
        t, tm = temps.get(z.id), mass.get(z.id)
        if m is None or not m.fit:
            raise PlanError("no_model", z.id)
        if t is None or tm is None or not (math.isfinite(t) and math.isfinite(tm)) \
                or not -10 < t < 60:
            raise PlanError("no_temperature", z.id)
        models.append(m)
    Z = len(zones)
    occ = np.array([[1.0 if z.schedule and calendar.occupied(z.schedule, t) else 0.0
                     for t in times] for z in zones])
    # the lunch break as the policy says: free (the plan decides), or AC off, restarted at
    # most `break_restart_min` before work resumes (the state-agency rule)
    shut = lunch_off(site, calendar, zones, times) if p.predictive_break == "off" else None
    # the "budget" mode: each zone's kelvin-hours for the rest of today, its day's allowance
    # less what it has spent so far (not known: the allowance in proportion to the working
    # steps left); discomfort within it priced as at slider 0, beyond it at the slider's price
    budget = None
    if p.predictive_comfort == "budget":
        daily = comfort_budget_kh(comfort_weight)
        share = daily * occ.sum(axis=1) / np.maximum(
            day_occupied_steps(site, calendar, zones, now.date()), 1)
        spent = spent or {}
        budget = np.array([max(daily - spent[z.id], 0.0) if z.id in spent else share[i]
                           for i, z in enumerate(zones)])
    col = lambda f: np.array([[f(m)] for m in models])  # noqa: E731  (Z, 1) coefficients
    a, b, c, e = col(lambda m: m.a), col(lambda m: m.b), col(lambda m: m.c), col(lambda m: m.e)
    al, be, gm = col(lambda m: m.alpha), col(lambda m: m.beta), col(lambda m: m.gm)
    sun_air = np.array([harm @ np.asarray(m.d) for m in models])  # (Z, H)
    sun_mass = np.array([harm @ np.asarray(m.sm) for m in models])
    qmax = col(lambda m: m.qmax)
    area = np.array([z.area_m2 for z in zones])
    tariff = site.tariff_on(now.date())
    vnd = np.array([price(tariff, band(tariff, t)) * (1 + tariff.vat) for t in times]) \
        if tariff is not None else np.full(H, 2000.0)
    # kW of electricity per (K/step) of cooling per m², by step (never below a third of k0:
    # a forecast error must not make cooling look free)
    k_elec = np.maximum(model.k0 + model.k1 * (to - 25.0), model.k0 / 3)
    ta0 = np.array([temps[z.id] for z in zones])
    tm0 = np.array([mass[z.id] for z in zones])
    To = np.tile(to, (Z, 1))
    high = p.comfort_high - p.predictive_margin_k
    w_comfort = comfort_vnd_per_kh(comfort_weight)
    # a zone's fans run while its AC is on, whatever the load: counted per unit of cooling as
    # the zone's usual holding load needs (an on/off variable per zone and half hour made a
    # mixed-integer program that took 1.5 to over 5 s; this one is linear)
    qhold = col(lambda m: m.qhold)

    # the air handlers serving the planned zones: (area served, rows of their zones)
    units = air_handler_areas(site, [z.id for z in zones]) if model.ahu_kw_m2 > 0 else []

    def units_on(on_) -> np.ndarray:
        """kW of the air handlers running, by step, for a zones' on/off (Z, H)."""
        return sum((model.ahu_kw_m2 * area_u * np.max(on_[rows], axis=0)
                    for area_u, rows in units), np.zeros(H))

    kind = "work" if occ.any() else "off"
    other = np.array([model.other_kw.get(kind, [0.0] * 24)[t.hour] for t in times]) + \
        model.p0 if model.other_kw else np.zeros(H)

    def build(U: np.ndarray | None = None):
        """The LP; with `U` (Z, H: 1 on, 0 off) the units' on/off is given, their fans
        counted for every step on, and cooling only where on (the second solve)."""
        Ta = cp.Variable((Z, H + 1))
        Tm = cp.Variable((Z, H + 1))
        Q = cp.Variable((Z, H), nonneg=True)
        on_k = cp.multiply(1 / np.tile(qhold, (1, H)), Q) if U is None else U
        under, warm = cp.Variable((Z, H), nonneg=True), cp.Variable((Z, H), nonneg=True)
        hot, hot2 = cp.Variable((Z, H), nonneg=True), cp.Variable((Z, H), nonneg=True)
        cold = cp.Variable((Z, H), nonneg=True)
        Ta_k, Tm_k = Ta[:, :-1], Tm[:, :-1]
        op = Ta[:, 1:] + 0.5 * (Tm[:, 1:] - Ta[:, 1:])
        cons = [
            Ta[:, 0] == ta0, Tm[:, 0] == tm0,
            Ta[:, 1:] == Ta_k + cp.multiply(a, To - Ta_k) + cp.multiply(b, Tm_k - Ta_k)
            + cp.multiply(c, occ) + sun_air + e - Q,
            Tm[:, 1:] == Tm_k + cp.multiply(al, Ta_k - Tm_k) + cp.multiply(be, To - Tm_k)
            + cp.multiply(gm, occ) + sun_mass,
            Q <= np.tile(qmax, (1, H)),
            Ta[:, 1:] >= floor - under,
            # while people are there the air is never planned over the comfort limit (nobody
            # wants a 30 °C office, whatever the price)
            cp.multiply(occ, Ta[:, 1:]) <= p.comfort_high + warm,
            hot >= cp.multiply(occ, op - high), hot2 >= hot - 0.5,
            cold >= cp.multiply(occ, p.comfort_low - op),
        ]
        if shut is not None and shut.any():
            cons.append(cp.multiply(shut, Q) == 0)
        if U is not None:
            cons.append(Q <= np.tile(qmax, (1, H)) * U)
        # electricity of each step, kW: cooling by the zones' area, fans while on
        # the air held colder costs more than the sensible balance says (the building model's
        # k_cold), counted over the steps a zone is planned on when people are there
        kw = cp.sum(cp.multiply(area[:, None] * k_elec[None, :], Q), axis=0) + \
            cp.sum(cp.multiply(area[:, None] * model.fan_kw_m2, on_k), axis=0) + \
            cp.sum(cp.multiply(area[:, None] * model.k_cold * occ, 27.0 - Ta[:, 1:]), axis=0)
        if units and U is not None:
            kw = kw + units_on(U > 0.5)
        elif units:
            # an air handler runs while any of its zones is on: in the relaxation, at least
            # as much as its most loaded zone
            run = cp.Variable((len(units), H), nonneg=True)
            cons.append(run[[j for j, (_, rows) in enumerate(units) for _i in rows], :]
                        >= on_k[[i for _, rows in units for i in rows], :])
            kw = kw + cp.sum(cp.multiply(
                np.array([[model.ahu_kw_m2 * area_u] for area_u, _ in units]), run), axis=0)
        # the operative temperature pays per kelvin-hour over its limit, three times past half
        # a kelvin: a small overshoot is shared between zones rather than one zone given up
        pain = hot + 2 * hot2 + cold
        if budget is None:
            comfort = w_comfort * STEP_H * cp.sum(pain)
        else:
            over_budget = cp.Variable(Z, nonneg=True)
            cons.append(STEP_H * cp.sum(pain, axis=1) <= budget + over_budget)
            comfort = comfort_vnd_per_kh(0) * STEP_H * cp.sum(pain) + \
                w_comfort * cp.sum(over_budget)
        objective = cp.sum(cp.multiply(vnd * STEP_H, kw)) + comfort + \
            FLOOR_PENALTY_VND * cp.sum(under) + WARM_PENALTY_VND * cp.sum(warm)
        if p.peak_target_kw > 0 and model.other_kw:
            over = cp.Variable(H, nonneg=True)
            cons.append(kw + other <= p.peak_target_kw + over)
            objective = objective + PEAK_PENALTY_VND * cp.sum(over)
        return cp.Problem(cp.Minimize(objective), cons), Ta, Tm, Q, kw

    def priced(ta_, tm_, q_, on_) -> tuple[float, np.ndarray, float]:
        """(objective VND, kW by step, the objective's penalties VND) of a schedule: the LP's
        terms, with the fans counted for every step a unit is on (what the electricity model
        was fitted with). The penalties are the slacks of what the models say cannot be kept
        (air under the floor, over the comfort limit while occupied, over the peak target)."""
        air = ta_[:, 1:]
        op_ = air + 0.5 * (tm_[:, 1:] - air)
        kw_ = (area[:, None] * (k_elec[None, :] * q_ + model.fan_kw_m2 * on_
                                + model.k_cold * occ * (27.0 - air))).sum(axis=0) \
            + units_on(np.asarray(on_, float))
        hot_ = np.maximum(occ * (op_ - high), 0)
        pain = STEP_H * (hot_ + 2 * np.maximum(hot_ - 0.5, 0)
                         + np.maximum(occ * (p.comfort_low - op_), 0)).sum(axis=1)
        comfort = w_comfort * pain.sum() if budget is None else \
            comfort_vnd_per_kh(0) * pain.sum() + \
            w_comfort * np.maximum(pain - budget, 0).sum()
        penalty = float(FLOOR_PENALTY_VND * np.maximum(floor - air, 0).sum()
                        + WARM_PENALTY_VND * np.maximum(occ * air - p.comfort_high, 0).sum())
        if p.peak_target_kw > 0 and model.other_kw:
            penalty += PEAK_PENALTY_VND * float(
                np.maximum(kw_ + other - p.peak_target_kw, 0).sum())
        return float((vnd * STEP_H * kw_).sum() + comfort) + penalty, kw_, penalty

    # the relaxation (fans priced in proportion to the cooling); "half_hour": rounded to
    # whole half hours per unit and solved again with the on/off given, and that is the plan
    # (kept even where the models price the relaxed schedule lower: measured in the closed
    # loop, the plant pays for being on more than the fitted fan term says, and the rounded
    # plan used less energy at equal comfort: README, "Units on or off by half hour")
    rounds = 2 if p.predictive_on_off == "half_hour" else 1
    status, solver, best, relaxed_cost = "", "", None, None
    for stage in range(rounds):
        U = None
        if stage == 1:
            U = round_on(best[1][2], occ, qhold[:, 0], qmax[:, 0], times, shut,
                         int(math.ceil(p.min_on_min * 60 / STEP_S)))
        status, solver, result = _solve(cp, *build(U), time_limit_s / (2 * rounds))
        if result is None:
            if best is not None:
                break
            raise PlanError("solver_failed", status or "no solver")
        ta_s, tm_s, q_s = result[0], result[1], np.clip(result[2], 0, None)
        on_s = U > 0.5 if U is not None else q_s > ON_FRACTION * qmax
        cost, kw_s, penalty = priced(ta_s, tm_s, q_s, on_s)
        if U is None:
            relaxed_cost = cost
        if best is None or U is not None:
            best = (cost, (ta_s, tm_s, q_s, on_s, kw_s), solver, status,
                    "continuous" if U is None else "half_hour", penalty)
    cost, (ta, tm, q, on_all, kw_v), solver, status, kept, penalty = best
    cpu = time.process_time() - cpu0
    if cpu > time_limit_s:
        raise PlanError("too_slow", f"{cpu:.1f} s > {time_limit_s:g} s")
    plan = Plan(now_utc.isoformat(), t0.isoformat(), H, solver=solver, status=status,
                weather=weather_source, comfort_weight=float(comfort_weight),
                objective_vnd=round(cost), relaxed_objective_vnd=round(relaxed_cost),
                on_off=kept, penalty_vnd=round(penalty))
    if learned is not None:
        r_ta, r_tm, r_q, r_on = rules_schedule(site, calendar, zones, models, learned, ta0,
                                               tm0, to, occ, harm, times, ac_on or {})
        r_cost, _, r_penalty = priced(r_ta, r_tm, r_q, r_on)
        plan.rules_objective_vnd, plan.rules_penalty_vnd = round(r_cost), round(r_penalty)
        if plan.rules_objective_vnd < plan.objective_vnd:
            plan.follows = "rules"
    plan.kwh = round(float(kw_v.sum() * STEP_H), 1)
    plan.cost_vnd = round(float((kw_v * vnd * STEP_H).sum()))
    plan.peak_kw = round(float(kw_v.max()), 1)
    plan.building_kw = _r(kw_v + other, 1)
    for i, (z, m) in enumerate(zip(zones, models)):
        opv = ta[i] + 0.5 * (tm[i] - ta[i])
        free = _free_run(m, ta0[i], tm0[i], to, occ[i], harm)
        sp = [setpoint_for(z, ta[i, k + 1], floor) if on_all[i, k] else None
              for k in range(H)]
        plan.zones[z.id] = ZonePlan(
            z.id, t0.isoformat(), _r(ta[i]), _r(opv), _r(free), _r(q[i], 3), sp,
            [bool(x) for x in occ[i]])
        plan.discomfort_kh += float((np.maximum(opv[1:] - p.comfort_high, 0) * occ[i]).sum()
                                    * STEP_H)
    plan.discomfort_kh = round(plan.discomfort_kh, 2)
    plan.cpu_s = round(time.process_time() - cpu0, 3)
    return plan


def rules_schedule(site: Site, calendar: SiteCalendar, zones: list[Zone],
                   models: list[ZoneModel], learned: Learned, ta0: np.ndarray,
                   tm0: np.ndarray, to: np.ndarray, occ: np.ndarray, harm: np.ndarray,
                   times: list[dt.datetime], ac_on: dict[str, bool]):
    """What the rule set would do over the horizon, on the zones' models: at each step its
    decision for the modelled temperature (cool-down start, idle band, early stop, the lunch
    break, as it decides them), the unit holding the setpoint it is sent within its capacity.
    (Ta, Tm: (Z, H + 1); cooling, on: (Z, H))."""
    Z, H = occ.shape
    ta = np.zeros((Z, H + 1))
    tm = np.zeros((Z, H + 1))
    q = np.zeros((Z, H))
    on = np.zeros((Z, H), bool)
    ta[:, 0], tm[:, 0] = ta0, tm0
    for i, (z, m) in enumerate(zip(zones, models)):
        running = bool(ac_on.get(z.id, False))
        for k, t in enumerate(times):
            values = {z.temperature: float(ta[i, k]), z.ac_status: 1.0 if running else 0.0}
            d = plan_zone(site, calendar, z, values, t, learned)
            want = {it.point: it.value for it in d.intents}
            running = (want.get(z.ac_status) or 0.0) > 0.5
            ta_free, tm[i, k + 1] = m.free_step(ta[i, k], tm[i, k], to[k], occ[i, k], harm[k])
            if running:
                sp = want.get(z.cooling_setpoint, ta_free)
                q[i, k] = min(max(ta_free - sp, 0.0), m.qmax)
                on[i, k] = True
            ta[i, k + 1] = ta_free - q[i, k]
    return ta, tm, q, on


def _solve(cp, problem, Ta, Tm, Q, kw, time_limit_s: float):
    """(status, solver, (Ta, Tm, Q, kW) or None): Clarabel, else HiGHS."""
    status = ""
    quiet = {"output_flag": False, "log_to_console": False}
    for name, opts in (("CLARABEL", {"time_limit": time_limit_s}),
                       ("HIGHS", {"time_limit": time_limit_s, **quiet})):
        if name not in cp.installed_solvers():
            continue
        try:
            with warnings.catch_warnings(), _no_banner(name == "HIGHS"):
                warnings.simplefilter("ignore", UserWarning)  # "inaccurate": in the status
                problem.solve(solver=name, **opts)
        except (cp.error.SolverError, ValueError, ArithmeticError) as exc:
            status = f"{name}: {exc}"[:200]
            continue
        status = problem.status
        if status in ("optimal", "optimal_inaccurate") and Q.value is not None:
            return status, name, (Ta.value, Tm.value, Q.value, np.asarray(kw.value, float))
    return status, "", None


@contextlib.contextmanager
def _no_banner(on: bool):
    """HiGHS prints its banner on the process's standard output the first time it runs,
    whatever its options say; `bems simulate --json` and the CLI's tables must stay clean."""
    if not on:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def round_on(q: np.ndarray, occ: np.ndarray, qhold: np.ndarray, qmax: np.ndarray,
             times: list[dt.datetime], shut: np.ndarray | None, min_on: int) -> np.ndarray:
    """Each unit on or off by clock half hour (Z, H: 1 on), from the relaxed plan's cooling
    `q` (Z, H, K per step). A half hour is on where people are there and it cools at all,
    or where its cooling averages half the unit's holding load or more (the relaxation
    charged the fans that fraction). The pre-cooling the rounding drops before people come
    is given back as whole half hours at full power just before they come (the same cold,
    fewer hours of fans); a run shorter than `min_on` steps is lengthened, earlier first."""
    Z, H = q.shape
    half = np.array([(t.date().toordinal() * 48 + (t.hour * 60 + t.minute) // 30)
                     for t in times])
    blocks = [np.flatnonzero(half == b) for b in np.unique(half)]
    allowed = np.ones((Z, H), bool) if shut is None else shut < 0.5
    U = np.zeros((Z, H))
    for i in range(Z):
        frac = np.clip(q[i] / qhold[i], 0, 1)
        for ks in blocks:
            people = (occ[i, ks] > 0) & (q[i, ks] > ON_FRACTION * qmax[i])
            if people.any() or frac[ks].mean() >= 0.5:
                U[i, ks] = 1.0
        k = 0
        while k < H:  # unoccupied stretches before people come: the dropped cooling back
            if occ[i, k] > 0:
                k += 1
                continue
            e = k
            while e < H and occ[i, e] == 0:
                e += 1
            dropped = float(q[i, k:e][U[i, k:e] == 0].sum())
            if e < H and dropped > 0:
                need = int(math.ceil(dropped / (0.8 * qmax[i]) - 1e-9))
                for ks in reversed([b for b in blocks if k <= b[0] and b[-1] < e]):
                    if need <= 0:
                        break
                    new = [j for j in ks if U[i, j] == 0 and allowed[i, j]]
                    U[i, new] = 1.0
                    need -= len(new)
            k = e
        U[i] = _min_on(U[i], allowed[i], min_on)
    return U * allowed


def _min_on(u: np.ndarray, allowed: np.ndarray, n: int) -> np.ndarray:
    """Runs of on steps lengthened to `n` steps (earlier first, then later), except a run
    under way at step 0 (the unit may have been on for long)."""
    u = u.copy()
    H = len(u)
    k = 0
    while k < H:
        if u[k] == 0:
            k += 1
            continue
        e = k
        while e < H and u[e] == 1:
            e += 1
        if k > 0 and e - k < n:
            s = k
            while e - s < n and s > 0 and u[s - 1] == 0 and allowed[s - 1]:
                s -= 1
            while e - s < n and e < H and allowed[e]:
                e += 1
            u[s:e] = 1.0
        k = e
    return u


def lunch_off(site: Site, calendar: SiteCalendar, zones: list[Zone],
              times: list[dt.datetime]) -> np.ndarray:
    """(Z, H) 1 where a zone's AC must stay off: in a break between two working periods
    (under three hours, as the rule set counts a break) before the last
    `break_restart_min` of it."""
    restart = dt.timedelta(minutes=site.strategies.break_restart_min)
    out = np.zeros((len(zones), len(times)))
    for i, z in enumerate(zones):
        if not z.schedule:
            continue
        for day in sorted({t.date() for t in times}):
            ps = calendar.periods(z.schedule, day)
            for a, b in zip(ps, ps[1:]):
                end = dt.datetime.combine(day, a.end)
                start = dt.datetime.combine(day, b.start)
                if a.end == dt.time(0) or not dt.timedelta(0) < start - end < \
                        dt.timedelta(hours=BREAK_MAX_H):
                    continue
                for k, t in enumerate(times):
                    if end <= t and t + dt.timedelta(seconds=STEP_S) <= start - restart:
                        out[i, k] = 1.0
    return out


def _r(x, nd: int = 2) -> list[float]:
    return [round(float(v), nd) for v in x]


def setpoint_for(z: Zone, planned: float, floor: float) -> float:
    """What is sent for a planned air temperature: never under the policy floor, inside the
    zone's limits, to a tenth of a kelvin."""
    return round(min(max(planned, floor, z.setpoint_min), z.setpoint_max), 1)


def _free_run(m: ZoneModel, ta: float, tm: float, to, occ, harm) -> np.ndarray:
    out = [m.operative(ta, tm)]
    for k in range(len(to)):
        ta, tm = m.free_step(ta, tm, to[k], occ[k], harm[k])
        out.append(m.operative(ta, tm))
    return np.array(out)
