"""EnergyPlus physics of the virtual centre: the DOE/ASHRAE 90.1-2019 medium office, adapted.

Adaptations (see README): Hai Phong location and design days, a morphed hot-humid weather year,
per-zone lighting schedules (actuated each step),
cooling only (heating setpoints held at 10 °C), the prototype's EMS programs removed so our
actuators are the only control (their calling managers are removed), US holidays and daylight saving removed, one run period with an
explicit year so weekdays line up. Each zone timestep (15 min) a controller callback returns
the zone commands and an observer callback receives the sensors and meters.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from connectors.simulator.energyplus import EnergyPlusAPI, ashrae_models

from connectors.simulator import idf
from connectors.simulator.weather import morphed_epw

MODEL = "office_medium"
AIR_LOOPS = ("PACU_VAV_bot", "PACU_VAV_mid", "PACU_VAV_top")  # floor 1, 2, 3
METERS = {  # our meter kind → EnergyPlus meter
    "main": "ElectricityPurchased:Facility",
    "ac": "Electricity:HVAC",
    "lighting": "InteriorLights:Electricity",
    "plugs": "InteriorEquipment:Electricity",
}
EXTRA_METERS = {"fans": "Fans:Electricity", "cooling": "Cooling:Electricity"}  # AC breakdown
EQUIP_SCHEDULE = "BLDG_EQUIP_SCH"
OFF_SETPOINT = 40.0  # cooling setpoint that asks for no cooling
HEATING_SETPOINT = 10.0  # cooling-only building: heating never engages
UTC_OFFSET = dt.timedelta(hours=7)


@dataclass
class ZoneCommand:
    setpoint: float = 26.0
    ac_on: bool = False
    mode: int = 1  # 1 cool, 2 fan only, 3 dry
    light_on: bool = False
    dim: float = 100.0  # %


@dataclass
class Commands:
    zones: dict[str, ZoneCommand]  # by EnergyPlus zone name
    people: dict[str, float] = field(default_factory=dict)  # fraction of design occupants, by zone
    plugs: float = 0.3  # fraction of design plug load
    outdoor_air: dict[int, bool] = field(default_factory=dict)  # by floor; absent: with the AC
    # injected faults (connectors/simulator/faults.py); absent: the equipment as designed
    # a packaged unit short of capacity (a refrigerant leak): its coil cannot bring the supply
    # air below this temperature, °C, by floor
    supply_air_min_c: dict[int, float] = field(default_factory=dict)
    open_window_m3s: dict[str, float] = field(default_factory=dict)  # outside air let in
    # an outdoor-air damper stuck open: this fraction of the fan's flow is outdoor air, by floor
    outdoor_air_stuck: dict[int, float] = field(default_factory=dict)


@dataclass
class Step:
    """What the building did in one zone timestep, stamped at the step's end (UTC)."""

    time: dt.datetime
    outdoor_c: float
    zone_c: dict[str, float]
    operative_c: dict[str, float]
    occupants: dict[str, float]
    power_kw: dict[str, float]  # mean kW over the step, by meter kind
    energy_kwh: dict[str, float]  # energy in the step, by meter kind
    seconds: float = 900.0
    extra: dict[str, float] = field(default_factory=dict)


def _design_days() -> list[idf.IdfObject]:
    """Hai Phong design conditions (estimates for a hot-humid coastal site)."""
    def day(name: str, month: int, kind: str, db: float, rng: float, wb: float) -> idf.IdfObject:
        return idf.IdfObject(["SizingPeriod:DesignDay", name, str(month), "21", kind, f"{db}",
                              f"{rng}", "DefaultMultipliers", "", "Wetbulb", f"{wb}", "", "", "",
                              "", "101000", "3.0", "180", "No", "No", "No", "ASHRAEClearSky", "",
                              "", "", "", "1.0"])
    return [day("Hai Phong Htg 99.6% DB", 1, "WinterDesignDay", 9.0, 0.0, 7.0),
            day("Hai Phong Clg 0.4% DB=>MWB", 7, "SummerDesignDay", 35.5, 7.0, 28.3)]


