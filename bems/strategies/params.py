"""Strategy parameters: defaults here, every one overridable in the site file's [strategies]."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields

from bems.errors import BemsError
from bems.state import STRATEGY_PARAMS
from bems.text import parse_number


@dataclass(frozen=True)
class StrategyParams:
    # "rules" (the rule set below) or "predictive" (bems/predictive: a plan of the day from the
    # zones' learned models and the weather forecast; the rules when it cannot plan)
    mode: str = "rules"
    # predictive: 0 = energy first … 100 = comfort first; 35 (about 11,000 VND per kelvin-hour
    # of a room's discomfort) used less energy than 50 at equal comfort in every window
    # measured on the production path (README, "Predictive control")
    comfort_weight: float = 35.0
    predictive_margin_k: float = 0.3  # plan this far under comfort_high (model error)
    predictive_time_limit_s: float = 10.0  # slower than this: the rules decide
    # predictive, the lunch break: "free" (the plan cools when it pays) or "off" (AC off,
    # restarted at most break_restart_min before work resumes: the state-agency rule)
    predictive_break: str = "free"
    break_restart_min: float = 30.0
    # predictive, a unit's on/off: "half_hour" (a unit is on or off for whole half hours, its
    # fans' cost counted for every step it is on: relax-and-round, two LP solves) or
    # "continuous" (one LP; the fans priced in proportion to the cooling planned)
    predictive_on_off: str = "half_hour"
    # predictive, comfort: "price" (the slider prices each kelvin-hour of discomfort) or
    # "budget" (each zone may spend, per day, the kelvin-hours the slider allows,
    # `comfort_budget_kh`; the plan spends them where they save the most energy)
    predictive_comfort: str = "price"
    min_on_min: float = 60.0  # half_hour: a unit started runs at least this long
    # occupied / unoccupied setpoints (the policy floor comes from [control])
    occupancy: bool = True
    occupied_setpoint: float = 26.0
    # ± this, by half hour, on the occupied setpoint (never under the floor): keeps the cost of
    # a colder room identifiable for the nightly fit (bems/strategies/commissioning.py); 0: off
    dither_k: float = 0.0
    break_ac: str = "off"  # lunch break: "off" (the state-agency rule) or "setup" (break_setpoint)
    break_setpoint: float = 28.0  # staff rest in their offices over lunch
    unoccupied: str = "off"  # "off" or "setup"
    setup_setpoint: float = 30.0
    idle_band_k: float = 1.0  # occupied but this far under the setpoint: AC (and fans) off
    idle_restart_k: float = 0.3  # ... until the zone is back within this of the setpoint
    outdoor_air: bool = True  # command the air handlers' outdoor-air dampers
    free_cooling_max_c: float = 22.0  # warmer outdoor air is too humid to pre-cool with
    # optimal start: cool down as late as possible, at most max_lead_h before occupancy
    optimal_start: bool = True
    max_lead_h: float = 5.0  # longer than G36's 3 h: cold stored at night is cheaper
    min_lead_min: float = 10.0
    default_cool_rate_k_per_h: float = 2.0
    learn_days: int = 3
    stagger_min: float = 15.0  # zones start at least this far apart (limits the start peak)
    precool_margin: float = 3.0  # x the estimated cool-down time: finish before people come
    precool_setpoint: float = 25.5  # cool down to this (cold stored in the mass); 0: occupied
    # early stop: AC off before the end of the day where the zone stays in band
    early_stop: bool = True
    early_stop_max_min: float = 30.0
    default_warm_rate_k_per_h: float = 2.5  # afternoon sun warms west zones fast
    early_stop_margin_k: float = 0.5
    comfort_high: float = 27.0
    comfort_low: float = 23.0
    # lighting: on in occupied periods, a sweep off after, corridors dimmed
    lighting: bool = True
    sweep_after_min: float = 10.0
    corridor_percent: float = 50.0
    # demand limiting: raise cooling setpoints by level when the load nears the peak target
    demand_limit: bool = True
    peak_target_kw: float = 0.0  # 0: no target, demand limiting idle
    level_offsets_k: tuple[float, ...] = (0.5, 1.0, 2.0)
    level_thresholds: tuple[float, ...] = (0.9, 0.95, 1.0)  # of the peak target
    level_release: float = 0.85  # back to level 0 below this fraction

    @classmethod
    def field_types(cls) -> dict[str, type]:
        return {f.name: type(f.default) for f in fields(cls)}


CHOICES = {"unoccupied": ("off", "setup"), "break_ac": ("off", "setup"),
           "predictive_break": ("free", "off"), "predictive_on_off": ("half_hour", "continuous"),
           "predictive_comfort": ("price", "budget"),
           "mode": ("rules", "predictive")}
# what a facility could sensibly want; outside is a typo or an attack, refused
RANGES: dict[str, tuple[float, float]] = {
    "comfort_weight": (0.0, 100.0), "predictive_margin_k": (0.0, 3.0),
    "predictive_time_limit_s": (0.5, 60.0), "break_restart_min": (0.0, 120.0),
    "min_on_min": (30.0, 240.0),
    "occupied_setpoint": (20.0, 30.0), "dither_k": (0.0, 0.5), "break_setpoint": (20.0, 32.0),
    "setup_setpoint": (20.0, 35.0), "idle_band_k": (0.0, 5.0), "idle_restart_k": (0.0, 5.0),
    "free_cooling_max_c": (10.0, 30.0), "max_lead_h": (0.0, 12.0),
    "min_lead_min": (0.0, 120.0), "default_cool_rate_k_per_h": (0.1, 20.0),
    "learn_days": (1, 30), "stagger_min": (0.0, 120.0), "precool_margin": (1.0, 10.0),
    "precool_setpoint": (0.0, 30.0), "early_stop_max_min": (0.0, 240.0),
    "default_warm_rate_k_per_h": (0.1, 20.0), "early_stop_margin_k": (0.0, 5.0),
    "comfort_high": (20.0, 35.0), "comfort_low": (15.0, 30.0), "sweep_after_min": (0.0, 240.0),
    "corridor_percent": (0.0, 100.0), "peak_target_kw": (0.0, 100_000.0),
    "level_offsets_k": (0.0, 5.0), "level_thresholds": (0.1, 2.0), "level_release": (0.0, 1.0),
}


def validate(values: dict, policy_floor: float, from_form: bool = False,
             base: StrategyParams | None = None) -> tuple[dict, list[tuple[str, str, str]]]:
    """Check strategy switches and parameters: (clean values, problems). One validator for the
    site file's [strategies] (TOML types) and the UI's form (`from_form`: text, a decimal
    comma allowed, an absent checkbox is false). A problem is (field, code, message)."""
    types = StrategyParams.field_types()
    clean: dict = {}
    problems: list[tuple[str, str, str]] = []

    def bad(key: str, code: str, message: str) -> None:
        problems.append((key, code, message))

    for key, v in values.items():
        kind = types.get(key)
        if kind is None:
            bad(key, "unknown_parameter", "unknown field (expected one of: "
                + ", ".join(types) + ")")
        elif key in CHOICES:
            if v not in CHOICES[key]:
                bad(key, "choice_invalid", f"must be one of {', '.join(CHOICES[key])}; got {v!r}")
            else:
                clean[key] = v
        elif kind is bool:
            if from_form:
                clean[key] = bool(v)
            elif isinstance(v, bool):
                clean[key] = v
            else:
                bad(key, "bool_invalid", f"must be true or false, got {v!r}")
        elif kind is tuple:
            lo, hi = RANGES[key]
            if isinstance(v, (list, tuple)) and 0 < len(v) <= 10 and all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and
                    math.isfinite(x) and lo <= x <= hi for x in v):
                clean[key] = tuple(float(x) for x in v)
            else:
                bad(key, "list_invalid", f"must be a list of 1 to 10 numbers in {lo:g}..{hi:g}")
        else:
            n = _number(v, kind, from_form)
            lo, hi = RANGES.get(key, (-math.inf, math.inf))
            if n is None:
                bad(key, "number_invalid",
                    f"must be {'a whole number' if kind is int else 'a number'}, got {v!r}"[:200])
            elif not lo <= n <= hi:
                bad(key, "out_of_range", f"must be {lo:g}..{hi:g}, got {n:g}")
            else:
                clean[key] = n
    merged = dataclasses.replace(base or StrategyParams(), **clean)
    if "occupied_setpoint" in clean and clean["occupied_setpoint"] < policy_floor:
        bad("occupied_setpoint", "below_policy_floor",
            f"must not be below the policy floor {policy_floor:g} °C")
    if len(merged.level_offsets_k) != len(merged.level_thresholds):
        bad("level_thresholds", "levels_mismatch", "needs one threshold per level offset")
    if merged.comfort_low >= merged.comfort_high:
        bad("comfort_low", "out_of_range", "must be below comfort_high")
    if 0 < merged.precool_setpoint < policy_floor:
        bad("precool_setpoint", "below_policy_floor",
            f"must be 0 (the occupied setpoint) or not below the policy floor {policy_floor:g} °C")
    return clean, problems


def _number(v: object, kind: type, from_form: bool) -> float | int | None:
    if isinstance(v, bool):
        return None
    if from_form and isinstance(v, str):
        try:
            v = parse_number(v)  # ASCII digits, a decimal point or comma, finite
        except ValueError:
            return None
        if kind is int:
            if v != int(v):
                return None
            v = int(v)
    if kind is float and isinstance(v, int):
        v = float(v)
    if not isinstance(v, kind) or (kind is float and not math.isfinite(v)):
        return None
    return v


def stored(store, site=None) -> dict:
    """An admin's saved switches and parameters (over the site file's). Checked again when
    read: values saved by an older version, or written around the UI, never reach a strategy
    unless they are valid now."""
    values = store.get(STRATEGY_PARAMS)
    if not isinstance(values, dict):
        return {}
    floor = site.control.policy_min_cooling_setpoint if site is not None else 25.0
    clean, problems = validate({k: v for k, v in values.items()}, floor,
                               base=site.strategies if site is not None else None)
    bad = {f for f, _, _ in problems}
    return {k: v for k, v in clean.items() if k not in bad}


def save(store, site, values: dict, user: str, now) -> dict:
    """Validate an admin's switches and parameters from the UI, store them, audit the change.
    Raises `ParamsError` (with every problem) and changes nothing if one is wrong."""
    clean, problems = validate(values, site.control.policy_min_cooling_setpoint,
                               from_form=True, base=site.strategies)
    if problems:
        raise ParamsError(problems)
    store.put(STRATEGY_PARAMS, clean)
    store.audit(user, "strategies.save", clean, now)
    return clean


class ParamsError(BemsError):
    """Strategy parameters that cannot be saved; `problems` lists (field, code) pairs."""

    def __init__(self, problems: list[tuple[str, str, str]]):
        self.problems = [(f, code) for f, code, _ in problems]
        super().__init__("; ".join(f"{f}: {m}" for f, _, m in problems))
