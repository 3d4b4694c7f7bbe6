"""Closed loop, fast: the EnergyPlus centre unpaced with BEMS's own runtime in the loop (the
one decision path, the one Writer, a real store; no BACnet: an in-process bus), scored with
BOPTEST-style KPIs over the same days for any strategy.

The controllers' relinquish default is their time clock (the baseline); BEMS's writes sit in
priority slot `write_priority` above it, as on the virtual centre's BACnet devices.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bems.calendar import SiteCalendar
from connectors.memory import MemoryBus
from bems.site import Site, Tariff, TouPeriod
from bems.tariff import cost
from connectors.simulator.centre import Binding, occupancy_fraction
from connectors.simulator.faults import Injection, Injector
from connectors.simulator.physics import EnergyPlusModel, Step

COMFORT = (23.0, 27.0)
PANEL = 8  # the priority of a wall panel's command (an injected fault on the equipment)
_MON_SAT = (0, 1, 2, 3, 4, 5)
# EVN's business time-of-use tariff (< 6 kV, Decision 1279/QĐ-BCT, hours of Circular 16/2014):
# what the same energy would cost a site that pays it (the agency's own tariff is flat)
BUSINESS_TOU = Tariff(
    name="EVN business TOU < 6 kV", valid_from=dt.date(2000, 1, 1), kind="tou", vat=0.08,
    prices=(("peak", 5422.0), ("normal", 3152.0), ("offpeak", 1918.0)),
    periods=(TouPeriod("peak", _MON_SAT, dt.time(9, 30), dt.time(11, 30)),
             TouPeriod("peak", _MON_SAT, dt.time(17, 0), dt.time(20, 0)),
             TouPeriod("offpeak", tuple(range(7)), dt.time(22, 0), dt.time(0, 0)),
             TouPeriod("offpeak", tuple(range(7)), dt.time(0, 0), dt.time(4, 0))))


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
    cost_tou_vnd: float = 0.0  # at EVN's business time-of-use tariff, for comparison
    setpoint_violation_h: float = 0.0  # zone-hours cooling below the policy floor
    holiday_ac_h: float = 0.0  # zone-hours of AC on days the office is closed
    zones: int = 1
    decisions: int = 0  # the strategy's decisions over the scored days
    cpu_s: float = 0.0  # the controller's CPU time for them (a nightly model fit apart)
    fit_cpu_s: float = 0.0
    fits: int = 0
    fallbacks: dict = field(default_factory=dict)  # why the predictive plan was not used
    hvac_peak_kw: float = 0.0  # the largest 15-min mean of the AC meter
    tdis_person_kh: float = 0.0  # operative, weighted by the share of staff in the room
    sim_s: float = 0.0  # simulated seconds scored
    energy_by_step: list = field(default_factory=list, repr=False)
    decision_cpu: list = field(default_factory=list, repr=False)  # CPU s of each decision
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
            # BOPTEST's names (per m² of floor and per zone, as BOPTEST reports them):
            # ener_tot HVAC kWh/m²; tdis_tot operative K·h per zone (tdis_air_tot on air);
            # pele_tot the HVAC peak kW/m²; cost_tot VND/m² of the whole site at the site's
            # tariff, cost_tou_tot at EVN's business time-of-use tariff; time_rat the
            # strategy's CPU time over the simulated time
            "ener_tot": round(self.hvac_kwh / self.area_m2, 4),
            "tdis_tot": round(self.tdis_operative_kh / self.zones, 3),
            "tdis_air_tot": round(self.tdis_kh / self.zones, 3),
            "tdis_person_tot": round(self.tdis_person_kh / self.zones, 3),
            "pele_tot": round(self.hvac_peak_kw / self.area_m2, 5),
            "cost_tot": round(self.cost_vnd / self.area_m2, 1),
            "cost_tou_tot": round(self.cost_tou_vnd / self.area_m2, 1),
            "time_rat": round((self.cpu_s + self.fit_cpu_s) / self.sim_s, 6) if self.sim_s
            else 0.0,
            "decision_cpu_p95_s": round(float(sorted(self.decision_cpu)[
                int(0.95 * (len(self.decision_cpu) - 1))]), 4) if self.decision_cpu else 0.0,
        }


STRATEGIES = ("baseline", "rules", "predictive", "bems")  # "bems": the rules (older name)
HISTORY_DAYS = 14  # the predictive strategy refits its zone models nightly on this much


class PlantBus(MemoryBus):
    """The site's devices in process, on the simulated building: sensors and meters show the
    model's last step, commandable points hold BEMS's slots over the controllers' time clock
    (their relinquish default), exactly as the virtual centre's BACnet devices do."""

    def show(self, values: dict[str, float | None]) -> None:
        for pid, v in values.items():
            if pid in self.objects:
                self.objects[pid].relinquish_default = math.nan if v is None else float(v)

    def present(self, points: list[str]) -> dict[str, float]:
        out = {}
        for pid in points:
            v = self.objects[pid].present_value
            out[pid] = float(v) if isinstance(v, (int, float)) else 0.0
        return out


