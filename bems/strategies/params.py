"""Strategy parameters: defaults here, every one overridable in the site file's [strategies]."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class StrategyParams:
    # occupied / unoccupied setpoints (the policy floor comes from [control])
    occupancy: bool = True
    occupied_setpoint: float = 26.0
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
