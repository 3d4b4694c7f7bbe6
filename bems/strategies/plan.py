"""The strategies: pure functions from (site, snapshot, forecast, schedule, now) to intended
writes, each with a reason a facility manager can read. No I/O, no clock: `now` is passed in.

Per zone, in order of precedence: an operator override that has not expired; otherwise the
zone's mode from its schedule and the calendar (holidays, closures, make-up days):
- occupied: AC on at the occupied setpoint (never below the policy floor), raised by the
  demand-limit level;
- break (a gap of under three hours between periods, e.g. lunch): AC on at the break setpoint;
- cool-down (optimal start): AC on as late as possible before occupancy, from the zone's
  learned cool-down rate, at most `max_lead_h` ahead, zones staggered;
- early stop: AC off before the end of the day where the zone will stay under the comfort
  limit until the end;
- unoccupied: AC off (or set up).
Lighting: on in occupied periods (corridors dimmed), off after a short sweep.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from bems.calendar import SiteCalendar
from bems.intents import WriteIntent
from bems.reasons import Reason, reason
from bems.site import Period, Site, Zone
from bems.strategies.commissioning import GUARD_K, Commissioning, Test, dither, tests_for_day
from bems.strategies.params import StrategyParams


BREAK_MAX_H = 3  # a gap between two working periods shorter than this is a break (lunch)


@dataclass(frozen=True)
class Override:
    point: str
    value: float
    expires_at: dt.datetime  # aware
    by: str = ""
    reason: str = ""


@dataclass
class Learned:
    """Per-zone rates learned from the building: cooling (AC on, K/h down) and warming (AC
    off, K/h up). The average of the last `days` days' estimates is used."""

    cool: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # zone → (day, K/h)
    warm: dict[str, list[tuple[str, float]]] = field(default_factory=dict)

    def rate(self, kind: str, zone: str, default: float, days: int) -> float:
        hist = getattr(self, kind).get(zone, [])[-days:]
        vals = [v for _, v in hist if v > 0.05]
        return sum(vals) / len(vals) if vals else default

    def record(self, kind: str, zone: str, day: dt.date, k_per_h: float, days: int) -> None:
        hist = getattr(self, kind).setdefault(zone, [])
        key = day.isoformat()
        if hist and hist[-1][0] == key:
            hist[-1] = (key, 0.5 * (hist[-1][1] + k_per_h))
        else:
            hist.append((key, k_per_h))
        del hist[:-max(days, 1) * 2]


@dataclass(frozen=True)
class ZoneDecision:
    zone: str
    mode: str  # occupied | break | cooldown | early-stop | unoccupied | override
    intents: tuple[WriteIntent, ...]


def _at(day: dt.date, t: dt.time) -> dt.datetime:
    return dt.datetime.combine(day, t)


def _end(p: Period, day: dt.date) -> dt.datetime:
    return _at(day, p.end) if p.end != dt.time(0) else _at(day + dt.timedelta(days=1), dt.time(0))


def demand_level(params: StrategyParams, site_kw: float | None, forecast_kw: float | None,
                 previous: int) -> int:
    """The demand-limit level (0 = none) from the live load and the next hour's forecast."""
    if not params.demand_limit or params.peak_target_kw <= 0:
        return 0
    load = max(x for x in (site_kw, forecast_kw, 0.0) if x is not None)
    ratio = load / params.peak_target_kw
    level = sum(1 for th in params.level_thresholds if ratio >= th)
    if level < previous and ratio > params.level_release:
        return previous  # hysteresis: step down only well below the target
    return level


def natural_lead_h(site: Site, zone: Zone, temp: float | None, learned: Learned) -> float:
    """Hours a zone needs to cool from `temp` to the occupied setpoint, with margin, capped."""
    p = site.strategies
    target = max(zone.occupied_setpoint or p.occupied_setpoint,
                 site.control.policy_min_cooling_setpoint)
    if p.precool_setpoint > 0:
        target = max(min(target, p.precool_setpoint), site.control.policy_min_cooling_setpoint)
    rate = learned.rate("cool", zone.id, p.default_cool_rate_k_per_h, p.learn_days)
    need = max(temp - target, 0.0) / rate * p.precool_margin if temp is not None else p.max_lead_h
    return min(p.max_lead_h, max(p.min_lead_min / 60, need))