def prepare_model(dest: Path, start: dt.date, days: int, latitude: float, longitude: float,
                  timestep_per_hour: int = 4) -> Path:
    """Write the adapted IDF for a run of `days` days from `start`."""
    objects = idf.parse(Path(ashrae_models[MODEL]).read_text())
    # The prototype's EMS programs rewrite setpoints and lights every step: unhooking their
    # calling managers silences them (removing the EMS objects outright crashes EnergyPlus 25.2).
    objects = idf.drop(objects, r"EnergyManagementSystem:ProgramCallingManager|"
                                r"RunPeriod|RunPeriodControl:.*|SizingPeriod:.*|Site:Location|"
                                r"Output:.*|OutputControl:.*|Timestep|Sizing:Parameters")
    # Per-zone lighting: each Lights object gets a schedule of its own that we actuate (the
    # prototype's EMS actuators hold the Lights' own "Electricity Rate" actuators).
    for o in idf.find(objects, "Lights"):
        o.fields[3] = f"BEMS_LIGHT_{o.fields[2]}"
        objects.append(idf.IdfObject(["Schedule:Constant", o.fields[3], "Fraction", "1.0"]))
    # Per-zone AC off means no air to the zone: each VAV box gets an availability schedule of
    # its own (the prototype keeps them ALWAYS_ON, so an "off" zone still got minimum flow).
    for o in idf.find(objects, "AirTerminal:SingleDuct:VAV:Reheat"):
        zone = o.fields[1].split(" VAV Box Component")[0]
        o.fields[2] = f"BEMS_VAV_{zone}"
        objects.append(idf.IdfObject(["Schedule:Constant", o.fields[2], "Fraction", "1.0"]))
    end = start + dt.timedelta(days=days - 1)
    objects += [
        idf.IdfObject(["Timestep", str(timestep_per_hour)]),
        # 25 % sizing margin, as a designer would give a hot-humid site
        idf.IdfObject(["Sizing:Parameters", "1.25", "1.25", "6"]),
        idf.IdfObject(["Site:Location", "Hai Phong", f"{latitude}", f"{longitude}", "7.0", "5.0"]),
        idf.IdfObject(["RunPeriod", "BEMS", str(start.month), str(start.day), str(start.year),
                       str(end.month), str(end.day), str(end.year), "", "No", "No", "No", "Yes",
                       "Yes"]),
        # No output files: everything we need comes through the API.
        idf.IdfObject(["OutputControl:Files"] + ["No"] * 30),
        *_design_days(),
    ]
    dest.write_text(idf.dump(objects))
    return dest


