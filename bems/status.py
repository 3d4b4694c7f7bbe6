"""What the building is doing now, from the store: each zone's state and who commands it, and
the alarms (stale devices, zones out of band, AC or lights after hours, setpoints below the
policy floor) with their acknowledgements. Used by the UI and the runtime."""

from __future__ import annotations

import datetime as dt

from bems.calendar import SiteCalendar
from bems.formatting import number
from bems.i18n import N_, tr
from bems.site import Site
from bems.storage import Store
from bems.state import ALARM_ACKS, BACKUP_FAILED, CONTROLLER_CLOCKS, DECISION_LOOKBACK_S

# how urgent each kind of alarm is (a recipient's min_severity filters on it)
SEVERITY = {"stale": "critical", "runtime_down": "critical", "runtime_stopped": "critical",
            "write": "warning", "sensor": "warning", "clock": "warning", "policy": "warning",
            "out_of_band": "warning", "ac_after_hours": "info", "lights_after_hours": "info",
            "fault": "warning", "backup": "warning"}
# what each kind of alarm says (the screens and the notifications alike)
TEXTS = {
    "stale": N_("No data from %(name)s"),
    "out_of_band": N_("%(name)s out of band: %(t)s °C"),
    "ac_after_hours": N_("AC running after hours: %(name)s"),
    "lights_after_hours": N_("Lights on after hours: %(name)s"),
    "clock": N_("The clock of %(name)s is %(m)s minutes off"),
    "policy": N_("Setpoint below the policy floor: %(name)s (%(t)s °C)"),
    "write": N_("A write was not confirmed: %(name)s"),
    "sensor": N_("Readings out of the plausible range: %(name)s"),
    "runtime_down": N_("BEMS was not running: %(name)s"),
    "runtime_stopped": N_("BEMS has stopped: no poll since %(name)s"),
    "fault": N_("New fault: %(name)s"),
    "backup": N_("The nightly backup failed: %(name)s"),
}
CLOCK_ALARM_S = 300  # a controller clock this far off runs its local schedule at the wrong time
COMFORT = (23.0, 27.0)
STALE_S = 15 * 60


def alarm_text(kind: str, target: str, value: float | None, lang: str) -> str:
    """What an alarm says in `lang`: its kind's text with the target and the value (minutes
    for a clock, °C otherwise) in the reader's number format."""
    text = TEXTS.get(kind)
    if text is None:
        return f"{kind}: {target}"
    shown = "–" if value is None else number(value, lang, 0 if kind == "clock" else 1)
    return tr(lang, text) % {"name": target, "t": shown, "m": shown}


def stale_after(store: Store) -> int:
    """How old a reading may be and still be "now": 15 minutes, or three of the runtime's
    poll cycles if they are longer (a demo at 60× polls once a simulated minute; one at
    3600× once a simulated hour) — the decision path's own look-back."""
    return max(STALE_S, store.get(DECISION_LOOKBACK_S))


def zone_rows(site: Site, store: Store, now: dt.datetime) -> list[dict]:
    latest = store.latest(now=now, lookback_s=stale_after(store))
    held = {w.point: w for w in reversed(store.held_writes())}
    overrides = {o["point"]: o for o in store.overrides(active_at=now)}
    cal = SiteCalendar(site)
    local = now.astimezone(site.tz).replace(tzinfo=None)
    rows = []
    for z in site.zones:
        def val(pid):
            v = latest.get(pid) if pid else None
            return v[1] if v else None

        sp_w = held.get(z.cooling_setpoint)
        # who commands the setpoint: a person's override, BEMS (and which part), or nobody
        who: dict | None = None
        if z.cooling_setpoint in overrides:
            o = overrides[z.cooling_setpoint]
            who = {"kind": "override", "by": o["created_by"],
                   "priority": site.control.write_priority, "source": "override"}
        elif sp_w is not None:
            who = {"kind": "bems", "by": "", "priority": sp_w.priority, "source": sp_w.source}
        temp = val(z.temperature)
        occupied = bool(z.schedule and cal.occupied(z.schedule, local))
        rows.append({"zone": z, "temp": temp, "setpoint": val(z.cooling_setpoint),
                     "ac": val(z.ac_status), "light": val(z.lighting), "dim": val(z.lighting_level),
                     "occupied": occupied, "who": who,
                     "reason": sp_w.reason if sp_w is not None else "",
                     "out_of_band": occupied and temp is not None and
                     not COMFORT[0] <= temp <= COMFORT[1],
                     "stale": temp is None})
    return rows