class _Clock:
    def __init__(self, t: dt.datetime):
        self.t = t

    def __call__(self) -> dt.datetime:
        return self.t


class Stopped(Exception):
    """The run was stopped by a signal (its number), after cleaning up."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


def simulate(site: Site, start: dt.date, days: int, strategy: str = "rules",
             injector: "Injector | None" = None,
             sink: Callable[[list[tuple]], None] | None = None,
             on_write: Callable[[str, float | None, dt.datetime], None] | None = None,
             on_step: Callable[[Step], None] | None = None, warmup_days: int = 0,
             forecast_seed: int = 1, forecast_error: bool = True,
             params: dict | None = None, db: Path | None = None,
             on_decision: Callable[[dt.datetime, object], None] | None = None,
             commissioning_days: int = 0) -> Kpis:
    """Run the days with a strategy in the loop and score them, through the product's own
    path: BEMS's runtime (`bems.runtime.Runtime`, not started: its jobs are called in lock
    step with the model) polls the site's devices into a real store, decides with the one
    decision path (`bems.decision.decide`) and writes through the one Writer, over an
    in-process bus whose devices are the simulated building (`PlantBus`). The predictive
    strategy gets its zone models refitted nightly by the runtime's own job, and an outdoor
    forecast (the weather file's future with a forecast's error, `forecast_error=False`
    only to measure what the error costs) in the store's forecast cache every hour, where a
    site's provider puts it.

    `injector` applies faults (connectors/simulator/faults.py) to the equipment and to what
    BEMS reads; `sink` gets every interval's readings as BEMS would store them: (point, UTC
    time, value) rows; `on_write` each change of BEMS's commands: (point, value or None for
    a release, UTC); `on_step` the simulator's own step (the truth a benchmark scores models
    against); `params` strategy parameters for the run (`bems simulate --param`);
    `warmup_days` run before `start` and are not scored (the building's time clock for the
    baseline, the strategy for the others). `db`: the store (a temporary file by default);
    `on_decision(now, decision)` sees each decision the runtime took (its store as it was).
    `commissioning_days`: commissioning (bems/strategies/commissioning.py) from the first
    day run (the warm-up's), as an admin would start it; the strategy decides after it."""
    import tempfile

    from bems.predictive.weather import cache as cache_forecast
    from bems.runtime import Runtime
    from bems.site import Weather

    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}")
    strategy = "rules" if strategy == "bems" else strategy
    mode = "predictive" if strategy == "predictive" else "rules"
    site = dataclasses.replace(site, strategies=dataclasses.replace(
        site.strategies, mode=mode, **(params or {})))
    binding = Binding(site)
    calendar = SiteCalendar(site)
    model = EnergyPlusModel(binding.sim_zones, site.latitude, site.longitude)
    kpi = Kpis(days=days, area_m2=site.floor_area_m2, zones=len(binding.zones))
    registers = {k: 0.0 for k in binding.meters}  # the meters' energy registers, kWh
    first = dt.datetime.combine(start, dt.time(0))
    last = first + dt.timedelta(days=days)
    begin_sim = first - dt.timedelta(days=warmup_days)
    floor = site.control.policy_min_cooling_setpoint
    cmd_points = binding.command_points()
    sensor_points = [p.id for p in site.points if p.id not in set(cmd_points)]
    clock = _Clock(begin_sim.replace(tzinfo=site.tz))
    bus = PlantBus(site, clock=clock)
    folder = None
    if db is None:
        folder = tempfile.TemporaryDirectory(prefix="bems-loop-")
        db = Path(folder.name) / "loop.sqlite"
    rt = None if strategy == "baseline" else Runtime(
        site, db, bus=bus, clock=clock, poll_interval_s=900, strategy_interval_s=900)
    if commissioning_days:
        from bems.state import COMMISSIONING
        from bems.strategies.commissioning import Commissioning, valid_days

        if rt is None:
            raise ValueError("commissioning needs a strategy in the loop, not the baseline")
        if not valid_days(commissioning_days):
            raise ValueError("commissioning_days: 7..28")
        rt.store.put(COMMISSIONING, Commissioning(begin_sim.date(), commissioning_days,
                                                  "simulate").to_json())
    weather = None
    if strategy == "predictive":
        from connectors.simulator.forecast import WeatherFileForecast

        weather = WeatherFileForecast(site.latitude, site.longitude, forecast_seed,
                                      forecast_error)
    source = Weather("simulated://weather-file")
    state: dict = {"effective": {}, "fit_day": None, "held": {}}

    def controller(local: dt.datetime):
        bus.show(binding.time_clock_values(local))  # the controllers' own time clock
        if rt is not None and local >= begin_sim:
            clock.t = local.replace(tzinfo=site.tz)
            if weather is not None:
                if local.minute == 0:  # the provider's forecast, refreshed every hour
                    t0 = local.replace(second=0, microsecond=0)
                    fc = weather.forecast(local, t0, 36 * 4)
                    epoch = int(clock.t.timestamp())
                    cache_forecast(rt.store, source,
                                   [(epoch + 900 * k, float(v)) for k, v in enumerate(fc)],
                                   clock.t)
                if state["fit_day"] != local.date() and (local - begin_sim).days >= 3 and \
                        local.hour == 0:
                    cpu0 = time.process_time()
                    rt.refit_zone_models()  # the runtime's nightly job
                    if first <= local < last:
                        kpi.fit_cpu_s += time.process_time() - cpu0
                        kpi.fits += 1
                    state["fit_day"] = local.date()
            cpu0 = time.process_time()
            rt.run_strategies()  # decide, write through the Writer, release the rest
            if on_decision is not None and rt.last_decision is not None:
                on_decision(clock.t, rt.last_decision)
            if first <= local < last:
                kpi.decisions += 1
                kpi.cpu_s += time.process_time() - cpu0
                kpi.decision_cpu.append(time.process_time() - cpu0)
                if mode == "predictive" and rt._note and rt._note != "nobody_today":
                    code = rt._note.split(":")[0]
                    kpi.fallbacks[code] = kpi.fallbacks.get(code, 0) + 1
            if on_write is not None:
                held = {pid: v for pid, (v, _p) in rt.writer.held.items()}
                for pid in set(held) | set(state["held"]):
                    if held.get(pid) != state["held"].get(pid):
                        on_write(pid, held.get(pid), clock.t.astimezone(dt.timezone.utc))
                state["held"] = held
        if injector is not None:  # a wall panel's command: priority 8, above BEMS's
            for pid in cmd_points:
                bus.objects[pid].slots.pop(PANEL, None)
            wanted = bus.present(cmd_points)  # what BEMS and the time clock command
            effective = injector.points(local, wanted)
            for pid in cmd_points:
                if effective[pid] != wanted[pid]:
                    bus.objects[pid].slots[PANEL] = effective[pid]
        else:
            effective = bus.present(cmd_points)
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
        # what BEMS reads at the end of the step (a value the injector dropped did not come)
        bus.show({pid: now_values.get(pid) for pid in sensor_points})
        if rt is not None:
            clock.t = end.replace(tzinfo=site.tz)
            rt.poll()
            if end.minute == 0:
                rt.store_maintenance()
        main_kw = step.power_kw.get("main", 0.0)
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
        kpi.sim_s += step.seconds
        if main_kw > kpi.peak_kw:
            kpi.peak_kw, kpi.peak_at = main_kw, begin.strftime("%Y-%m-%d %H:%M")
        kpi.hvac_peak_kw = max(kpi.hvac_peak_kw, step.power_kw.get("ac", 0.0))
        for z in binding.zones:
            closed = not (z.schedule and calendar.periods(z.schedule, begin.date()))
            ac_on = state["effective"].get(z.ac_status, 0.0) > 0.5 if z.ac_status else False
            mode_v = state["effective"].get(z.ac_mode, 1.0) if z.ac_mode else 1.0
            cooling = ac_on and mode_v != 2
            sp = state["effective"].get(z.cooling_setpoint) if z.cooling_setpoint else None
            if cooling and sp is not None and sp < floor - 1e-6:
                kpi.setpoint_violation_h += h
            if cooling and closed:
                kpi.holiday_ac_h += h
            if z.schedule and calendar.occupied(z.schedule, begin):
                for temp, attr in ((step.zone_c[binding.sim[z.id]], "tdis_kh"),
                                   (step.operative_c[binding.sim[z.id]], "tdis_operative_kh")):
                    dev = max(0.0, temp - COMFORT[1]) + max(0.0, COMFORT[0] - temp)
                    setattr(kpi, attr, getattr(kpi, attr) + dev * h)
                    if dev > 0:
                        kpi.discomfort.append((begin, z.id, dev * h, attr))
            # the people in the room, whenever they are there (half the staff over lunch)
            share = occupancy_fraction(calendar, z, begin)
            if share > 0:
                top = step.operative_c[binding.sim[z.id]]
                dev = max(0.0, top - COMFORT[1]) + max(0.0, COMFORT[0] - top)
                kpi.tdis_person_kh += share / 0.9 * dev * h

    run_days = warmup_days + days + 1  # whole days; one more covers a start after midnight
    run_start = begin_sim.date()
    while run_start.weekday() >= 5:  # warm up on a working day (VirtualCentre.serve)
        run_start -= dt.timedelta(days=1)
    # SIGTERM or Ctrl-C ends the run at the next step, and what it made is removed (EnergyPlus's
    # callbacks swallow an exception raised in them, so the signal only asks the model to stop)
    stopped: list[int] = []

    def on_signal(signum, _frame) -> None:
        stopped.append(signum)
        model.stop()

    handled = (signal.SIGTERM, signal.SIGINT)
    before = {sig: signal.signal(sig, on_signal) for sig in handled} \
        if threading.current_thread() is threading.main_thread() else {}
    try:
        model.run(run_start, run_days + (begin_sim.date() - run_start).days, controller,
                  observer)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
        if rt is not None:
            rt.stop(others_s=5)  # releases what BEMS holds, closes the store
        if folder is not None:
            folder.cleanup()
    if stopped:
        raise Stopped(stopped[0])
    kpi.cost_vnd = cost(site, kpi.energy_by_step).total_vnd
    kpi.cost_tou_vnd = cost(dataclasses.replace(site, tariffs=(BUSINESS_TOU,)),
                            kpi.energy_by_step).total_vnd
    return kpi


def run_with_faults(site: Site, first: dt.date, days: int, injections: list[Injection],
                    store, strategy: str = "bems"):
    """The closed loop over [first, first + days) with these faults, BEMS's strategies in the
    loop, and what BEMS would store going into `store`: every interval's readings and, in
    its ledger, every change of its own commands (the short-cycling rule reads it). Rolls
    the store up at the end; returns the KPIs."""
    def wrote(point: str, value: float | None, when: dt.datetime) -> None:
        store.record_write(point=point, action="write" if value is not None else "release",
                           value=value, priority=site.control.write_priority, source="strategy",
                           reason="", outcome="done", ts=when)

    kpis = simulate(site, first, days, strategy, Injector(site, injections),
                    sink=store.insert_readings, on_write=wrote)
    store.refresh_rollups()
    return kpis