class EnergyPlusModel:
    """Runs the adapted model, calling back each zone timestep. One run at a time."""

    def __init__(self, zones: list[str], latitude: float = 20.86, longitude: float = 106.68,
                 workdir: Path | None = None, timestep_per_hour: int = 4):
        self.zones = zones
        self.latitude, self.longitude = latitude, longitude
        # a folder of our own is removed after each run (EnergyPlus's inputs and outputs are
        # a few MB a run; nothing reads them afterwards)
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="bems-sim-"))
        self.timestep_per_hour = timestep_per_hour
        self._stop = threading.Event()
        self._state = None
        self._api: EnergyPlusAPI | None = None

    def stop(self) -> None:
        self._stop.set()
        if self._state is not None and self._api is not None:
            self._api.runtime.stop_simulation(self._state)

    def run(self, start: dt.date, days: int, controller: Callable[[dt.datetime], Commands],
            observer: Callable[[Step], None]) -> int:
        """Simulate [start, start + days) in local time. Blocks; returns EnergyPlus's status."""
        self._stop.clear()
        self.workdir.mkdir(parents=True, exist_ok=True)
        epw = morphed_epw(self.workdir / "hai_phong_morphed.epw", self.latitude, self.longitude)
        model = prepare_model(self.workdir / "model.idf", start, days, self.latitude,
                              self.longitude, self.timestep_per_hour)
        api = self._api = EnergyPlusAPI()
        state = self._state = api.state_manager.new_state()
        api.runtime.set_console_output_status(state, False)
        ex = api.exchange
        for zone in self.zones:
            for var in ("Zone Air Temperature", "Zone Operative Temperature",
                        "Zone People Occupant Count"):
                ex.request_variable(state, var, zone)
        ex.request_variable(state, "Site Outdoor Air Drybulb Temperature", "Environment")
        for loop in AIR_LOOPS:  # what an air handler's own sensors show
            for var, node in _ahu_nodes(loop).values():
                ex.request_variable(state, var, node)
        h: dict = {}
        last: dict = {}
        step_s = 3600.0 / self.timestep_per_hour

        def handles() -> bool:
            if h:
                return True
            if not ex.api_data_fully_ready(state):
                return False
            for zone in self.zones:
                h[("t", zone)] = ex.get_variable_handle(state, "Zone Air Temperature", zone)
                h[("op", zone)] = ex.get_variable_handle(state, "Zone Operative Temperature", zone)
                h[("n", zone)] = ex.get_variable_handle(state, "Zone People Occupant Count", zone)
                h[("clg", zone)] = ex.get_actuator_handle(state, "Zone Temperature Control",
                                                          "Cooling Setpoint", zone)
                h[("htg", zone)] = ex.get_actuator_handle(state, "Zone Temperature Control",
                                                          "Heating Setpoint", zone)
                h[("light", zone)] = ex.get_actuator_handle(state, "Schedule:Constant",
                                                            "Schedule Value",
                                                            f"BEMS_LIGHT_{zone}")
                h[("people", zone)] = ex.get_actuator_handle(state, "People", "Number of People",
                                                             zone)
                h[("vav", zone)] = ex.get_actuator_handle(state, "Schedule:Constant",
                                                          "Schedule Value", f"BEMS_VAV_{zone}")
                h[("peoplen", zone)] = ex.get_internal_variable_value(
                    state, ex.get_internal_variable_handle(state, "People Count Design Level", zone))
                h[("window", zone)] = ex.get_actuator_handle(
                    state, "Zone Infiltration", "Air Exchange Flow Rate", f"{zone}_INFILTRATION")
            h["out"] = ex.get_variable_handle(state, "Site Outdoor Air Drybulb Temperature",
                                              "Environment")
            for loop in AIR_LOOPS:
                h[("loop", loop)] = ex.get_actuator_handle(state, "AirLoopHVAC",
                                                           "Availability Status", loop)
                h[("oa", loop)] = ex.get_actuator_handle(state, "Outdoor Air Controller",
                                                         "Air Mass Flow Rate",
                                                         f"{loop}_OA_Controller")
                h[("sat", loop)] = [ex.get_actuator_handle(
                    state, "System Node Setpoint", "Temperature Setpoint", node) for node in
                    (f"{loop}_COOLC-{loop}_HEATCNODE", f"{loop}_HEATC-{loop} FANNODE")]
                for key, (var, node) in _ahu_nodes(loop).items():
                    h[("ahu", loop, key)] = ex.get_variable_handle(state, var, node)
                h[("fanmax", loop)] = ex.get_internal_variable_value(state, ex.get_internal_variable_handle(
                    state, "Fan Maximum Mass Flow Rate", f"{loop} FAN"))
            for sched in ("HVACOperationSchd", "MinOA_MotorizedDamper_Sched", EQUIP_SCHEDULE):
                h[("sched", sched)] = ex.get_actuator_handle(state, "Schedule:Compact",
                                                             "Schedule Value", sched)
            for kind, meter in {**METERS, **EXTRA_METERS}.items():
                h[("meter", kind)] = ex.get_meter_handle(state, meter)
            missing = [k for k, v in h.items() if (isinstance(v, int) and v < 0 and
                       k[0] != "window") or (isinstance(v, list) and min(v) < 0)]
            if missing:
                raise RuntimeError(f"EnergyPlus handles not found: {missing}")
            return True

        def in_run_period() -> bool:
            return not ex.warmup_flag(state) and ex.kind_of_sim(state) == 3  # RunPeriodWeather

        def step_start_local() -> dt.datetime:
            # current_time() is the end of the zone step, in standard time (no DST here)
            base = dt.datetime(ex.calendar_year(state), ex.month(state), ex.day_of_month(state))
            return base + dt.timedelta(hours=ex.current_time(state)) - dt.timedelta(seconds=step_s)

        def before(s) -> None:
            if not handles():
                return
            if ex.kind_of_sim(s) != 3:  # sizing periods: leave the model as designed
                return
            # Warm-up days repeat the first day: drive them with the same controller, so the
            # building's thermal mass starts where that control would have left it.
            cmd = last["cmd"] = controller(step_start_local())
            any_on = False
            for i, loop in enumerate(AIR_LOOPS):
                floor_zones = [z for z in self.zones if _floor_of(z) == i + 1]
                on = any(cmd.zones[z].ac_on for z in floor_zones if z in cmd.zones)
                any_on |= on
                ex.set_actuator_value(s, h[("loop", loop)], 2.0 if on else 1.0)  # CycleOn/ForceOff
                if on and i + 1 in cmd.outdoor_air_stuck:  # the damper cannot close
                    ex.set_actuator_value(s, h[("oa", loop)],
                                          h[("fanmax", loop)] * cmd.outdoor_air_stuck[i + 1])
                elif cmd.outdoor_air.get(i + 1, True):
                    ex.reset_actuator(s, h[("oa", loop)])  # the loop's own OA control
                else:
                    ex.set_actuator_value(s, h[("oa", loop)], 0.0)  # damper shut
            ex.set_actuator_value(s, h[("sched", "HVACOperationSchd")], 1.0 if any_on else 0.0)
            ex.set_actuator_value(s, h[("sched", "MinOA_MotorizedDamper_Sched")],
                                  1.0 if any_on else 0.0)
            ex.set_actuator_value(s, h[("sched", EQUIP_SCHEDULE)], cmd.plugs)
            for zone in self.zones:
                zc = cmd.zones.get(zone, ZoneCommand())
                cooling = zc.ac_on and zc.mode != 2
                ex.set_actuator_value(s, h[("clg", zone)], zc.setpoint if cooling else OFF_SETPOINT)
                # fan-only mode still moves air; off closes the box
                ex.set_actuator_value(s, h[("vav", zone)], 1.0 if zc.ac_on else 0.0)
                ex.set_actuator_value(s, h[("htg", zone)], HEATING_SETPOINT)
                ex.set_actuator_value(s, h[("light", zone)],
                                      zc.dim / 100.0 if zc.light_on else 0.0)
                ex.set_actuator_value(s, h[("people", zone)],
                                      h[("peoplen", zone)] * cmd.people.get(zone, 0.0))
                if h[("window", zone)] >= 0:  # core zones have no infiltration object
                    if zone in cmd.open_window_m3s:
                        ex.set_actuator_value(s, h[("window", zone)], cmd.open_window_m3s[zone])
                    else:
                        ex.reset_actuator(s, h[("window", zone)])

        def managers(s) -> None:  # after the setpoint managers: a capacity fault overrides
            if not handles() or ex.kind_of_sim(s) != 3 or last.get("cmd") is None:
                return
            for i, loop in enumerate(AIR_LOOPS):
                floor_min = last["cmd"].supply_air_min_c.get(i + 1)
                for handle in h[("sat", loop)]:  # the coil's own setpoint nodes
                    if floor_min is not None:
                        ex.set_actuator_value(s, handle, floor_min)
                    else:
                        ex.reset_actuator(s, handle)

        def after(s) -> None:
            if not handles() or not in_run_period():
                return
            end_local = step_start_local() + dt.timedelta(seconds=step_s)
            energy = {k: ex.get_meter_value(s, h[("meter", k)]) / 3.6e6 for k in METERS}
            extra = {k: ex.get_meter_value(s, h[("meter", k)]) / 3.6e6 for k in EXTRA_METERS}
            for i, loop in enumerate(AIR_LOOPS):
                v = {key: ex.get_variable_value(s, h[("ahu", loop, key)])
                     for key in _ahu_nodes(loop)}
                flow = v.pop("supply_kg_s")
                oa = v.pop("oa_kg_s")
                v["oa_fraction"] = min(1.0, oa / flow) if flow > 1e-3 else 0.0
                v["fan_on"] = 1.0 if flow > 1e-3 else 0.0
                v["fan_speed"] = min(1.0, flow / h[("fanmax", loop)]) if h[("fanmax", loop)] else 0.0
                extra.update({f"ahu{i + 1}.{k}": x for k, x in v.items()})
            observer(Step(
                time=(end_local - UTC_OFFSET).replace(tzinfo=dt.timezone.utc),
                outdoor_c=ex.get_variable_value(s, h["out"]),
                zone_c={z: ex.get_variable_value(s, h[("t", z)]) for z in self.zones},
                operative_c={z: ex.get_variable_value(s, h[("op", z)]) for z in self.zones},
                occupants={z: ex.get_variable_value(s, h[("n", z)]) for z in self.zones},
                power_kw={k: e * 3600.0 / step_s for k, e in energy.items()},
                energy_kwh=energy, seconds=step_s, extra=extra))
            if self._stop.is_set():
                api.runtime.stop_simulation(s)

        api.runtime.callback_begin_system_timestep_before_predictor(state, before)
        api.runtime.callback_after_predictor_after_hvac_managers(state, managers)
        api.runtime.callback_end_zone_timestep_after_zone_reporting(state, after)
        out = self.workdir / "out"
        out.mkdir(exist_ok=True)
        try:
            return api.runtime.run_energyplus(state, ["-d", str(out), "-w", str(epw), str(model)])
        finally:
            api.state_manager.delete_state(state)
            self._state = None
            if self._own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)


def _ahu_nodes(loop: str) -> dict[str, tuple[str, str]]:
    """The air handler's measurements: (EnergyPlus output variable, node) by our name."""
    return {
        "supply_c": ("System Node Temperature", f"{loop} SUPPLY EQUIPMENT OUTLET NODE"),
        "supply_sp_c": ("System Node Setpoint Temperature", f"{loop} SUPPLY EQUIPMENT OUTLET NODE"),
        "mixed_c": ("System Node Temperature", f"{loop}_OA-{loop}_COOLCNODE"),
        "return_c": ("System Node Temperature", f"{loop} SUPPLY EQUIPMENT INLET NODE"),
        "supply_kg_s": ("System Node Mass Flow Rate", f"{loop} SUPPLY EQUIPMENT OUTLET NODE"),
        "oa_kg_s": ("System Node Mass Flow Rate", f"{loop}_OAINLET NODE"),
    }


def _floor_of(zone: str) -> int:
    z = zone.lower()
    return 1 if ("bot" in z) else 2 if "mid" in z else 3 if "top" in z else 0
