"""Fault detection and diagnostics: the rules (`rules`), loading and recording (`engine`),
what a fault says to a person in Vietnamese and English (`texts`)."""

from __future__ import annotations


def target_name(site, kind: str, target: str) -> str:
    """The name a person knows a fault's target by (a zone's, an air handler's, a meter's)."""
    groups = {"zone": site.zones, "ahu": site.air_handlers, "meter": site.meters}
    for x in groups.get(kind, ()):
        if x.id == target:
            return x.name or x.id
    return target
