"""The virtual administrative centre: EnergyPlus physics behind the site's BACnet devices.

`VirtualCentre.history()` runs the model un-paced under the building's own time clock and hands
the readings to the store as if they had been polled; `VirtualCentre.serve()` serves the devices
and steps the model paced to the wall clock, reading the devices' present values as actuators
each step and publishing sensors and meters back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bems.calendar import SiteCalendar
from bems.site import Site, Zone
from connectors.simulator.timeclock import time_clock_state
from connectors.simulator.devices import SimulatorError, VirtualDevices
from connectors.simulator.physics import Commands, EnergyPlusModel, Step, ZoneCommand

log = logging.getLogger(__name__)
UTC = dt.timezone.utc


def occupancy_fraction(calendar: SiteCalendar, zone: Zone, local: dt.datetime) -> float:
    """How full a zone is: staff arrive a little early, many stay in the office over lunch."""
    periods = calendar.periods(zone.schedule, local.date()) if zone.schedule else []
    if not periods:
        return 0.0
    t = local.time()
    if any(p.start <= t < p.end for p in periods):
        return 0.9
    first, last = periods[0].start, periods[-1].end
    early = (dt.datetime.combine(local.date(), first) - dt.timedelta(minutes=30)).time()
    late = (dt.datetime.combine(local.date(), last) + dt.timedelta(minutes=30)).time()
    if first <= t < last:
        return 0.5  # lunch break
    if early <= t < first or last <= t < late:
        return 0.1
    return 0.0


# air-handler role → (key in the model's Step.extra, scale)
AHU_SENSORS = (("supply_air_temperature", "supply_c", 1.0),
               ("supply_air_setpoint", "supply_sp_c", 1.0),
               ("mixed_air_temperature", "mixed_c", 1.0),
               ("return_air_temperature", "return_c", 1.0),
               ("outdoor_air_fraction", "oa_fraction", 100.0),
               ("fan_status", "fan_on", 1.0), ("fan_speed", "fan_speed", 100.0))


MODEL_ZONES = tuple(f"Core_{lvl}" for lvl in ("bottom", "mid", "top")) + tuple(
    f"Perimeter_{lvl}_ZN_{k}" for lvl in ("bot", "mid", "top") for k in range(1, 5))


def zone_map(site: Site) -> dict[str, str]:
    """Which zone of the EnergyPlus model each of the site's zones is: the site file's
    `[simulator] zones = { "f1.core" = "Core_bottom", ... }` table (the simulator's own: BEMS
    ignores it); without one, the demo's ids by their floor and façade."""
    import tomllib

    table = None
    if site.source is not None and Path(site.source).is_file():
        try:
            doc = tomllib.loads(Path(site.source).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise SimulatorError(f"{site.source}: {err}") from None
        table = doc.get("simulator", {}).get("zones") if isinstance(
            doc.get("simulator"), dict) else None
    if table is None:
        levels = {1: ("bottom", "bot"), 2: ("mid", "mid"), 3: ("top", "top")}
        table = {}
        for z in site.zones:
            part = z.id.split(".")
            if len(part) == 2 and part[0][:1] == "f" and part[0][1:].isdigit() \
                    and int(part[0][1:]) in levels:
                core, per = levels[int(part[0][1:])]
                if part[1] == "core":
                    table[z.id] = f"Core_{core}"
                elif part[1] in ("p1", "p2", "p3", "p4"):
                    table[z.id] = f"Perimeter_{per}_ZN_{part[1][1]}"
    if not isinstance(table, dict):
        raise SimulatorError("[simulator] zones must be a table: zone id = model zone")
    bad = {k: v for k, v in table.items() if v not in MODEL_ZONES}
    if bad:
        raise SimulatorError(f"[simulator] zones: not zones of the model: {bad} (one of "
                             f"{', '.join(MODEL_ZONES)})")
    known = {z.id for z in site.zones}
    return {k: v for k, v in table.items() if k in known}


@dataclass
class Binding:
    """How the site's points map onto the model."""

    site: Site
    zones: list[Zone] = field(init=False)
    meters: dict[str, tuple[str | None, str | None]] = field(init=False)  # kind → (kW, kWh)
    outdoor: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.sim = zone_map(self.site)  # zone id → the model's zone
        self.zones = [z for z in self.site.zones if z.id in self.sim]
        if not self.zones:
            raise SimulatorError("no zone of the site file is in its [simulator] zones table: "
                                 "nothing to simulate")
        self.meters = {}
        for m in self.site.meters:
            if m.measures in ("main", "ac", "lighting", "plugs") and m.measures not in self.meters:
                self.meters[m.measures] = (m.power, m.energy)
        self.outdoor = [p.id for p in self.site.points if p.kind == "outdoor_temperature"]
        # outdoor-air dampers: the floor is that of the zones on the same controller
        self.oa: dict[str, int] = {}
        for p in self.site.points:
            if p.kind == "outdoor_air":
                floors = {z.floor for z in self.zones
                          if any(self.site.point(q).device == p.device
                                 for q in z.points().values())}
                if len(floors) == 1:
                    self.oa[p.id] = floors.pop()

    @property
    def sim_zones(self) -> list[str]:
        return [self.sim[z.id] for z in self.zones]

    def command_points(self) -> list[str]:
        out = []
        for z in self.zones:
            out += [p for p in (z.cooling_setpoint, z.ac_status, z.ac_mode, z.lighting,
                                z.lighting_level) if p]
        return out + list(self.oa)

    def commands_from(self, values: dict[str, float], calendar: SiteCalendar,
                      local: dt.datetime) -> Commands:
        """Zone commands from point values (present values, or a time clock's state)."""
        zones, people = {}, {}
        for z in self.zones:
            def get(pid: str | None, default: float) -> float:
                v = values.get(pid) if pid else None
                return default if v is None else float(v)
            zones[self.sim[z.id]] = ZoneCommand(
                setpoint=get(z.cooling_setpoint, 24.0), ac_on=get(z.ac_status, 0.0) > 0.5,
                mode=int(get(z.ac_mode, 1.0)), light_on=get(z.lighting, 0.0) > 0.5,
                dim=get(z.lighting_level, 100.0))
            people[self.sim[z.id]] = occupancy_fraction(calendar, z, local)
        workday = calendar.is_workday(local.date())
        busy = max(people.values(), default=0.0)
        plugs = (0.9 if busy >= 0.9 else 0.7 if busy >= 0.5 else 0.4) if workday else 0.3
        oa = {floor: (values.get(pid) or 0.0) > 0.5 for pid, floor in self.oa.items()
              if values.get(pid) is not None}
        return Commands(zones=zones, people=people, plugs=plugs, outdoor_air=oa)

    def time_clock_values(self, local: dt.datetime) -> dict[str, float]:
        """The point values the local controllers' time clocks command."""
        tc = time_clock_state(local)
        out: dict[str, float] = {}
        for z in self.zones:
            for pid, key in ((z.cooling_setpoint, "setpoint"), (z.ac_status, "ac"),
                             (z.ac_mode, "mode"), (z.lighting, "light"),
                             (z.lighting_level, "dim")):
                if pid:
                    out[pid] = tc[key]
        for pid in self.oa:  # the time clock opens the dampers with the AC
            out[pid] = tc["ac"]
        return out

    def sensor_values(self, step: Step, energy_kwh: dict[str, float]) -> dict[str, float]:
        out: dict[str, float] = {pid: round(step.outdoor_c, 2) for pid in self.outdoor}
        for z in self.zones:
            if z.temperature:
                out[z.temperature] = round(step.zone_c[self.sim[z.id]], 2)
            if z.occupancy:
                out[z.occupancy] = 1.0 if step.occupants[self.sim[z.id]] > 0.5 else 0.0
        for a in self.site.air_handlers:  # the units' own sensors, from the model's nodes
            if a.floor is None:
                continue
            for role, key, scale in AHU_SENSORS:
                pid = getattr(a, role)
                v = step.extra.get(f"ahu{a.floor}.{key}")
                if pid and v is not None:
                    out[pid] = round(v * scale, 2)
        for kind, (kw, kwh) in self.meters.items():
            if kw:
                out[kw] = round(step.power_kw[kind], 3)
            if kwh:
                out[kwh] = round(energy_kwh[kind], 3)
        return out


class VirtualCentre:
    def __init__(self, site: Site, workdir: Path | None = None):
        self.site = site
        self.binding = Binding(site)
        self.calendar = SiteCalendar(site)
        self.model = EnergyPlusModel(self.binding.sim_zones, site.latitude, site.longitude,
                                     workdir=workdir)
        self.energy_kwh = {k: 0.0 for k in self.binding.meters}  # accumulating meter registers
        self.devices: VirtualDevices | None = None
        self.sim_now: dt.datetime | None = None  # local time of the last finished step
        self.steps = 0
        self._stop = threading.Event()

    def local(self, t: dt.datetime) -> dt.datetime:
        return t.astimezone(self.site.tz).replace(tzinfo=None)

    # --- history --------------------------------------------------------------------------

    def history(self, end_local: dt.datetime, days: int,
                sink: Callable[[list[tuple]], None]) -> int:
        """Run [end - days, end) un-paced under the time clock; every 15-min step's readings of
        every simulated point go to `sink` as (point, utc time, value) rows. Returns rows."""
        first = end_local - dt.timedelta(days=days)
        start = first.date()
        while start.weekday() >= 5:  # warm up on a working day (see `serve`)
            start -= dt.timedelta(days=1)
        run_days = (end_local.date() - start).days + 1
        rows = 0

        def controller(local: dt.datetime) -> Commands:
            return self.binding.commands_from(self.binding.time_clock_values(local),
                                              self.calendar, local)

        def observer(step: Step) -> None:
            nonlocal rows
            local_end = self.local(step.time)
            if local_end > end_local:
                self.model.stop()
                return
            for k in self.energy_kwh:
                self.energy_kwh[k] += step.energy_kwh[k]
            if local_end <= first:  # the model starts at midnight; history at `first`
                return
            start_local = local_end - dt.timedelta(seconds=step.seconds)
            values = self.binding.sensor_values(step, self.energy_kwh)
            values.update(self.binding.time_clock_values(start_local))
            batch = [(pid, step.time, v) for pid, v in values.items()]
            sink(batch)
            rows += len(batch)
            self.sim_now = local_end

        status = self.model.run(start, run_days, controller, observer)
        if status not in (0, 1) and self.sim_now is None:
            raise SimulatorError(f"EnergyPlus failed (status {status}); see "
                                 f"{self.model.workdir / 'out' / 'eplusout.err'}")
        return rows

    # --- paced service --------------------------------------------------------------------

    async def serve(self, start_local: dt.datetime, speed: float = 1.0, days: int = 366,
                    ready: Callable[[], None] | None = None,
                    on_step: Callable[[Step, dict[str, float]], None] | None = None,
                    gate: asyncio.Event | None = None,
                    live: Callable[[], None] | None = None,
                    history_from: dt.datetime | None = None,
                    sink: Callable[[list[tuple]], None] | None = None,
                    injector=None, warm_days: int = 2) -> None:
        """Serve the devices and step the model from `start_local`, paced to wall time x speed
        (speed <= 0: as fast as possible). Returns when stopped or the days run out.

        One simulation carries the building from before the start into the live period, so
        the first live readings continue from the last ones before it: the model starts at
        midnight of `history_from` (else `warm_days` before the start) and runs un-paced
        under the controllers' time clock up to the start. Those steps' readings, from
        `history_from` on, go to `sink` as (point, UTC time, value) rows, as if they had been
        polled, with `injector`'s faults (connectors/simulator/faults.py) acting on them.

        `ready` is called once the devices answer; the physics starts when `gate` is set
        (at once without a gate), so a client can prepare writes before the first step.
        `live` is called (from the physics thread) once the model has caught up to the start
        and the devices show its values."""
        loop = asyncio.get_running_loop()
        first = history_from if history_from is not None else \
            start_local - dt.timedelta(days=warm_days)
        first = min(first, start_local)
        # EnergyPlus warms up by repeating the first day until the building settles: on a
        # weekend (the time clock off all day) that settles a building that was never cooled,
        # far hotter than a real one after two days closed. The run starts on the working
        # day before instead.
        run_start = first.date()
        while run_start.weekday() >= 5:
            run_start -= dt.timedelta(days=1)
        self.sim_now = start_local
        self.devices = VirtualDevices(self.site, clock=self._device_clock)
        await self.devices.start()
        self._stop.clear()
        # the devices show the time clock's state before the first step
        self.devices.set_relinquish_defaults(self.binding.time_clock_values(start_local))
        wall0: list[float] = []  # the wall clock when the model reached the start
        cmd_points = self.binding.command_points()
        live_sent: list[bool] = []
        catch_up_until = start_local - dt.timedelta(minutes=15)
        before_start: dict[str, float] = {}  # the time clock's commands of the current step

        def on_loop(fn: Callable, *args):  # run fn in the event loop, from the physics thread
            fut = asyncio.run_coroutine_threadsafe(_call(fn, *args), loop)
            return fut.result(timeout=30)

        def controller(local: dt.datetime) -> Commands:
            if local < catch_up_until:  # catching up to the start: the time clock rules
                values = self.binding.time_clock_values(local)
                if injector is not None:
                    values = injector.points(local, values)
                before_start.clear()
                before_start.update(values)
                cmd = self.binding.commands_from(values, self.calendar, local)
                return injector.physics(local, cmd) if injector is not None else cmd
            on_loop(self.devices.set_relinquish_defaults, self.binding.time_clock_values(local))
            values = on_loop(self.devices.present_values, cmd_points)
            return self.binding.commands_from(values, self.calendar, local)

        def observer(step: Step) -> None:
            local_end = self.local(step.time)
            for k in self.energy_kwh:
                self.energy_kwh[k] += step.energy_kwh[k]
            values = self.binding.sensor_values(step, self.energy_kwh)
            self.sim_now = local_end
            begin = local_end - dt.timedelta(seconds=step.seconds)
            if begin < catch_up_until:
                if sink is not None and local_end > first:  # history, as BEMS polled it
                    rows = {**before_start, **values}
                    if injector is not None:
                        rows = injector.sensed(begin, rows)
                    sink([(pid, step.time, v) for pid, v in rows.items()])
                if local_end < catch_up_until:
                    return
            on_loop(self.devices.publish, values, local_end)
            self.steps += 1
            if live is not None and local_end >= start_local and not live_sent:
                live_sent.append(True)
                live()
            if on_step is not None:
                on_step(step, values)
            if not wall0 and local_end >= start_local:
                wall0.append(time.monotonic())
            if speed > 0 and local_end > start_local:
                target = wall0[0] + (local_end - start_local).total_seconds() / speed
                while not self._stop.is_set():
                    left = target - time.monotonic()
                    if left <= 0:
                        break
                    self._stop.wait(min(left, 0.5))
            if self._stop.is_set():
                self.model.stop()

        try:
            if ready is not None:
                ready()
            if gate is not None:
                await gate.wait()
            if not self._stop.is_set():
                run_days = (start_local.date() - run_start).days + days
                await loop.run_in_executor(None, self.model.run, run_start, run_days,
                                           controller, observer)
        finally:
            self._stop.set()
            self.model.stop()
            self.devices.close()

    def stop(self) -> None:
        self._stop.set()
        self.model.stop()

    def _device_clock(self) -> dt.datetime:
        return self.sim_now or dt.datetime.now()

    # --- faults ---------------------------------------------------------------------------

    def apply_fault(self, spec: str) -> str:
        """'DEVICE:offline', 'DEVICE:online', 'DEVICE:slow=SECONDS', 'DEVICE:clock=SECONDS'
        (its clock that far off), 'POINT:stuck=VALUE', 'POINT:unstuck', 'METER:reset'. Returns
        a description of what was done."""
        if self.devices is None:
            raise SimulatorError("faults apply to a running simulator")
        target, _, action = spec.partition(":")
        action, _, arg = action.partition("=")
        try:
            if action == "offline":
                self.devices.set_offline(target, True)
            elif action == "online":
                self.devices.set_offline(target, False)
                self.devices.set_delay(target, 0.0)
            elif action == "slow":
                self.devices.set_delay(target, float(arg))
            elif action == "stuck":
                self.devices.stick(target, float(arg))
            elif action == "unstuck":
                self.devices.stick(target, None)
            elif action == "clock":
                self.devices.set_clock_offset(target, float(arg))
            elif action == "reset":
                if target not in self.energy_kwh:
                    raise SimulatorError(f"no simulated meter {target!r} "
                                         f"(one of {', '.join(self.energy_kwh)})")
                self.energy_kwh[target] = 0.0
            else:
                raise SimulatorError(f"unknown fault {spec!r}")
        except KeyError as err:
            raise SimulatorError(f"fault {spec!r}: unknown device or point {err}") from None
        except ValueError as err:
            raise SimulatorError(f"fault {spec!r}: {err}") from None
        return f"{target}: {action}{'=' + arg if arg else ''}"


async def _call(fn: Callable, *args):
    return fn(*args)