def override_reason(site: Site, ov: Override, note: bool = True) -> Reason:
    """"operator override until 16:00 by lan: meeting" (the by and the note when known)."""
    until = f"{ov.expires_at.astimezone(site.tz):%H:%M}"
    if not note:
        return reason("override", until=until)
    if ov.reason:
        return reason("override_by_note", until=until, by=ov.by or "operator", note=ov.reason)
    return reason("override_by", until=until, by=ov.by or "operator")


def plan_zone(site: Site, calendar: SiteCalendar, zone: Zone, values: dict[str, float | None],
              now: dt.datetime, learned: Learned, level: int = 0, extra_lead_h: float = 0.0,
              overrides: dict[str, Override] | None = None,
              test: Test | None = None) -> ZoneDecision:
    """What one zone's points should be at local time `now` (naive local). `test`: the
    zone's commissioning settings of the day (its occupied setpoint and cool-down start)."""
    p = site.strategies
    floor = site.control.policy_min_cooling_setpoint
    occupied_sp = max(zone.occupied_setpoint or p.occupied_setpoint, floor)
    if test is not None:
        occupied_sp = test.setpoint
    offset = p.level_offsets_k[level - 1] if level > 0 else 0.0
    day = now.date()
    periods = calendar.periods(zone.schedule, day) if zone.schedule else []
    temp = values.get(zone.temperature) if zone.temperature else None
    cool_rate = learned.rate("cool", zone.id, p.default_cool_rate_k_per_h, p.learn_days)
    warm_rate = learned.rate("warm", zone.id, p.default_warm_rate_k_per_h, p.learn_days)
    ac_now = (values.get(zone.ac_status) or 0.0) > 0.5 if zone.ac_status else False

    mode, why_now = "unoccupied", reason("unoccupied")
    current = next((q for q in periods if _at(day, q.start) <= now < _end(q, day)), None)
    upcoming = next((q for q in periods if _at(day, q.start) > now), None)
    previous = [q for q in periods if _end(q, day) <= now]
    if current is not None:
        mode, why_now = "occupied", reason("occupied_period", start=f"{current.start:%H:%M}",
                                           end=f"{current.end:%H:%M}")
        sp_now = occupied_sp + offset
        if temp is not None and p.idle_band_k > 0 and (
                temp <= sp_now - p.idle_band_k or
                (not ac_now and temp < sp_now - p.idle_restart_k)):
            mode = "idle"
            why_now = reason("idle", temp=temp, limit=sp_now - p.idle_restart_k)
        last = periods[-1]
        if p.early_stop and current is last and temp is not None:
            left_h = (_end(last, day) - now).total_seconds() / 3600
            # the learned rate comes mostly from nights; never assume slower than the default
            rate = max(warm_rate, p.default_warm_rate_k_per_h)
            if left_h * 60 <= p.early_stop_max_min and \
                    temp + rate * left_h <= p.comfort_high - p.early_stop_margin_k:
                mode = "early-stop"
                why_now = reason("early_stop", temp=temp, rate=rate, high=p.comfort_high,
                                 until=f"{last.end:%H:%M}")
    elif upcoming is not None:
        gap_h = ((_at(day, upcoming.start) - _end(previous[-1], day)).total_seconds() / 3600
                 if previous else None)
        if gap_h is not None and gap_h < BREAK_MAX_H:
            mode, why_now = "break", reason("break", until=f"{upcoming.start:%H:%M}")
        if p.optimal_start or test is not None:
            if test is not None and mode != "break":
                lead_h = test.lead_h  # commissioning's start of the day
            else:
                lead_h = natural_lead_h(site, zone, temp, learned)
                if mode != "break":
                    lead_h = min(lead_h + extra_lead_h, p.max_lead_h)
            start_at = _at(day, upcoming.start) - dt.timedelta(hours=lead_h)
            started = ac_now and mode != "break" and now >= start_at - dt.timedelta(minutes=15)
            if now >= start_at or started:
                mode = "cooldown"
                why_now = (reason("cooldown_started", start=f"{start_at:%H:%M}",
                                  occupancy=f"{upcoming.start:%H:%M}")
                           + reason("zone_cools", temp=temp, rate=cool_rate)
                           if temp is not None else
                           reason("cooldown", occupancy=f"{upcoming.start:%H:%M}"))

    intents: list[WriteIntent] = []
    src = "strategy"

    def want(point: str | None, value: float, why: Reason) -> None:
        if point:
            intents.append(WriteIntent(point, value, why, src))

    if mode in ("occupied", "cooldown"):
        sp = occupied_sp + offset
        if mode == "cooldown" and p.precool_setpoint > 0 and test is None:
            sp = max(min(sp, p.precool_setpoint), floor)  # the policy floor still applies
        if mode == "occupied" and test is None and p.dither_k > 0:
            # only while people are there: nothing is rewritten at night for it
            sp = min(max(sp + dither(zone, now, p.dither_k), floor),
                     max(zone.setpoint_max, floor))
        why = why_now + reason("demand_level", level=level, offset=offset) if level else why_now
        if test is not None:
            sp = min(sp, test.high)  # a demand-limit offset stays within the legal range
            why = why + reason("commissioning", day=test.day, days=test.days,
                               setpoint=test.setpoint, lead=test.lead_h)
            if mode == "occupied" and temp is not None and \
                    temp >= min(test.setpoint + GUARD_K, p.comfort_high):
                sp = test.low  # the comfort guard: a room not held is cooled to the floor
                why = why + reason("commissioning_guard", temp=temp, setpoint=sp)
        want(zone.ac_status, 1.0, why)
        want(zone.cooling_setpoint, sp, why)
    elif mode == "break" and p.break_ac == "setup":
        want(zone.ac_status, 1.0, why_now)
        want(zone.cooling_setpoint, max(p.break_setpoint, floor) + offset, why_now)
    elif p.unoccupied == "setup" and mode == "unoccupied":
        want(zone.ac_status, 1.0, reason("setup"))
        want(zone.cooling_setpoint, p.setup_setpoint, reason("setup"))
    else:
        want(zone.ac_status, 0.0, why_now)
        want(zone.cooling_setpoint, max(occupied_sp, floor), why_now)

    if p.lighting:
        lit = current is not None
        swept = any(_end(q, day) <= now < _end(q, day) + dt.timedelta(minutes=p.sweep_after_min)
                    for q in periods)
        dim = p.corridor_percent if zone.kind == "corridor" else 100.0
        if lit or swept:
            why = reason("occupied") if lit else reason("sweep", minutes=p.sweep_after_min)
            want(zone.lighting, 1.0, why + reason("corridor", percent=dim) if dim < 100 else why)
            want(zone.lighting_level, dim, why)
        else:
            want(zone.lighting, 0.0, reason("lights_off"))
            want(zone.lighting_level, dim, reason("unoccupied"))

    if overrides:
        for i, it in enumerate(intents):
            ov = overrides.get(it.point)
            if ov is not None:
                intents[i] = WriteIntent(it.point, ov.value, override_reason(site, ov),
                                         "override")
                mode = "override"
    return ZoneDecision(zone.id, mode, tuple(intents))


