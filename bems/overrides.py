"""Operator overrides: validated against the point and the zone's limits, audited."""

from __future__ import annotations

import datetime as dt

from bems.errors import BemsError
from bems.site import Site
from bems.storage import Store


class OverrideError(BemsError):
    """An override that cannot be set; `code` is a message key the UI translates."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


def add_override(site: Site, store: Store, point: str, value: float, expires_at: dt.datetime,
                 user: str, reason: str, now: dt.datetime) -> int:
    try:
        p = site.point(point)
    except KeyError:
        raise OverrideError("unknown_point", f"no point {point!r}") from None
    if not p.writable:
        raise OverrideError("not_writable", f"{point} is not writable")
    if expires_at <= now:
        raise OverrideError("expiry_past", "the expiry is not in the future")
    zone = next((z for z in site.zones if point in z.points().values()), None)
    lo, hi = p.min, p.max
    if zone is not None and point == zone.cooling_setpoint:
        lo = max(lo if lo is not None else zone.setpoint_min, zone.setpoint_min)
        hi = min(hi if hi is not None else zone.setpoint_max, zone.setpoint_max)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise OverrideError("out_of_limits", f"{value:g} is outside {lo:g}..{hi:g} for {point}")
    oid = store.add_override(point, value, expires_at, user, reason, now,
                             zone.id if zone else None)
    store.audit(user, "override.set", {"id": oid, "point": point, "value": value,
                                       "expires_at": expires_at.isoformat(), "reason": reason},
                now)
    return oid


def release_override(store: Store, override_id: int, user: str, now: dt.datetime) -> bool:
    """End an override before it expires (audited); False if none with that id is in force.
    The strategies take the point back at their next run."""
    if not store.release_override(override_id, user, now):
        return False
    store.audit(user, "override.release", {"id": override_id}, now)
    return True
