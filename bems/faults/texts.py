"""What each fault says to a person, in Vietnamese and English: a title, the likely cause and
what to check. Filled from the finding's evidence; used by the UI, the CLI and the reports."""

from __future__ import annotations

from typing import Any

from bems.formatting import number
from bems.i18n import N_, tr

TEXTS: dict[str, dict[str, str]] = {
    "ac_after_hours": {
        "title": N_("AC on outside working hours"),
        "cause": N_("The AC of {target} ran {hours} h while the zone was closed{closed}. A "
                    "wall panel or a local controller may hold it on (at a priority above BEMS), "
                    "or its own time clock is wrong."),
        "check": N_("Look at the unit's wall panel and its priority array (who commands it); "
                    "ask who stayed late; check the controller's schedule."),
    },
    "lights_after_hours": {
        "title": N_("Lights on outside working hours"),
        "cause": N_("The lights of {target} stayed on {hours} h while the zone was closed."),
        "check": N_("Walk the zone; check its switch and the lighting controller's schedule."),
    },
    "setpoint_below_floor": {
        "title": N_("Cooled below the 25 °C floor"),
        "cause": N_("{target} was cooled to {setpoint} °C while occupied, below the policy "
                    "floor of {floor} °C, for {hours} h. A person's override, a wall panel at a "
                    "priority above BEMS, or the controller's own program holds it."),
        "check": N_("Look at the setpoint's priority array (who commands it) and the wall "
                    "panel; remind the room of the 25 °C rule (Joint Circular 111/2009)."),
    },
    "lights_unoccupied": {
        "title": N_("Lights on in an empty zone"),
        "cause": N_("The occupancy sensor of {target} saw no one for {hours} h while its "
                    "lights were on."),
        "check": N_("Check whether the room was used; if not, turn lighting control by "
                    "occupancy on; if it was, the occupancy sensor may be faulty."),
    },
    "cannot_reach_setpoint": {
        "title": N_("Zone warmer than its setpoint while cooling"),
        "cause": N_("{target} stayed up to {above_k} K above its setpoint for {hours} h with "
                    "its AC cooling.{window}"),
        "check": N_("Check windows and doors, the unit's filter and coil, its refrigerant "
                    "charge (a leak), and the room sensor against a hand-held thermometer."),
    },
    "short_cycling": {
        "title": N_("AC short-cycling"),
        "cause": N_("The AC of {target} switched on and off {changes_3h} times in 3 hours "
                    "without BEMS asking it to. It wears the compressor and wastes energy."),
        "check": N_("Check the thermostat's deadband and location (sun, supply air on it), "
                    "and the unit's protections (pressure, overload)."),
    },
    "sensor_stuck": {
        "title": N_("Room sensor stuck"),
        "cause": N_("The temperature of {target} read {value} °C for {hours} h while the zone "
                    "must have changed (its AC started or stopped)."),
        "check": N_("Check the sensor and its wiring or the controller's input; compare with "
                    "a hand-held thermometer."),
    },
    "sensor_bias": {
        "title": N_("Room sensor reads off (bias or drift)"),
        "cause": N_("At night, with every AC off, {target} read {bias_k} K away from its "
                    "usual difference to the other zones of its floor ({usual_k} K)."),
        "check": N_("Compare the sensor with a hand-held thermometer; recalibrate or replace "
                    "it. A sensor reading high makes the zone over-cooled."),
    },
    "sensor_out_of_range": {
        "title": N_("Room sensor out of range"),
        "cause": N_("{target} read an impossible temperature ({value} °C)."),
        "check": N_("Check the sensor, its wiring and the controller's input type."),
    },
    "ahu_supply_air_high": {
        "title": N_("Air handler cannot cool its supply air"),
        "cause": N_("The supply air of {target} stayed up to {above_k} K above its setpoint "
                    "for {hours} h while cooling (ASHRAE Guideline 36, FC13). The zones it "
                    "serves warm up."),
        "check": N_("Check the refrigerant charge (a leak), the condenser (dirty, blocked, in "
                    "the sun), the compressor stages and the filters."),
    },
    "ahu_outdoor_air_high": {
        "title": N_("Too much outdoor air (damper stuck open?)"),
        "cause": N_("{target} took in about {seen_pct} % outdoor air in hot weather, where it "
                    "usually takes {usual_pct} % or what its damper command asks (Guideline 36, "
                    "FC6). Hot humid air costs cooling."),
        "check": N_("Check the outdoor-air damper and its actuator (stuck, linkage loose), "
                    "and the mixed-air sensor."),
    },
    "ahu_return_air_drift": {
        "title": N_("Return-air sensor reads off (drift)"),
        "cause": N_("With the fan running, the return air of {target} read {bias_k} K away "
                    "from its usual difference to the zones it serves ({usual_k} K): its sensor "
                    "drifts, or the zones' sensors drift together."),
        "check": N_("Compare the return-air sensor with a hand-held thermometer in the return "
                    "duct; the air handler's controls use it."),
    },
    "ahu_mixed_air_implausible": {
        "title": N_("Air handler temperatures disagree"),
        "cause": N_("The mixed air of {target} was colder or warmer than both the return and "
                    "the outdoor air for {hours} h (Guideline 36, FC2/FC3): a sensor is wrong."),
        "check": N_("Check the mixed, return and outdoor air sensors and where they sit."),
    },
    "meter_reset": {
        "title": N_("Meter register went back"),
        "cause": N_("The energy register of {target} fell by {drop_kwh} kWh: a reset, a "
                    "replaced meter or a rollover."),
        "check": N_("Ask whether the meter was replaced or reset; the reports use the power "
                    "readings across the gap."),
    },
    "meter_dropout": {
        "title": N_("Meter not reporting"),
        "cause": N_("{target} {how} for {hours} h where it usually reads something (about "
                    "{unmetered_kwh} kWh not recorded)."),
        "check": N_("Check the meter's communication (gateway, wiring, address) and its "
                    "current transformers."),
    },
    "meter_tree_mismatch": {
        "title": N_("Sub-meters read more than their main meter"),
        "cause": N_("The meters under {target} read {children_kw} kW together while it read "
                    "{parent_kw} kW, for {hours} h."),
        "check": N_("Check the current transformer ratios and wiring of each meter, and that "
                    "no load is counted twice in the meter tree of the site file."),
    },
    "base_load_high": {
        "title": N_("Night load higher than usual"),
        "cause": N_("{target} drew {night_kw} kW at night against {usual_kw} kW {basis}: "
                    "equipment left on, or loads creeping up."),
        "check": N_("Walk the building at night: computers, water heaters, printers, server "
                    "room, pumps."),
    },
    "off_day_energy_high": {
        "title": N_("A closed day used more than usual"),
        "cause": N_("{target} used {kwh} kWh on a closed day against a usual {usual_kwh} kWh."),
        "check": N_("Check what ran: AC or lights held on, a weekend event not in the calendar."),
    },
}