def plan(site: Site, calendar: SiteCalendar, values: dict[str, float | None], now: dt.datetime,
         learned: Learned, level: int = 0, overrides: list[Override] | None = None,
         now_aware: dt.datetime | None = None,
         commissioning: Commissioning | None = None) -> list[ZoneDecision]:
    """Every zone's decision at local time `now`. Overrides that have expired (against
    `now_aware`, or `now` in the site's zone) are ignored. `commissioning`: in force, its
    tests of the day replace the zones' occupied setpoints and cool-down starts."""
    aware = now_aware or now.replace(tzinfo=site.tz)
    live = {o.point: o for o in (overrides or []) if o.expires_at > aware}
    if not site.strategies.occupancy:
        return []
    extra = stagger(site, calendar, values, now, learned)
    tests = tests_for_day(site, calendar, commissioning, now.date())
    decisions = [plan_zone(site, calendar, z, values, now, learned, level, extra.get(z.id, 0.0),
                           live, tests.get(z.id)) for z in site.zones]
    if not site.strategies.outdoor_air:
        return decisions
    return decisions + outdoor_air(site, decisions, live, values)


def outdoor_air(site: Site, decisions: list[ZoneDecision], overrides: dict[str, Override],
                values: dict[str, float | None]) -> list[ZoneDecision]:
    """An air handler brings in outdoor air while someone is there, and while it cools down an
    empty floor only if that air is cooler than the zones (free cooling): otherwise, in a humid
    climate, outdoor air is most of the pre-cooling load."""
    outdoor = [values.get(p.id) for p in site.points if p.kind == "outdoor_temperature"]
    t_out = next((t for t in outdoor if t is not None), None)
    out = []
    by_zone = {d.zone: d for d in decisions}
    for p in site.points:
        if p.kind != "outdoor_air":
            continue
        zones = [z for z in site.zones
                 if any(site.point(q).device == p.device for q in z.points().values())]
        busy = [z.id for z in zones if by_zone[z.id].mode in ("occupied", "idle", "early-stop",
                                                               "override")]
        cooling = [z for z in zones if by_zone[z.id].mode == "cooldown"]
        temps = [values.get(z.temperature) for z in cooling if z.temperature]
        free = (t_out is not None and temps and all(t is not None for t in temps)
                and t_out <= min(temps) - 2.0 and t_out <= site.strategies.free_cooling_max_c)
        if busy:
            why, on = reason("outdoor_air", zones=", ".join(busy)), True
        elif free:
            why, on = reason("free_cooling", outdoor=t_out), True
        else:
            why, on = reason("outdoor_air_shut"), False
        intent = WriteIntent(p.id, 1.0 if on else 0.0, why)
        ov = overrides.get(p.id)
        if ov is not None:
            intent = WriteIntent(p.id, ov.value, override_reason(site, ov, note=False),
                                 "override")
        out.append(ZoneDecision(p.id, "outdoor-air", (intent,)))
    return out


