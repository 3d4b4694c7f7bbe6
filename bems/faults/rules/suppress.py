"""Findings that another finding explains are dropped (a zone too warm while its air handler
cannot cool, or while its own sensor is biased or stuck)."""

from __future__ import annotations

import datetime as dt

from bems.faults.rules.grid import Finding


# a finding → the findings that explain it, on the same target ("self") or on the zone's air
# handler ("ahu"), the same day
EXPLAINED_BY: dict[str, tuple[tuple[str, str], ...]] = {
    "cannot_reach_setpoint": (("sensor_bias", "self"), ("sensor_stuck", "self"),
                              ("ahu_supply_air_high", "ahu"), ("ahu_outdoor_air_high", "ahu")),
    "sensor_bias": (("sensor_stuck", "self"),),
    # the outdoor-air share comes from the mixed and return air temperatures: one is wrong
    "ahu_outdoor_air_high": (("ahu_mixed_air_implausible", "self"),
                             ("ahu_return_air_drift", "self")),
}


def suppress(findings: list[Finding], zone_ahu: dict[str, str], tz=dt.timezone.utc) -> list[Finding]:
    """Drop the findings another finding explains (`EXPLAINED_BY`), and an air handler short of
    supply air on a day most of them are (the weather beyond their design)."""
    all_ahus = sorted(set(zone_ahu.values()))

    def days_of(f: Finding) -> set:  # the site's local days the finding spans
        d0, d1 = f.first.astimezone(tz).date(), f.last.astimezone(tz).date()
        return {d0 + dt.timedelta(days=k) for k in range((d1 - d0).days + 1)}

    by: dict[tuple[str, str], set] = {}
    for f in findings:
        by.setdefault((f.rule, f.target), set()).update(days_of(f))

    def has(rule: str, target: str | None, days: set) -> bool:
        return target is not None and bool(by.get((rule, target), set()) & days)

    # most air handlers short of supply air on the same day (two thirds of them, three units
    # or more): the weather beyond their design, not a fault of one unit
    common = set()
    if len(all_ahus) >= 3:
        for day in {f.first.astimezone(tz).date() for f in findings}:
            short = sum(has("ahu_supply_air_high", a, {day}) for a in all_ahus)
            if short >= max(2, 2 * len(all_ahus) / 3):
                common.add(day)
    kept = []
    for f in findings:
        d = days_of(f)
        if f.rule == "ahu_supply_air_high" and d <= common:
            continue
        targets = {"self": f.target, "ahu": zone_ahu.get(f.target)}
        if any(has(rule, targets[whose], d) for rule, whose in EXPLAINED_BY.get(f.rule, ())):
            continue
        kept.append(f)
    return kept
