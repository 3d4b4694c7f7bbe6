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

import datetime as dt
import math
import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from bems.calendar import SiteCalendar
from bems.predictive.model import STEP_H, STEP_S, BuildingModel, ZoneModel, sun
from bems.site import Site, Zone
from bems.strategies.plan import BREAK_MAX_H
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


def make_plan(site: Site, calendar: SiteCalendar, model: BuildingModel,
              zones: list[Zone], temps: dict[str, float], mass: dict[str, float],
              outdoor: np.ndarray, now: dt.datetime, now_utc: dt.datetime,
              comfort_weight: float, weather_source: str = "",
              time_limit_s: float = 10.0) -> Plan:
    """Solve the day's plan. `now`: naive local; `outdoor[k]`: the forecast at step k (°C);
    `temps` / `mass`: each zone's air and estimated surface temperature now."""
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

    kind = "work" if occ.any() else "off"
    other = np.array([model.other_kw.get(kind, [0.0] * 24)[t.hour] for t in times]) + \
        model.p0 if model.other_kw else np.zeros(H)

    def build():
        Ta = cp.Variable((Z, H + 1))
        Tm = cp.Variable((Z, H + 1))
        Q = cp.Variable((Z, H), nonneg=True)
        on_k = cp.multiply(1 / np.tile(qhold, (1, H)), Q)
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
        # electricity of each step, kW: cooling by the zones' area, fans while on
        # the air held colder costs more than the sensible balance says (the building model's
        # k_cold), counted over the steps a zone is planned on when people are there
        kw = cp.sum(cp.multiply(area[:, None] * k_elec[None, :], Q), axis=0) + \
            cp.sum(cp.multiply(area[:, None] * model.fan_kw_m2, on_k), axis=0) + \
            cp.sum(cp.multiply(area[:, None] * model.k_cold * occ, 27.0 - Ta[:, 1:]), axis=0)
        # the operative temperature pays per kelvin-hour over its limit, three times past half
        # a kelvin: a small overshoot is shared between zones rather than one zone given up
        objective = cp.sum(cp.multiply(vnd * STEP_H, kw)) + w_comfort * STEP_H * cp.sum(
            hot + 2 * hot2 + cold) + FLOOR_PENALTY_VND * cp.sum(under) + WARM_PENALTY_VND * cp.sum(warm)
        if p.peak_target_kw > 0 and model.other_kw:
            over = cp.Variable(H, nonneg=True)
            cons.append(kw + other <= p.peak_target_kw + over)
            objective = objective + PEAK_PENALTY_VND * cp.sum(over)
        return cp.Problem(cp.Minimize(objective), cons), Ta, Tm, Q, on_k, kw

    status, solver, result = "", "", None
    quiet = {"output_flag": False, "log_to_console": False}
    attempts = [("CLARABEL", {"time_limit": time_limit_s / 2}),
                ("HIGHS", {"time_limit": time_limit_s / 2, **quiet})]
    problem, Ta, Tm, Q, on_k, kw = build()
    for name, opts in attempts:
        if name not in cp.installed_solvers():
            continue
        try:
            with warnings.catch_warnings():  # "inaccurate" is in the status, checked below
                warnings.simplefilter("ignore", UserWarning)
                problem.solve(solver=name, **opts)
        except (cp.error.SolverError, ValueError, ArithmeticError) as exc:
            status = f"{name}: {exc}"[:200]
            continue
        status, solver = problem.status, name
        if status in ("optimal", "optimal_inaccurate") and Q.value is not None:
            result = (Ta.value, Tm.value, Q.value, on_k.value, kw.value)
            break
    if result is None:
        raise PlanError("solver_failed", status or "no solver")
    cpu = time.process_time() - cpu0
    if cpu > time_limit_s:
        raise PlanError("too_slow", f"{cpu:.1f} s > {time_limit_s:g} s")
    plan = Plan(now_utc.isoformat(), t0.isoformat(), H, solver=solver, status=status,
                weather=weather_source, comfort_weight=float(comfort_weight))
    ta, tm, q, _on, kw_v = result
    q = np.clip(q, 0, None)
    plan.kwh = round(float(kw_v.sum() * STEP_H), 1)
    plan.cost_vnd = round(float((kw_v * vnd * STEP_H).sum()))
    plan.peak_kw = round(float(kw_v.max()), 1)
    plan.building_kw = _r(kw_v + other, 1)
    for i, (z, m) in enumerate(zip(zones, models)):
        opv = ta[i] + 0.5 * (tm[i] - ta[i])
        free = _free_run(m, ta0[i], tm0[i], to, occ[i], harm)
        on = q[i] > ON_FRACTION * m.qmax
        sp = [setpoint_for(z, ta[i, k + 1], floor) if on[k] else None for k in range(H)]
        plan.zones[z.id] = ZonePlan(
            z.id, t0.isoformat(), _r(ta[i]), _r(opv), _r(free), _r(q[i], 3), sp,
            [bool(x) for x in occ[i]])
        plan.discomfort_kh += float((np.maximum(opv[1:] - p.comfort_high, 0) * occ[i]).sum()
                                    * STEP_H)
    plan.discomfort_kh = round(plan.discomfort_kh, 2)
    plan.cpu_s = round(time.process_time() - cpu0, 3)
    return plan


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