def stagger(site: Site, calendar: SiteCalendar, values: dict[str, float | None],
            now: dt.datetime, learned: Learned) -> dict[str, float]:
    """Extra lead (hours) so that no two zones start cooling down within `stagger_min` of each
    other: the latest natural start keeps its time, each earlier one moves back if needed."""
    gap = dt.timedelta(minutes=site.strategies.stagger_min)
    starts = []
    for z in site.zones:
        periods = calendar.periods(z.schedule, now.date()) if z.schedule else []
        if not periods or _at(now.date(), periods[0].start) <= now:
            continue  # only the first start of the day is staggered
        t = values.get(z.temperature) if z.temperature else None
        natural = _at(now.date(), periods[0].start) - dt.timedelta(
            hours=natural_lead_h(site, z, t, learned))
        starts.append((natural, z.id))
    extra: dict[str, float] = {}
    prev = None
    for natural, zid in sorted(starts, reverse=True):
        start = natural if prev is None else min(natural, prev - gap)
        extra[zid] = (natural - start).total_seconds() / 3600
        prev = start
    return extra


def intents_of(decisions: list[ZoneDecision]) -> list[WriteIntent]:
    return [i for d in decisions for i in d.intents]


def learn(site: Site, learned: Learned, before: dict[str, float | None],
          after: dict[str, float | None], hours: float, day: dt.date) -> None:
    """Update cooling / warming rates from two consecutive snapshots `hours` apart."""
    p = site.strategies
    for z in site.zones:
        if not z.temperature or not z.ac_status:
            continue
        t0, t1 = before.get(z.temperature), after.get(z.temperature)
        ac = before.get(z.ac_status)
        if t0 is None or t1 is None or ac is None or hours <= 0:
            continue
        rate = (t0 - t1) / hours if ac > 0.5 else (t1 - t0) / hours
        sp = before.get(z.cooling_setpoint) if z.cooling_setpoint else None
        if ac > 0.5 and sp is not None and t0 > sp + 0.3 and rate > 0:
            learned.record("cool", z.id, day, rate, p.learn_days)
        elif ac <= 0.5 and rate > 0:
            learned.record("warm", z.id, day, rate, p.learn_days)