WORDS = {
    "closed_day": N_(" (a closed day)"),
    "window": N_(" The zone warmed while the outdoor air was hotter: a window or door may be "
                 "open."),
    "missing": N_("sent nothing"),
    "forecast": N_("as forecast"),
    "usual": N_("on usual nights"),
    "zero": N_("read zero"),
}


def fault_text(rule: str, evidence: dict, target: str, lang: str = "en") -> dict[str, str]:
    """Title, cause and check of a fault in `lang` (vi or en)."""
    lang = "vi" if lang == "vi" else "en"
    t = TEXTS.get(rule)
    if t is None:
        return {"title": rule, "cause": "", "check": ""}
    ev: dict[str, Any] = {k: _fmt(v, lang) for k, v in evidence.items() if k != "points"}
    ev["target"] = target
    ev["closed"] = tr(lang, WORDS["closed_day"]) if evidence.get("closed_day") else ""
    ev["window"] = tr(lang, WORDS["window"]) if evidence.get("window_likely") else ""
    ev["basis"] = tr(lang, WORDS["forecast" if evidence.get("from_forecast") else "usual"])
    if "how" in evidence:
        ev["how"] = tr(lang, WORDS.get(str(evidence["how"]), ""))

    class Missing(dict):
        def __missing__(self, key: str) -> str:
            return "–"

    return {k: tr(lang, t[k]).format_map(Missing(ev)) for k in ("title", "cause", "check")}


def _fmt(v: Any, lang: str) -> Any:
    if isinstance(v, float):
        return number(v, lang, 1 if abs(v) < 100 else 0)
    return v
