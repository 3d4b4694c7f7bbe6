"""Strategies against fixed snapshots and clocks; schedules and overrides; the closed loop."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from bems.calendar import SiteCalendar
from bems.overrides import OverrideError, add_override
from bems.schedules import ScheduleError, effective_site, from_dict, save, to_dict
from bems.strategies.plan import Learned, Override, demand_level, intents_of, plan

TUE = dt.date(2026, 7, 7)


def _at(day: dt.date, hhmm: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmm))


def _decide(site, when, temp=27.0, values=None, level=0, overrides=None, learned=None):
    vals = {z.temperature: temp for z in site.zones}
    vals.update(values or {})
    return {d.zone: d for d in plan(site, SiteCalendar(site), vals, when, learned or Learned(),
                                    level, overrides)}


def _value(decision, point):
    return next(i.value for i in decision.intents if i.point == point)


def test_occupied_setpoint_never_below_the_policy_floor(site):
    low = dataclasses.replace(site, strategies=dataclasses.replace(site.strategies,
                                                                   occupied_setpoint=23.0))
    d = _decide(low, _at(TUE, "09:00"), temp=25.5)["f2.p1"]
    assert d.mode == "occupied"
    assert _value(d, "f2.p1.sp") == 25.0  # the floor (Joint Circular 111), not 23
    assert _value(d, "f2.p1.ac") == 1.0
    strict = dataclasses.replace(low, control=dataclasses.replace(
        low.control, policy_min_cooling_setpoint=26.0))
    assert _value(_decide(strict, _at(TUE, "09:00"), temp=26.5)["f2.p1"], "f2.p1.sp") == 26.0


def test_schedule_edges_and_reasons(site):
    z = "f3.p2"
    assert _decide(site, _at(TUE, "06:59"), temp=24.0)[z].mode in ("cooldown", "unoccupied")
    assert _decide(site, _at(TUE, "07:00"))[z].mode == "occupied"
    assert _decide(site, _at(TUE, "11:29"))[z].mode == "occupied"
    brk = _decide(site, _at(TUE, "12:00"), temp=26.0)[z]
    assert brk.mode == "break" and _value(brk, "f3.p2.ac") == 0.0  # lunch: AC off
    setup = dataclasses.replace(site, strategies=dataclasses.replace(site.strategies,
                                                                     break_ac="setup"))
    brk = _decide(setup, _at(TUE, "12:00"), temp=26.0)[z]
    assert _value(brk, "f3.p2.ac") == 1.0 and _value(brk, "f3.p2.sp") == 28.0
    assert _decide(site, _at(TUE, "17:00"))[z].mode == "unoccupied"
    off = _decide(site, _at(TUE, "20:00"))[z]
    assert _value(off, "f3.p2.ac") == 0.0 and _value(off, "f3.p2.light") == 0.0
    lit = _decide(site, _at(TUE, "09:00"))[z]
    assert _value(lit, "f3.p2.light") == 1.0
    sweep = _decide(site, _at(TUE, "17:05"))[z]
    assert _value(sweep, "f3.p2.light") == 1.0 and "sweep" in sweep.intents[-1].reason
    assert _value(_decide(site, _at(TUE, "17:15"))[z], "f3.p2.light") == 0.0


def test_holidays_weekends_and_makeup_saturdays(site):
    z = "f2.p3"
    assert _decide(site, _at(dt.date(2026, 9, 2), "09:00"))[z].mode == "unoccupied"  # holiday
    assert _decide(site, _at(dt.date(2026, 7, 11), "09:00"))[z].mode == "unoccupied"  # Sat
    makeup = _decide(site, _at(dt.date(2026, 8, 22), "09:00"))[z]  # make-up Saturday
    assert makeup.mode == "occupied"
    # the one-stop desk opens on ordinary Saturday mornings, the offices do not
    sat = _decide(site, _at(dt.date(2026, 7, 11), "09:00"))
    assert sat["f1.core"].mode == "occupied" and sat["f1.p1"].mode == "unoccupied"


def test_optimal_start_learns_and_starts_as_late_as_possible(site):
    site = dataclasses.replace(site, strategies=dataclasses.replace(site.strategies,
                                                                    stagger_min=0.0))
    z = "f2.p1"
    slow, fast = Learned(), Learned()
    for day in ("2026-07-04", "2026-07-05", "2026-07-06"):
        slow.record("cool", z, dt.date.fromisoformat(day), 1.0, 3)
        fast.record("cool", z, dt.date.fromisoformat(day), 4.0, 3)
    # 29 °C to the 25.5 °C pre-cool: 3.5 K; the margin triples the estimate; capped at 5 h
    at_0400 = _at(TUE, "04:00")
    assert _decide(site, at_0400, 29.0, learned=slow)[z].mode == "cooldown"
    assert _decide(site, at_0400, 29.0, learned=fast)[z].mode == "unoccupied"
    d = _decide(site, _at(TUE, "06:00"), 29.0, learned=fast)[z]
    assert d.mode == "cooldown" and "cools 4.0 K/h" in d.intents[0].reason
    assert _decide(site, _at(TUE, "06:00"), 26.0, learned=fast)[z].mode == "unoccupied"


def test_zone_starts_are_staggered(site):
    from bems.strategies.plan import stagger

    extra = stagger(site, SiteCalendar(site), {z.temperature: 27.0 for z in site.zones},
                    _at(TUE, "04:00"), Learned())
    offices = [z.id for z in site.zones if z.schedule == "office"]
    starts = sorted(extra[z] for z in offices)
    assert starts[0] == 0.0
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert all(g == pytest.approx(site.strategies.stagger_min / 60) for g in gaps)


def test_early_stop_only_when_the_zone_stays_in_band(site):
    z = "f3.p4"
    cool = _decide(site, _at(TUE, "16:45"), temp=25.5)[z]
    assert cool.mode == "early-stop" and _value(cool, "f3.p4.ac") == 0.0
    warm = _decide(site, _at(TUE, "16:45"), temp=26.6)[z]
    assert warm.mode == "occupied"
    assert _decide(site, _at(TUE, "15:00"), temp=24.0)[z].mode != "early-stop"


def test_demand_levels_raise_setpoints_with_hysteresis(site):
    sp = dataclasses.replace(site.strategies, peak_target_kw=200.0)
    assert demand_level(sp, 150.0, None, 0) == 0
    assert demand_level(sp, 181.0, None, 0) == 1
    assert demand_level(sp, 150.0, 195.0, 0) == 2  # the forecast for the next hour counts
    assert demand_level(sp, 205.0, None, 0) == 3
    assert demand_level(sp, 175.0, None, 3) == 3  # holds until under 85 %
    assert demand_level(sp, 160.0, None, 3) == 0
    assert demand_level(site.strategies, 999.0, None, 0) == 0  # no target: idle
    d = _decide(site, _at(TUE, "09:00"), temp=27.5, level=2)["f1.p1"]
    assert _value(d, "f1.p1.sp") == 27.0 and "level 2" in d.intents[0].reason


def test_overrides_win_until_they_expire(site):
    now = _at(TUE, "09:00")
    aware = now.replace(tzinfo=site.tz)
    ov = Override("f1.p1.sp", 25.0, aware + dt.timedelta(hours=1), "lan", "meeting")
    d = _decide(site, now, overrides=[ov])["f1.p1"]
    assert d.mode == "override"
    assert _value(d, "f1.p1.sp") == 25.0
    it = next(i for i in d.intents if i.point == "f1.p1.sp")
    assert it.source == "override" and "lan" in it.reason
    later = _decide(site, now + dt.timedelta(hours=2), overrides=[ov])["f1.p1"]
    assert later.mode == "occupied" and _value(later, "f1.p1.sp") == 26.0


def test_outdoor_air_only_for_people_or_free_cooling(site):
    d = _decide(site, _at(TUE, "06:30"), temp=29.0, values={"outdoor.temp": 27.0})
    assert _value(d["f2.oa"], "f2.oa") == 0.0  # pre-cooling an empty floor with humid air: no
    d = _decide(site, _at(TUE, "06:30"), temp=29.0, values={"outdoor.temp": 18.0})
    assert _value(d["f2.oa"], "f2.oa") == 1.0  # cool outdoor air: free cooling
    d = _decide(site, _at(TUE, "09:00"), temp=26.0, values={"outdoor.temp": 33.0})
    assert _value(d["f2.oa"], "f2.oa") == 1.0  # people in: ventilate


def test_every_intent_is_a_writable_point_with_a_reason(site):
    for hhmm in ("05:30", "06:45", "09:00", "12:00", "16:50", "22:00"):
        for it in intents_of(list(_decide(site, _at(TUE, hhmm)).values())):
            p = site.point(it.point)
            assert p.writable and it.reason


def test_edited_schedule_takes_effect_and_bad_edits_change_nothing(site, store):
    office = to_dict(site.schedule("office"))
    office["seasons"][0]["periods"][0]["start"] = "08:00"
    save(store, site, from_dict("office", office), "lan", dt.datetime(2026, 7, 1,
                                                                        tzinfo=dt.timezone.utc))
    eff = effective_site(site, store)
    assert _decide(eff, _at(TUE, "07:30"), temp=26.0)["f2.p1"].mode != "occupied"
    assert _decide(eff, _at(TUE, "08:10"))["f2.p1"].mode == "occupied"
    bad = to_dict(site.schedule("office"))
    bad["seasons"][0]["periods"][0]["end"] = "06:00"  # before its start
    bad["seasons"][0]["periods"].append({"days": ["mon"], "start": "10:00", "end": "14:00"})
    with pytest.raises(ScheduleError) as info:
        from_dict("office", bad)
    codes = {c for _, c in info.value.problems}
    assert codes == {"end_before_start", "overlap"}
    assert effective_site(site, store).schedule("office") == eff.schedule("office")


def test_overrides_are_validated(site, store):
    now = dt.datetime(2026, 7, 7, 2, 0, tzinfo=dt.timezone.utc)
    with pytest.raises(OverrideError) as e:
        add_override(site, store, "f1.p1.sp", 31.0, now + dt.timedelta(hours=1), "u", "", now)
    assert e.value.code == "out_of_limits"  # the zone allows 24..30
    with pytest.raises(OverrideError) as e:
        add_override(site, store, "f1.p1.sp", 25.0, now - dt.timedelta(hours=1), "u", "", now)
    assert e.value.code == "expiry_past"
    with pytest.raises(OverrideError):
        add_override(site, store, "f1.p1.temp", 25.0, now + dt.timedelta(hours=1), "u", "", now)
    assert store.overrides() == []
    oid = add_override(site, store, "f1.p1.sp", 25.0, now + dt.timedelta(hours=1), "u", "x", now)
    assert [o["id"] for o in store.overrides(active_at=now)] == [oid]
    assert store.overrides(active_at=now + dt.timedelta(hours=2)) == []


@pytest.mark.energyplus
def test_closed_loop_saves_energy_without_discomfort_or_violations(site):
    from connectors.simulator.closedloop import simulate

    base = simulate(site, dt.date(2026, 7, 6), 3, "baseline").as_dict()
    bems = simulate(site, dt.date(2026, 7, 6), 3, "bems").as_dict()
    assert bems["hvac_kwh"] < 0.9 * base["hvac_kwh"]
    assert bems["lighting_kwh"] < base["lighting_kwh"]
    assert bems["peak_kw"] < base["peak_kw"]
    assert bems["tdis_kh_per_zone"] <= base["tdis_kh_per_zone"] + 0.1
    assert bems["policy_violations"] == 0 and base["policy_violations"] > 0


@pytest.mark.energyplus
@pytest.mark.parametrize("strategy", ["rules", pytest.param("predictive",
                                                           marks=pytest.mark.slow)])
def test_the_closed_loop_decides_as_a_runtime_would_from_the_same_store(site, tmp_path,
                                                                         strategy):
    """One path: the closed loop is BEMS's runtime in lock step with the model. At moments of
    a working day (before work, the cool-down, occupied, lunch, closing), what it decided equals
    what the one decision path gives from the same store at that time, read by another
    connection (`bems strategies dry-run --at`, or a `bems run` started then); and what it
    wrote is in the ledger, through the Writer."""
    from bems.decision import decide
    from bems.storage import Store
    from connectors.simulator.closedloop import simulate

    db = tmp_path / "loop.sqlite"
    moments = {dt.time(h, m) for h, m in ((5, 0), (6, 30), (9, 0), (12, 15), (17, 30))}
    checked: list = []

    def compare(now, d) -> None:
        local = now.astimezone(site.tz)
        if local.date() != dt.date(2026, 7, 7) or local.time() not in moments or \
                any(c[0] == now for c in checked):
            return
        with Store(db, site.timezone, migrate=False) as other:
            again = decide(dataclasses.replace(site, strategies=dataclasses.replace(
            site.strategies, mode=strategy)), other, now)
        mine = sorted((i.point, i.value, i.reason) for i in d.intents)
        theirs = sorted((i.point, i.value, i.reason) for i in again.intents)
        checked.append((now, mine == theirs, mine, theirs))

    simulate(site, dt.date(2026, 7, 7), 1, strategy,
             warmup_days=1 if strategy == "rules" else 4, db=db, on_decision=compare)
    assert len(checked) == len(moments), [c[0] for c in checked]
    for now, same, mine, theirs in checked:
        assert same, (now, set(mine) ^ set(theirs))
    with Store(db) as store:  # every write through the Writer, and released at the end
        writes = store.writes(sources=["strategy"], outcomes=["done"])
        assert writes and store.held_writes() == []
        assert {w.point for w in store.writes() if w.action == "release"}


@pytest.mark.bacnet
@pytest.mark.energyplus
def test_closed_loop_through_bacnet_writes_and_releases(site, tmp_path):
    """The rule set in the runtime against the virtual centre over BACnet/IP, in lock step
    (tests/bacnet_helpers.LockStep): each 15-minute step polled and decided before the next
    (paced side by side by two clocks, a loaded machine once missed the cool-down)."""
    from bems.runtime import Runtime
    from tests.bacnet_helpers import LockStep, RunningCentre, quick_site
    from devtools.ports import free_port

    qsite = quick_site(site)
    ref: list = []
    lock = LockStep(ref, dt.datetime(2026, 7, 7, 7, 30))
    rc = RunningCentre(qsite, dt.datetime(2026, 7, 7, 6, 0), speed=0, paused=True,
                       on_step=lock)
    centre = rc.start()
    rt = Runtime(qsite, tmp_path / "rt.sqlite", bacnet_port=free_port(), poll_interval_s=3600,
                 strategy_interval_s=3600, heartbeat_s=3600,
                 clock=lambda: centre.sim_now.replace(tzinfo=qsite.tz))
    try:
        rt.start()
        ref.append(rt)
        rc.go()
        assert lock.reached.wait(180), "the centre never reached 07:30"
        assert not lock.errors, lock.errors
        for z in ("f2.p1", "f3.p4"):
            assert centre.devices.priority_array(f"{z}.sp") == {12: 26.0}
            assert centre.devices.priority_array(f"{z}.light") == {12: 1.0}
        assert centre.devices.priority_array("f2.oa") == {12: 1.0}
        writes = rt.store.writes(sources=["strategy"], outcomes=["done"])
        assert writes and all(w.reason for w in writes)
        # setpoints written during the cool-down stay (a no-op write is skipped); the lights
        # come on with the occupancy; the cool-down's reason names the zone's temperature
        cool = [w for w in writes if w.reason.startswith("cool-down")]
        assert cool and any(w.point.endswith(".sp") for w in cool), \
            sorted({(w.point, w.reason[:40]) for w in writes})[:20]
        assert all("zone at" in w.reason for w in cool), {w.reason for w in cool}
        assert any(w.point == "f2.p1.light" and w.reason.startswith("occupied") for w in writes)
    finally:
        rt.stop()
        try:
            for p in ("f2.p1.sp", "f2.p1.ac", "f3.p4.light", "f2.oa", "bems.heartbeat"):
                assert centre.devices.priority_array(p) == {}
        finally:
            lock.release()
            rc.stop()


def test_a_zone_can_have_its_own_occupied_setpoint_but_not_below_the_floor(site):
    zones = tuple(dataclasses.replace(z, occupied_setpoint=26.5) if z.id == "f2.core" else
                  dataclasses.replace(z, occupied_setpoint=24.0) if z.id == "f2.p1" else z
                  for z in site.zones)
    s2 = dataclasses.replace(site, zones=zones)
    d = _decide(s2, _at(TUE, "09:00"), temp=27.5)
    assert _value(d["f2.core"], "f2.core.sp") == 26.5
    assert _value(d["f2.p1"], "f2.p1.sp") == 25.0  # the policy floor wins
    assert _value(d["f2.p2"], "f2.p2.sp") == 26.0


def test_cool_down_stores_cold_to_the_precool_setpoint_never_below_the_floor(site):
    d = _decide(site, _at(TUE, "06:50"), temp=27.0)["f2.p1"]
    assert d.mode == "cooldown" and _value(d, "f2.p1.sp") == 25.5
    low = dataclasses.replace(site, strategies=dataclasses.replace(site.strategies,
                                                                   precool_setpoint=23.0))
    assert _value(_decide(low, _at(TUE, "06:50"), temp=27.0)["f2.p1"], "f2.p1.sp") == 25.0
    assert _value(_decide(site, _at(TUE, "09:00"), temp=27.0)["f2.p1"], "f2.p1.sp") == 26.0
