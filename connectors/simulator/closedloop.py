"""Closed loop, fast: the EnergyPlus centre unpaced with the *same* strategy code in the loop
(no BACnet), scored with BOPTEST-style KPIs over the same days for any strategy.

The controllers' relinquish default is their time clock (the baseline); BEMS's intents sit in
priority slot `write_priority` above it, clamped to the points' limits as the writer does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import time

import numpy as np

from bems.calendar import SiteCalendar
from bems.site import Site
from bems.strategies.plan import Learned, demand_level, intents_of, learn, plan
from bems.tariff import cost
from typing import Callable, TYPE_CHECKING
from connectors.simulator.centre import Binding
from connectors.simulator.physics import EnergyPlusModel, Step

if TYPE_CHECKING:
    from connectors.simulator.faults import Injector

COMFORT = (23.0, 27.0)


@dataclass
class Kpis:
    days: int
    area_m2: float
    energy_kwh: float = 0.0
    hvac_kwh: float = 0.0
    lighting_kwh: float = 0.0
    plugs_kwh: float = 0.0
    fans_kwh: float = 0.0
    cooling_kwh: float = 0.0
    tdis_kh: float = 0.0  # summed over zones
    tdis_operative_kh: float = 0.0
    peak_kw: float = 0.0
    peak_at: str = ""
    cost_vnd: float = 0.0
    setpoint_violation_h: float = 0.0  # zone-hours cooling below the policy floor
    holiday_ac_h: float = 0.0  # zone-hours of AC on days the office is closed
    zones: int = 1
    decisions: int = 0  # the strategy's decisions over the scored days
    cpu_s: float = 0.0  # the controller's CPU time for them (a nightly model fit apart)
    fit_cpu_s: float = 0.0
    fits: int = 0
    fallbacks: dict = field(default_factory=dict)  # why the predictive plan was not used
    energy_by_step: list = field(default_factory=list, repr=False)
    discomfort: list = field(default_factory=list, repr=False)  # (local time, zone, K·h, kind)

    def as_dict(self) -> dict:
        return {
            "days": self.days, "energy_kwh": round(self.energy_kwh, 1),
            "hvac_kwh": round(self.hvac_kwh, 1), "lighting_kwh": round(self.lighting_kwh, 1),
            "fans_kwh": round(self.fans_kwh, 1), "cooling_kwh": round(self.cooling_kwh, 1),
            "ener_kwh_m2": round(self.energy_kwh / self.area_m2, 3),
            "tdis_kh_per_zone": round(self.tdis_kh / self.zones, 2),
            "tdis_operative_kh_per_zone": round(self.tdis_operative_kh / self.zones, 2),
            "peak_kw": round(self.peak_kw, 1), "cost_vnd": round(self.cost_vnd),
            "policy_violations": round(self.setpoint_violation_h + self.holiday_ac_h, 2),
            "setpoint_below_floor_zone_h": round(self.setpoint_violation_h, 2),
            "ac_on_closed_days_zone_h": round(self.holiday_ac_h, 2),
            "peak_at": self.peak_at,
            "cpu_s_per_decision": round(self.cpu_s / self.decisions, 4) if self.decisions
            else 0.0,
            "decisions": self.decisions, "fallback_steps": sum(self.fallbacks.values()),
            "fallbacks": dict(self.fallbacks),
            "fit_cpu_s_per_fit": round(self.fit_cpu_s / self.fits, 2) if self.fits else 0.0,
        }


STRATEGIES = ("baseline", "rules", "predictive", "bems")  # "bems": the rules (older name)
HISTORY_DAYS = 14  # the predictive strategy refits its zone models nightly on this much


def simulate(site: Site, start: dt.date, days: int, strategy: str = "rules",
             injector: "Injector | None" = None,
             sink: Callable[[list[tuple]], None] | None = None,
             on_write: Callable[[str, float | None, dt.datetime], None] | None = None,
             on_step: Callable[[Step], None] | None = None, warmup_days: int = 0,
             forecast_seed: int = 1, forecast_error: bool = True) -> Kpis:
    """Run the days with a strategy in the loop and score them. `injector` applies faults
    (connectors/simulator/faults.py) to the equipment and to what BEMS reads; `sink` gets
    every interval's readings, as BEMS would store them: (point, UTC time, value) rows;
    `on_write` each change of BEMS's commands: (point, value or None for a release, UTC);
    `on_step` the simulator's own step (the truth a benchmark scores models against).

    `warmup_days` run before `start` and are not scored: the building's time clock for the
    baseline, the rule set for the others (the predictive strategy learns its zone models
    from them, then refits every night on the last 14 days). Its outdoor forecast is the
    weather file's future with a forecast's error (connectors/simulator/forecast.py; without
    it, `forecast_error=False`, only to measure what the error costs)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}")
    strategy = "rules" if strategy == "bems" else strategy
    binding = Binding(site)
    calendar = SiteCalendar(site)
    model = EnergyPlusModel(binding.sim_zones, site.latitude, site.longitude)
    points = {p.id: p for p in site.points}
    slots: dict[str, float] = {}  # BEMS's priority slot
    values: dict[str, float | None] = {}  # what a poll would see
    learned = Learned()
    state = {"level": 0, "prev": None, "effective": {}}
    kpi = Kpis(days=days, area_m2=site.floor_area_m2, zones=len(binding.zones))
    registers = {k: 0.0 for k in binding.meters}  # the meters' energy registers, kWh
    first = dt.datetime.combine(start, dt.time(0))
    last = first + dt.timedelta(days=days)
    begin_sim = first - dt.timedelta(days=warmup_days)
    brain = _Predictive(site, calendar, forecast_seed, forecast_error) \
        if strategy == "predictive" else None
    floor = site.control.policy_min_cooling_setpoint

    def clamp(pid: str, v: float) -> float:
        p = points[pid]
        if p.min is not None:
            v = max(v, p.min)
        if p.max is not None:
            v = min(v, p.max)
        return v

    def controller(local: dt.datetime):
        clock = binding.time_clock_values(local)
        if strategy != "baseline" and local >= begin_sim:
            cpu0 = time.process_time()
            if brain is not None and local >= first:
                decisions = brain.decide(values, local, learned, state["level"], kpi)
            else:
                decisions = plan(site, calendar, values, local, learned, state["level"])
            if first <= local < last:
                kpi.decisions += 1
                kpi.cpu_s += time.process_time() - cpu0
            before = dict(slots)
            for it in intents_of(decisions):
                if it.value is None:
                    slots.pop(it.point, None)
                elif it.point in points and points[it.point].writable:
                    slots[it.point] = clamp(it.point, it.value)
            if on_write is not None:
                when = local.replace(tzinfo=site.tz).astimezone(dt.timezone.utc)
                for pid in set(before) | set(slots):
                    if before.get(pid) != slots.get(pid):
                        on_write(pid, slots.get(pid), when)
        effective = {pid: slots.get(pid, v) for pid, v in clock.items()}
        if injector is not None:
            effective = injector.points(local, effective)
        state["effective"] = effective
        cmd = binding.commands_from(effective, calendar, local)
        return injector.physics(local, cmd) if injector is not None else cmd

    def observer(step: Step) -> None:
        end = step.time.astimezone(site.tz).replace(tzinfo=None)
        begin = end - dt.timedelta(seconds=step.seconds)
        if begin < begin_sim or begin >= last:
            return
        h = step.seconds / 3600
        for k in registers:
            registers[k] += step.energy_kwh.get(k, 0.0)
        sensors = binding.sensor_values(step, registers)
        now_values = {**state["effective"], **sensors}
        if injector is not None:
            now_values = injector.sensed(begin, now_values)
        if strategy != "baseline" and state["prev"] is not None:
            learn(site, learned, state["prev"], now_values, h, begin.date())
        state["prev"] = dict(now_values)
        values.clear()
        values.update(now_values)
        if brain is not None:
            brain.record(step.time, now_values)
        main_kw = step.power_kw.get("main", 0.0)
        state["level"] = demand_level(site.strategies, main_kw, None, state["level"])
        if begin < first:
            return
        if on_step is not None:
            on_step(step)
        if sink is not None:
            sink([(pid, step.time, v) for pid, v in now_values.items()])
        kpi.energy_kwh += step.energy_kwh.get("main", 0.0)
        kpi.hvac_kwh += step.energy_kwh.get("ac", 0.0)
        kpi.lighting_kwh += step.energy_kwh.get("lighting", 0.0)
        kpi.plugs_kwh += step.energy_kwh.get("plugs", 0.0)
        kpi.fans_kwh += step.extra.get("fans", 0.0)
        kpi.cooling_kwh += step.extra.get("cooling", 0.0)
        kpi.energy_by_step.append((step.time - dt.timedelta(seconds=step.seconds),
                                   step.energy_kwh.get("main", 0.0)))
        if main_kw > kpi.peak_kw:
            kpi.peak_kw, kpi.peak_at = main_kw, begin.strftime("%Y-%m-%d %H:%M")
        for z in binding.zones:
            closed = not (z.schedule and calendar.periods(z.schedule, begin.date()))
            ac_on = state["effective"].get(z.ac_status, 0.0) > 0.5 if z.ac_status else False
            mode = state["effective"].get(z.ac_mode, 1.0) if z.ac_mode else 1.0
            cooling = ac_on and mode != 2
            sp = state["effective"].get(z.cooling_setpoint) if z.cooling_setpoint else None
            if cooling and sp is not None and sp < floor - 1e-6:
                kpi.setpoint_violation_h += h
            if cooling and closed:
                kpi.holiday_ac_h += h
            if z.schedule and calendar.occupied(z.schedule, begin):
                for temp, attr in ((step.zone_c[z.sim_zone], "tdis_kh"),
                                   (step.operative_c[z.sim_zone], "tdis_operative_kh")):
                    dev = max(0.0, temp - COMFORT[1]) + max(0.0, COMFORT[0] - temp)
                    setattr(kpi, attr, getattr(kpi, attr) + dev * h)
                    if dev > 0:
                        kpi.discomfort.append((begin, z.id, dev * h, attr))

    run_days = warmup_days + days + 1  # whole days; one more covers a start after midnight
    model.run(begin_sim.date(), run_days, controller, observer)
    kpi.cost_vnd = cost(site, kpi.energy_by_step).total_vnd
    return kpi


