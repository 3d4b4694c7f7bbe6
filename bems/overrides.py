"""Operator overrides: one validator for the UI and the CLI (the point, the value, the zone's
limits, the policy floor, the expiry, the reason), audited when set and when released."""

from __future__ import annotations

import datetime as dt
import math

from bems.errors import BemsError
from bems.site import Site
from bems.storage import Store
from bems.text import clean_text

MAX_DURATION = dt.timedelta(days=7)  # longer than a week is a schedule change, not an override
MAX_REASON = 200


class OverrideError(BemsError):
    """An override that cannot be set; `code` is a message key the UI translates."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


def check_override(site: Site, point: str, value: float, expires_at: dt.datetime,
                   now: dt.datetime) -> tuple[float, str | None]:
    """(value, zone id) of a valid override, or OverrideError saying what is wrong."""
    try:
        p = site.point(point)
    except KeyError:
        raise OverrideError("unknown_point", f"no point {point!r}") from None
    if not p.writable:
        raise OverrideError("not_writable", f"{point} is not writable")
    if point == site.control.heartbeat_point or p.kind == "heartbeat":
        raise OverrideError("not_overridable", f"{point} is BEMS's heartbeat, not for operators")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        raise OverrideError("number_invalid", f"{value!r} is not a finite number")
    value = float(value)
    otype = p.object_type
    if otype.startswith("binary") and value not in (0.0, 1.0):
        raise OverrideError("on_off", f"{value:g}: {point} is on (1) or off (0)")
    if otype.startswith("multi-state") and (value != int(value) or value < 1):
        raise OverrideError("number_invalid", f"{value:g}: {point} takes a whole number from 1")
    if expires_at <= now:
        raise OverrideError("expiry_past", "the expiry is not in the future")
    if expires_at - now > MAX_DURATION:
        raise OverrideError("too_long", f"an override lasts at most {MAX_DURATION.days} days")
    zone = next((z for z in site.zones if point in z.points().values()), None)
    lo, hi = p.min, p.max
    if zone is not None and point == zone.cooling_setpoint:
        lo = max(x for x in (lo, zone.setpoint_min) if x is not None)
        hi = min(x for x in (hi, zone.setpoint_max) if x is not None)
    if p.kind == "setpoint" or (zone is not None and point == zone.cooling_setpoint):
        floor = site.control.policy_min_cooling_setpoint
        if value < floor:  # the agency's obligation (Joint Circular 111/2009)
            raise OverrideError("below_policy_floor",
                                f"{value:g} °C is below the policy floor {floor:g} °C")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise OverrideError("out_of_limits",
                            f"{value:g} is outside {lo if lo is not None else '-∞'}.."
                            f"{hi if hi is not None else '∞'} for {point}")
    return value, zone.id if zone else None


def add_override(site: Site, store: Store, point: str, value: float, expires_at: dt.datetime,
                 user: str, reason: str, now: dt.datetime) -> int:
    value, zone = check_override(site, point, value, expires_at, now)
    reason = clean_text(reason, MAX_REASON)
    oid = store.add_override(point, value, expires_at, user, reason, now, zone)
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
