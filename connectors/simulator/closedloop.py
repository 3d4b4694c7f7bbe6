"""Closed loop, fast: the EnergyPlus centre unpaced with the *same* strategy code in the loop
(no BACnet), scored with BOPTEST-style KPIs over the same days for any strategy.

The controllers' relinquish default is their time clock (the baseline); BEMS's intents sit in
priority slot `write_priority` above it, clamped to the points' limits as the writer does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

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
        }


def simulate(site: Site, start: dt.date, days: int, strategy: str = "bems",
             injector: "Injector | None" = None,
             sink: Callable[[list[tuple]], None] | None = None,
             on_write: Callable[[str, float | None, dt.datetime], None] | None = None) -> Kpis:
    """Run the days with a strategy in the loop and score them. `injector` applies faults
    (connectors/simulator/faults.py) to the equipment and to what BEMS reads; `sink` gets
    every interval's readings, as BEMS would store them: (point, UTC time, value) rows;
    `on_write` each change of BEMS's commands: (point, value or None for a release, UTC)."""
    if strategy not in ("baseline", "bems"):
        raise ValueError("strategy must be 'baseline' or 'bems'")
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
        if strategy == "bems":
            decisions = plan(site, calendar, values, local, learned, state["level"])
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
        if begin < first or begin >= last:
            return
        h = step.seconds / 3600
        for k in registers:
            registers[k] += step.energy_kwh.get(k, 0.0)
        sensors = binding.sensor_values(step, registers)
        now_values = {**state["effective"], **sensors}
        if injector is not None:
            now_values = injector.sensed(begin, now_values)
        if sink is not None:
            sink([(pid, step.time, v) for pid, v in now_values.items()])
        if strategy == "bems" and state["prev"] is not None:
            learn(site, learned, state["prev"], now_values, h, begin.date())
        state["prev"] = dict(now_values)
        values.clear()
        values.update(now_values)
        main_kw = step.power_kw.get("main", 0.0)
        state["level"] = demand_level(site.strategies, main_kw, None, state["level"])
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

    run_days = days + 1  # the model runs whole days; one more covers a start after midnight
    model.run(start, run_days, controller, observer)
    kpi.cost_vnd = cost(site, kpi.energy_by_step).total_vnd
    return kpi