class _Predictive:
    """The predictive strategy in the loop, fed as the runtime feeds it: the readings (as
    BEMS would have stored them, on the 15-minute grid), a nightly refit of the zone models on
    the last 14 days, the surface temperatures from the last two days, and a forecast issued
    every hour."""

    def __init__(self, site: Site, calendar: SiteCalendar, seed: int, error: bool = True):
        from connectors.simulator.forecast import WeatherFileForecast

        self.site, self.calendar = site, calendar
        self.weather = WeatherFileForecast(site.latitude, site.longitude, seed, error)
        self.t0: int | None = None
        self.rows: dict[str, list[float]] = {}
        self.n = 0
        self.model = None
        self.fit_day: dt.date | None = None
        self.outdoor = next((p.id for p in site.points if p.kind == "outdoor_temperature"), None)

    def record(self, when: dt.datetime, values: dict[str, float | None]) -> None:
        from bems.predictive.model import points_needed

        if self.t0 is None:
            self.t0 = int(when.timestamp())
            self.rows = {p: [] for p in points_needed(self.site)}
        for p, col in self.rows.items():
            v = values.get(p)
            col.append(float(v) if v is not None else np.nan)
        self.n += 1

    def history(self, days: float):
        from bems.predictive.model import History

        k = min(self.n, int(days * 96))
        return History(self.t0 + (self.n - k) * 900, k,
                       {p: np.array(col[-k:], float) for p, col in self.rows.items()})

    def decide(self, values, local, learned, level, kpi: Kpis):
        from bems.predictive import strategy as predictive
        from bems.predictive.model import fit
        from bems.predictive.weather import align

        aware = local.replace(tzinfo=self.site.tz)
        if self.fit_day != local.date() and self.n >= 3 * 96:
            cpu0 = time.process_time()
            self.model = fit(self.site, self.history(HISTORY_DAYS), aware, self.model)
            kpi.fit_cpu_s += time.process_time() - cpu0
            kpi.fits += 1
            self.fit_day = local.date()
        mass, fc = {}, None
        if self.model and predictive.steps_today(self.site, self.calendar, local):
            mass = predictive.mass_now(self.site, self.model, self.history(2))
            t0 = local.replace(minute=local.minute - local.minute % 15, second=0, microsecond=0)
            fc = align(self.weather.forecast(local, t0, 96),
                       values.get(self.outdoor) if self.outdoor else None)
        out = predictive.decide(self.site, self.calendar, values, local, aware, learned, level,
                                None, self.model, mass, fc, "weather file + forecast error")
        if out.note and not out.note.startswith("nobody_today"):
            code = out.note.split(":")[0]
            kpi.fallbacks[code] = kpi.fallbacks.get(code, 0) + 1
        return out.decisions