def alarms(site: Site, store: Store, now: dt.datetime) -> list[dict]:
    """Stale devices, zones out of band, AC or lights on after hours, setpoints below the
    policy floor, writes that failed or were not confirmed, sensors reading out of their
    plausible range, controller clocks off. Each has a stable key (so it can be
    acknowledged and logged as one occurrence) and a severity."""
    out = []
    latest = store.latest(now=now, lookback_s=stale_after(store))
    for dev in site.devices:
        pts = [p.id for p in site.points_of(dev.id) if not p.writable or p.kind == "setpoint"]
        if pts and not any(p in latest for p in pts):
            out.append({"key": f"stale:{dev.id}", "kind": "stale", "target": dev.name or dev.id,
                        "value": None})
    floor = site.control.policy_min_cooling_setpoint
    for r in zone_rows(site, store, now):
        z = r["zone"]
        if r["out_of_band"]:
            out.append({"key": f"band:{z.id}", "kind": "out_of_band", "target": z.name,
                        "value": r["temp"]})
        if not r["occupied"] and (r["ac"] or 0) > 0.5:
            out.append({"key": f"ac_after:{z.id}", "kind": "ac_after_hours", "target": z.name,
                        "value": None})
        if not r["occupied"] and (r["light"] or 0) > 0.5:
            out.append({"key": f"light_after:{z.id}", "kind": "lights_after_hours",
                        "target": z.name, "value": None})
        if r["occupied"] and (r["ac"] or 0) > 0.5 and r["setpoint"] is not None \
                and r["setpoint"] < floor:
            out.append({"key": f"policy:{z.id}", "kind": "policy", "target": z.name,
                        "value": r["setpoint"]})
    clocks = store.get(CONTROLLER_CLOCKS).get("drift_s", {})
    for dev in site.devices:
        d = clocks.get(dev.id)
        if isinstance(d, (int, float)) and abs(d) > CLOCK_ALARM_S:
            out.append({"key": f"clock:{dev.id}", "kind": "clock", "target": dev.name or dev.id,
                        "value": d / 60})
    names = {p.id: p.name or p.id for p in site.points}
    # a point whose newest write failed or could not be read back (and was not released)
    newest = {w.point: w for w in reversed(store.held_writes())}
    for pid, w in newest.items():
        if w.outcome in ("failed", "unconfirmed"):
            out.append({"key": f"write:{pid}", "kind": "write", "target": names.get(pid, pid),
                        "value": w.value if isinstance(w.value, (int, float)) else None})
    # a sensor whose readings were outside its plausible range within the look-back
    since = now - dt.timedelta(seconds=stale_after(store))
    odd = {pid for t, pid, _ in store.implausible(limit=500) if since <= t <= now}
    for pid in sorted(odd):
        out.append({"key": f"sensor:{pid}", "kind": "sensor", "target": names.get(pid, pid),
                    "value": None})
    failed = store.get(BACKUP_FAILED)
    if failed.get("error"):
        out.append({"key": "backup", "kind": "backup", "target": str(failed["error"])[:200],
                    "value": None})
    acks = store.get(ALARM_ACKS)
    for a in out:
        a["severity"] = SEVERITY[a["kind"]]
        a["ack"] = acks.get(a["key"])  # only an active alarm's acknowledgement is shown
    return out


def acknowledge(site: Site, store: Store, key: str, user: str, now: dt.datetime) -> bool:
    """Acknowledge an alarm that is active now (False if none has that key). The
    acknowledgement belongs to this occurrence: when the alarm clears, `prune_acks` (the
    runtime, every minute) drops it, and a new occurrence must be acknowledged again."""
    if key not in {a["key"] for a in alarms(site, store, now)}:
        return False
    acks = store.get(ALARM_ACKS)
    acks[key] = {"by": user, "at": now.isoformat()}
    store.put(ALARM_ACKS, acks)
    store.ack_alarm_entry(key, user, now)
    store.audit(user, "alarm.ack", {"key": key}, now)
    return True


def prune_acks(site: Site, store: Store, now: dt.datetime,
               active: set[str] | None = None) -> int:
    """Drop the acknowledgements of alarms that are no longer active (`active`: their keys,
    when the caller has just computed them)."""
    acks = store.get(ALARM_ACKS)
    if active is None:
        active = {a["key"] for a in alarms(site, store, now)}
    kept = {k: v for k, v in acks.items() if k in active}
    if len(kept) != len(acks):
        store.put(ALARM_ACKS, kept)
    return len(acks) - len(kept)
