"""Faults injected into the virtual centre, to prove fault detection on physics, not on
hand-made series.

Each fault type acts where such a fault lives: on the equipment (the model's commands: an AC
held on by a wall panel, a coil short of capacity, a damper stuck open, a window open, plug
loads creeping at night, an empty room with its lights on, a unit short-cycling) or on what
BEMS reads (a biased or stuck room sensor, an air handler's mixed-air sensor reading low, a
meter register reset, a sub-meter dropping out).
Sensor faults are on BEMS's room sensor; the unit controls on its own thermostat, as a split or
VRF indoor unit does. Each type has two severities; `plan` schedules them on seeded random
days and targets, with fault-free zone-days left as controls.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from dataclasses import dataclass

from bems.calendar import SiteCalendar, main_schedule
from bems.site import Site
from connectors.simulator.centre import zone_map
from connectors.simulator.physics import Commands


@dataclass(frozen=True)
class FaultType:
    target: str  # zone | ahu | meter
    workdays_only: bool  # the fault shows only when the building works (its AC runs)
    levels: tuple[float, float]  # severity 1, 2
    unit: str
    what: str
    rule: str = ""  # the fault rule (bems/faults) that names it: the right diagnosis


FAULT_TYPES: dict[str, FaultType] = {
    "sensor_bias": FaultType("zone", False, (1.5, 3.0), "K", "room sensor reads high",
        rule="sensor_bias"),
    "sensor_stuck": FaultType("zone", False, (10.0, 0.0), "h", "room sensor stuck from this hour",
        rule="sensor_stuck"),
    "ac_held_on": FaultType("zone", False, (1.0, 2.0), "", "AC held on after hours by a wall "
                                                            "panel at priority 8 (1: evening, "
                                                            "2: all night)",
        rule="ac_after_hours"),
    "lights_left_on": FaultType("zone", False, (1.0, 2.0), "", "lights left on (1: evening, "
                                                                "2: all night)",
        rule="lights_after_hours"),
    "empty_room_lights": FaultType("zone", True, (1.0, 2.0), "", "no one in the room, lights on "
                                                                  "(1: morning, 2: all day)",
        rule="lights_unoccupied"),
    "setpoint_held_low": FaultType("zone", True, (23.0, 20.0), "°C", "setpoint held low by a "
                                                                     "wall panel at priority 8",
        rule="setpoint_below_floor"),
    "short_cycling": FaultType("zone", True, (1.0, 2.0), "", "unit cycling (1: off one step in "
                                                              "three, 2: every other step)",
        rule="short_cycling"),
    "open_window": FaultType("zone", True, (1.6, 3.0), "m³/s", "window or door open while "
                                                                "cooling",
        rule="cannot_reach_setpoint"),
    "capacity_loss": FaultType("ahu", True, (16.5, 19.5), "°C", "coil short of capacity: "
                                                                 "supply air no colder than",
        rule="ahu_supply_air_high"),
    "oa_damper_stuck": FaultType("ahu", True, (0.6, 1.0), "", "outdoor-air damper stuck open "
                                                               "(outdoor-air share)",
        rule="ahu_outdoor_air_high"),
    "mixed_air_sensor": FaultType("ahu", True, (-3.0, -6.0), "K", "mixed-air sensor reads low "
                                                                   "by",
        rule="ahu_mixed_air_implausible"),
    "return_air_sensor": FaultType("ahu", True, (1.5, 3.0), "K", "return-air sensor reads high "
                                                                  "by",
        rule="ahu_return_air_drift"),
    "plug_creep": FaultType("meter", False, (0.2, 0.4), "", "night plug load up by",
        rule="base_load_high"),
    "meter_reset": FaultType("meter", False, (1.0, 2.0), "", "main meter register reset "
                                                              "(1: to zero, 2: back 100 kWh)",
        rule="meter_reset"),
    "submeter_ct_ratio": FaultType("meter", True, (2.0, 3.0), "x", "lighting sub-meter reads "
                                                                    "high (wrong CT ratio)",
        rule="meter_tree_mismatch"),
    "submeter_dropout": FaultType("meter", True, (1.0, 2.0), "", "lighting sub-meter (1: silent "
                                                                  "2 h, 2: reads zero 6 h)",
        rule="meter_dropout"),
}


@dataclass(frozen=True)
class Injection:
    kind: str
    target: str  # zone id, air-handler id, or meter id
    day: dt.date  # local; the fault is active during this day
    severity: int  # 1 or 2

    @property
    def level(self) -> float:
        return FAULT_TYPES[self.kind].levels[self.severity - 1]

    @property
    def onset_h(self) -> float:
        """The local hour of the day the fault starts acting."""
        return {"sensor_stuck": self.level, "ac_held_on": 18.0 if self.severity == 1 else 0.0,
                "lights_left_on": 18.0 if self.severity == 1 else 0.0,
                "empty_room_lights": 7.5, "short_cycling": 8.0, "open_window": 8.0,
                "meter_reset": 10.0, "setpoint_held_low": 8.0, "submeter_ct_ratio": 7.0,
                "submeter_dropout": 9.0 if self.severity == 1 else 8.0}.get(self.kind, 0.0)

    @property
    def target_kind(self) -> str:
        return FAULT_TYPES[self.kind].target


def plan(site: Site, first: dt.date, days: int, seed: int = 7,
         zone_faults_per_day: int = 4) -> list[Injection]:
    """Seeded random faults: each day some zones (on floors whose air handler is healthy that
    day), every other working day an air-handler fault, every third day a meter fault, and
    every fourth day none at all. Each kind and severity comes round in turn, so all are
    covered evenly."""
    rng = random.Random(seed)
    cal = SiteCalendar(site)
    main = main_schedule(site)
    kinds = {t: [k for k, f in FAULT_TYPES.items() if f.target == t] for t in ("zone", "ahu",
                                                                               "meter")}
    turn = {t: [(k, s) for k in ks for s in (1, 2)] for t, ks in kinds.items()}
    for v in turn.values():
        rng.shuffle(v)
    pos = {t: 0 for t in turn}

    def next_of(t: str, workday: bool) -> tuple[str, int]:
        for _ in range(len(turn[t])):
            k, s = turn[t][pos[t] % len(turn[t])]
            pos[t] += 1
            if workday or not FAULT_TYPES[k].workdays_only:
                return k, s
        return "", 0

    out: list[Injection] = []
    sim = zone_map(site)
    zones = [z for z in site.zones if z.id in sim]
    ahus = [a for a in site.air_handlers if a.floor is not None]
    meters = {m.measures: m.id for m in site.meters}
    for d in range(days):
        day = first + dt.timedelta(days=d)
        if d % 4 == 3:  # a day without any fault: a control for every kind of target
            continue
        work = bool(cal.periods(main, day))
        sick_floor = None
        if ahus and work and d % 2 == 0:
            k, s = next_of("ahu", True)
            a = rng.choice(ahus)
            sick_floor = a.floor
            out.append(Injection(k, a.id, day, s))
        if d % 3 == 1:
            k, s = next_of("meter", work)
            if k:
                target = meters.get("lighting" if k.startswith("submeter") else "main")
                if target:
                    out.append(Injection(k, target, day, s))
        healthy = [z for z in zones if z.floor != sick_floor]
        for z in rng.sample(healthy, min(zone_faults_per_day, len(healthy))):
            k, s = next_of("zone", bool(z.schedule and cal.periods(z.schedule, day)))
            if k:
                out.append(Injection(k, z.id, day, s))
    return out


def demo_faults(site: Site, end_local: dt.datetime, days: int) -> list[Injection]:
    """A few faults in the demo's history, so its faults screen shows what BEMS is for from
    the first minute: on the last working days before the start, an AC a wall panel keeps
    on all night, lights left on all night, a wall panel holding a room at 20 °C (below the
    25 °C floor) and an air handler short of cooling capacity. None needs weeks of history
    to be found."""
    cal = SiteCalendar(site)
    main = main_schedule(site)
    first = (end_local - dt.timedelta(days=days)).date()
    workdays = [d for d in (end_local.date() - dt.timedelta(days=i) for i in range(1, days + 1))
                if d >= first and cal.periods(main, d)]
    sim = zone_map(site)
    zones = {z.id: z for z in site.zones if z.id in sim}
    ahus = [a for a in site.air_handlers if a.floor is not None]
    wanted = [("ac_held_on", "f1.p2", 2), ("lights_left_on", "f3.p4", 2),
              ("setpoint_held_low", "f2.p3", 2)]
    out: list[Injection] = []
    for i, (kind, zone, severity) in enumerate(wanted):
        if workdays and zone in zones:
            out.append(Injection(kind, zone, workdays[i % len(workdays)], severity))
    if workdays and ahus:  # on another floor than the sensor's, so neither hides the other
        ahu = next((a for a in ahus if a.floor == 3), ahus[0])
        out.append(Injection("capacity_loss", ahu.id, workdays[0], 2))
    return out


class Injector:
    """Applies the injections of the current day to the commands and the readings."""

    def __init__(self, site: Site, injections: list[Injection]):
        self.site = site
        self.by_day: dict[dt.date, list[Injection]] = {}
        for i in injections:
            self.by_day.setdefault(i.day, []).append(i)
        self.zones = {z.id: z for z in site.zones}
        self.sim = zone_map(site)
        self.ahus = {a.id: a for a in site.air_handlers}
        self.meters = {m.id: m for m in site.meters}
        self.stuck: dict[str, float] = {}  # point → the value it is stuck at
        self.register_offset: dict[str, float] = {}  # energy point → offset after a reset
        self._reset_done: set = set()

    def active(self, local: dt.datetime) -> list[Injection]:
        return self.by_day.get(local.date(), [])

    # --- on the equipment -----------------------------------------------------------------

    def points(self, local: dt.datetime, values: dict[str, float]) -> dict[str, float]:
        """What the controllers actually do, given what they were told (`values`)."""
        out = dict(values)
        h = local.hour + local.minute / 60
        step = int((local.hour * 60 + local.minute) // 15)
        for inj in self.active(local):
            z = self.zones.get(inj.target)
            if z is None:
                continue
            night = (18.0 <= h < 22.0) if inj.severity == 1 else (h < 6.0 or h >= 18.0)
            if inj.kind == "ac_held_on" and night and z.ac_status:  # the panel wins (prio 8)
                out[z.ac_status] = 1.0
                if z.cooling_setpoint:
                    out[z.cooling_setpoint] = 24.0
                if z.ac_mode:
                    out[z.ac_mode] = 1.0
            elif inj.kind == "lights_left_on" and night and z.lighting:
                out[z.lighting] = 1.0
                if z.lighting_level:
                    out[z.lighting_level] = 100.0
            elif inj.kind == "setpoint_held_low" and z.cooling_setpoint and 8.0 <= h < 17.0:
                out[z.cooling_setpoint] = inj.level  # the panel wins (priority 8)
            elif inj.kind == "short_cycling" and z.ac_status and out.get(z.ac_status, 0) > 0.5:
                off = step % 3 == 2 if inj.severity == 1 else step % 2 == 1
                if off and 8.0 <= h < 17.0:
                    out[z.ac_status] = 0.0
            elif inj.kind == "empty_room_lights" and z.lighting:
                # the room is empty (people away), the lights stay on while the building works
                if out.get(z.lighting, 0.0) < 0.5 and 7.5 <= h < 17.0:
                    out[z.lighting] = 1.0
        return out

    def physics(self, local: dt.datetime, cmd: Commands) -> Commands:
        h = local.hour + local.minute / 60
        for inj in self.active(local):
            if inj.kind == "capacity_loss":
                cmd.supply_air_min_c[self.ahus[inj.target].floor] = inj.level
            elif inj.kind == "oa_damper_stuck":
                cmd.outdoor_air_stuck[self.ahus[inj.target].floor] = inj.level
            elif inj.kind == "open_window" and 8.0 <= h < 17.0:
                cmd.open_window_m3s[self.sim[inj.target]] = inj.level
            elif inj.kind == "empty_room_lights":
                if inj.severity == 2 or h < 12.0:
                    cmd.people[self.sim[inj.target]] = 0.0
            elif inj.kind == "plug_creep" and (h < 6.5 or h >= 18.0):
                cmd = dataclasses.replace(cmd, plugs=cmd.plugs * (1 + inj.level))
        return cmd

    # --- on what BEMS reads -------------------------------------------------------------

    def sensed(self, local: dt.datetime, values: dict[str, float]) -> dict[str, float]:
        """The readings BEMS gets at `local` (the start of the interval they describe); a
        value left out of the result is a reading that did not arrive."""
        out = dict(values)
        h = local.hour + local.minute / 60
        for inj in self.active(local):
            z = self.zones.get(inj.target)
            if inj.kind == "sensor_bias" and z and z.temperature in out:
                out[z.temperature] = round(out[z.temperature] + inj.level, 2)
            elif inj.kind == "sensor_stuck" and z and z.temperature in out:
                if h >= inj.level:
                    self.stuck.setdefault(z.temperature, out[z.temperature])
                    out[z.temperature] = self.stuck[z.temperature]
            elif inj.kind == "meter_reset" and h >= 10.0 and inj not in self._reset_done:
                m = self.meters[inj.target]
                if m.energy in out:
                    true = out[m.energy] + self.register_offset.get(m.energy, 0.0)
                    drop = true if inj.severity == 1 else min(100.0, true)
                    self.register_offset[m.energy] = self.register_offset.get(m.energy, 0) - drop
                    self._reset_done.add(inj)
            elif inj.kind in ("mixed_air_sensor", "return_air_sensor") and \
                    inj.target in self.ahus:
                a = self.ahus[inj.target]
                pid = a.mixed_air_temperature if inj.kind == "mixed_air_sensor" else \
                    a.return_air_temperature
                if pid in out:
                    out[pid] = round(out[pid] + inj.level, 2)
            elif inj.kind == "submeter_ct_ratio" and inj.target in self.meters:
                pid = self.meters[inj.target].power
                if pid in out and 7.0 <= h < 18.0:
                    out[pid] = round(out[pid] * inj.level, 3)
            elif inj.kind == "submeter_dropout":
                m = self.meters[inj.target]
                if inj.severity == 1 and 9.0 <= h < 11.0:
                    out.pop(m.power, None)
                    out.pop(m.energy, None)
                elif inj.severity == 2 and 8.0 <= h < 14.0 and m.power in out:
                    out[m.power] = 0.0
        stuck_now = {self.zones[i.target].temperature for i in self.active(local)
                     if i.kind == "sensor_stuck" and i.target in self.zones and h >= i.level}
        for pid in list(self.stuck):  # a stuck sensor is replaced overnight
            if pid not in stuck_now:
                del self.stuck[pid]
        for pid, off in self.register_offset.items():  # a reset register counts on from there
            if pid in out:
                out[pid] = round(out[pid] + off, 3)
        return out
