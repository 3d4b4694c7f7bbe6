"""Commissioning: a design that varies each floor's setpoint and cool-down start within the
legal range, through the decision path; hostile limits and stored state; the CLI."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections import Counter

import pytest

from bems.calendar import SiteCalendar
from bems.decision import decide
from bems.state import COMMISSIONING
from bems.strategies import commissioning as trial
from bems.strategies.commissioning import Commissioning, CommissioningError
from bems.strategies.plan import Learned, plan

MON = dt.date(2026, 7, 6)
NOW = dt.datetime(2026, 7, 3, 9, 0, tzinfo=dt.timezone.utc)  # a Friday, before it starts


def _setpoints(decisions, site) -> dict[str, tuple[float, str]]:
    sps = {z.cooling_setpoint: z.id for z in site.zones if z.cooling_setpoint}
    return {sps[i.point]: (i.value, i.reason) for d in decisions for i in d.intents
            if i.point in sps}


def test_every_floor_gets_every_setpoint_and_every_start_equally_often(site):
    c = Commissioning(MON, 14)
    rows = trial.table(site, SiteCalendar(site), c)
    assert rows and rows[0]["day"] == MON
    for f in trial.floors(site):
        tests = [t for r in rows for g, t in r["floors"] if g == f]
        assert len(tests) >= 10  # two working weeks
        sps = Counter(t.setpoint for t in tests)
        leads = Counter(t.lead_h for t in tests)
        assert set(sps) == set(trial.SETPOINTS) and max(sps.values()) - min(sps.values()) <= 2
        assert set(leads) == set(trial.LEADS_H)
    # the building's meter sees the setpoint: one per day for every floor, all four levels
    # equally often over the building's working days
    per_day = [{t.setpoint for _f, t in r["floors"]} for r in rows]
    assert all(len(s) == 1 for s in per_day)
    days = Counter(s.pop() for s in per_day)
    assert set(days) == set(trial.SETPOINTS) and max(days.values()) - min(days.values()) <= 1
    assert [t.day for _f, t in (r["floors"][0] for r in rows)] == list(range(1, len(rows) + 1))
    # the floors start at different times on the same day, and the start does not follow
    # the setpoint
    first = rows[0]["floors"]
    assert len({t.lead_h for _f, t in first}) == len(first)
    pairs = {(t.setpoint, t.lead_h) for r in rows for _f, t in r["floors"]}
    assert len(pairs) >= 12
    # every zone of a floor has its floor's test
    cal = SiteCalendar(site)
    for r in rows:
        for f, t in r["floors"]:
            for z in site.zones:
                if z.floor == f and z.cooling_setpoint:
                    zt = trial.test_for(site, cal, c, z, r["day"])
                    assert zt is None or (zt.setpoint, zt.lead_h) == (t.setpoint, t.lead_h)


def test_a_commissioning_day_sets_the_setpoint_and_the_start_and_says_why(site):
    cal = SiteCalendar(site)
    c = Commissioning(MON, 14)
    z = next(z for z in site.zones if z.floor == trial.floors(site)[0] and z.cooling_setpoint
             and z.kind == "office")
    t = trial.test_for(site, cal, c, z, MON)
    start = cal.periods(z.schedule, MON)[0].start
    at = lambda m: dt.datetime.combine(MON, start) - dt.timedelta(minutes=m)  # noqa: E731
    temps = {q.temperature: 27.5 for q in site.zones if q.temperature}
    before = plan(site, cal, temps, at(t.lead_h * 60 + 15), Learned(), commissioning=c)
    after = plan(site, cal, temps, at(t.lead_h * 60 - 1), Learned(), commissioning=c)
    mode = {d.zone: d.mode for d in before}, {d.zone: d.mode for d in after}
    assert mode[0][z.id] == "unoccupied" and mode[1][z.id] == "cooldown"
    work = dt.datetime.combine(MON, start) + dt.timedelta(hours=1)
    d = {x.zone: x for x in plan(site, cal, {**temps, z.temperature: t.setpoint + 0.2}, work,
                                 Learned(), commissioning=c)}[z.id]
    sp = next(i for i in d.intents if i.point == z.cooling_setpoint)
    assert d.mode == "occupied" and sp.value == t.setpoint
    assert "commissioning" in sp.reason.codes() and f"day 1 of {t.days}" in sp.reason
    # the comfort guard: a room not held is cooled to the floor
    hot = {x.zone: x for x in plan(site, cal, {**temps, z.temperature: 27.2}, work,
                                   Learned(), commissioning=c)}[z.id]
    sp = next(i for i in hot.intents if i.point == z.cooling_setpoint)
    assert sp.value == 25.0 and "commissioning_guard" in sp.reason.codes()
    # the day after it: the rule set's own setpoint, no test
    over = dt.datetime.combine(c.end + dt.timedelta(days=1), start) + dt.timedelta(hours=1)
    while not cal.periods(z.schedule, over.date()):
        over += dt.timedelta(days=1)
    sp = _setpoints(plan(site, cal, temps, over, Learned(), commissioning=c), site)[z.id]
    assert sp[0] == site.strategies.occupied_setpoint and "commissioning" not in sp[1]


def test_a_commissioning_never_writes_outside_the_legal_range_or_a_zones_limits(site):
    """Hostile limits, demand levels, hot and cold rooms, every quarter hour of 14 days:
    every setpoint a tested zone gets is within 25-26.5 °C, its own limits and the floor."""
    zones = list(site.zones)
    narrow = {zones[0].id: (25.3, 25.8), zones[1].id: (20.0, 24.0),  # 24: no legal value
              zones[2].id: (26.2, 30.0)}
    hostile = dataclasses.replace(site, zones=tuple(
        dataclasses.replace(z, setpoint_min=narrow[z.id][0], setpoint_max=narrow[z.id][1])
        if z.id in narrow else z for z in zones),
        strategies=dataclasses.replace(site.strategies, occupied_setpoint=29.0,
                                       peak_target_kw=1.0, dither_k=0.5))
    assert trial.legal_range(hostile, hostile.zones[1]) is None
    cal = SiteCalendar(hostile)
    c = Commissioning(MON, 14)
    rnd = random.Random(5)
    t = dt.datetime.combine(MON, dt.time(0))
    tested = 0
    while t < dt.datetime.combine(c.end, dt.time(0)):
        temps = {z.temperature: rnd.uniform(18.0, 34.0) for z in hostile.zones if z.temperature}
        for d in plan(hostile, cal, temps, t, Learned(), level=rnd.randint(0, 3),
                      commissioning=c):
            z = next((q for q in hostile.zones if q.id == d.zone), None)
            for i in d.intents:
                if z is None or i.point != z.cooling_setpoint or i.source != "strategy":
                    continue
                assert i.value >= 25.0
                if "commissioning" in i.reason.codes():
                    low, high = trial.legal_range(hostile, z)
                    assert low <= i.value <= high, (z.id, t, i.value, str(i.reason))
                    assert 25.0 <= i.value <= 26.5 and z.id != zones[1].id
                    tested += 1
        t += dt.timedelta(minutes=15)
    assert tested > 1000


def test_it_decides_through_the_decision_path_whatever_the_mode(site, store):
    first = MON
    c = trial.start(store, site, first, 14, "admin1", NOW)
    assert store.audit_rows()[0]["action"] == "commissioning.start"
    z = next(z for z in site.zones if z.cooling_setpoint and z.kind == "office")
    t = trial.test_for(site, SiteCalendar(site), c, z, first)
    at = dt.datetime.combine(first, dt.time(10, 0)).replace(tzinfo=site.tz)
    store.insert_readings([(z.temperature, at - dt.timedelta(minutes=5), t.setpoint)])
    predictive = dataclasses.replace(site, strategies=dataclasses.replace(
        site.strategies, mode="predictive"))
    for s in (site, predictive):
        d = decide(s, store, at)
        assert d.strategy == "commissioning"
        assert _setpoints(d.zones, s)[z.id][0] == t.setpoint
    # the day before it, and after a stop: the strategy set decides
    assert decide(site, store, at - dt.timedelta(days=3)).strategy == "rules"
    trial.stop(store, "admin1", NOW)
    assert decide(site, store, at).strategy == "rules"
    assert [r["action"] for r in store.audit_rows()][:2] == ["commissioning.stop",
                                                           "commissioning.start"]


@pytest.mark.parametrize("days", [6, 29, 0, -14, "14", 14.0, True, float("nan"), 1e300, None])
def test_a_bad_length_changes_nothing(site, store, days):
    with pytest.raises(CommissioningError) as err:
        trial.start(store, site, MON, days, "admin1", NOW)
    assert err.value.code == "days_invalid"
    assert store.get(COMMISSIONING) == {} and store.audit_rows() == []


def test_a_start_in_the_past_or_far_ahead_or_on_a_site_it_cannot_test_is_refused(site, store):
    for first in (NOW.date() - dt.timedelta(days=1), NOW.date() + dt.timedelta(days=61)):
        with pytest.raises(CommissioningError) as err:
            trial.start(store, site, first, 14, "admin1", NOW)
        assert err.value.code == "start_invalid"
    tight = dataclasses.replace(site, zones=tuple(dataclasses.replace(z, setpoint_max=24.0)
                                                  for z in site.zones))
    with pytest.raises(CommissioningError) as err:
        trial.start(store, tight, MON, 14, "admin1", NOW)
    assert err.value.code == "no_zone" and store.get(COMMISSIONING) == {}


@pytest.mark.parametrize("stored", [
    {"start": "2026-07-06", "days": 1000}, {"start": "2026-02-31", "days": 14},
    {"start": "x" * 10_000, "days": 14}, {"start": "2026-07-06", "days": True},
    {"start": "2026-07-06", "days": "14"}, {"days": 14}, {"start": "2026-07-06"}, [], "x",
])
def test_a_stored_commissioning_written_around_the_ui_is_ignored(site, store, stored):
    store.put(COMMISSIONING, stored) if isinstance(stored, dict) else None
    assert Commissioning.from_json(stored) is None
    at = dt.datetime.combine(MON, dt.time(10, 0)).replace(tzinfo=site.tz)
    assert decide(site, store, at).strategy == "rules"


def test_the_dither_varies_the_occupied_setpoint_never_under_the_floor(site):
    cal = SiteCalendar(site)
    z = next(z for z in site.zones if z.cooling_setpoint and z.kind == "office")
    values = set()
    for k in (0.25, 0.5):
        s = dataclasses.replace(site, strategies=dataclasses.replace(
            site.strategies, dither_k=k, occupied_setpoint=25.25))
        for m in range(0, 8 * 60, 30):
            at = dt.datetime.combine(MON, dt.time(8, 0)) + dt.timedelta(minutes=m)
            temps = {q.temperature: 25.4 for q in s.zones if q.temperature}
            sp = _setpoints(plan(s, cal, temps, at, Learned()), s)[z.id][0]
            again = _setpoints(plan(s, cal, temps, at, Learned()), s)[z.id][0]
            assert sp == again and sp >= 25.0 and abs(sp - 25.25) <= k + 1e-9
            values.add(sp)
    assert len(values) >= 3
    assert trial.dither(z, dt.datetime(2026, 7, 6, 9), 0.0) == 0.0
    # at night nothing varies (nothing is rewritten for it)
    s = dataclasses.replace(site, strategies=dataclasses.replace(site.strategies, dither_k=0.5))
    night = {_setpoints(plan(s, cal, {z.temperature: 28.0}, dt.datetime.combine(
        MON, dt.time(19)) + dt.timedelta(minutes=m), Learned()), s)[z.id][0]
        for m in range(0, 4 * 60, 30)}
    assert night == {site.strategies.occupied_setpoint}


def test_the_cli_starts_shows_and_stops_it(runner, tmp_path, site_file):
    """The CLI's day is today's (the command has no clock option): the first day is
    tomorrow, whatever day the test runs."""
    from bems.cli import main
    from bems.config import load_site
    from bems.storage import Store

    db = str(tmp_path / "c.sqlite")
    common = ["--site", str(site_file), "--db", db]
    for days, hint in (("nan", "--days"), ("1e300", "--days"), ("6", "--days"),
                       ("14.5", "--days")):
        r = runner.invoke(main, ["commissioning", "start", "--days", days, *common])
        assert r.exit_code == 2 and hint in r.output and len(r.output.splitlines()) == 1
    r = runner.invoke(main, ["commissioning", "start", "--from", "2026-02-31", *common])
    assert r.exit_code == 2 and "--from" in r.output
    r = runner.invoke(main, ["commissioning", "start", "--from", "2000-01-03", *common])
    assert r.exit_code == 1 and "first day" in r.output and "Traceback" not in r.output
    r = runner.invoke(main, ["commissioning", "start", "--days", "7", *common])
    assert r.exit_code == 0, r.output
    site = load_site(site_file)
    with Store(db) as s:
        c = trial.current(s)
        assert c.days == 7 and c.by.startswith("cli")
        assert c.start == dt.datetime.now(site.tz).date() + dt.timedelta(days=1) or \
            c.start == dt.datetime.now(site.tz).date()  # midnight passed in between
    r = runner.invoke(main, ["commissioning", "status", *common])
    assert r.exit_code == 0 and "floor 1:" in r.output and " °C, " in r.output
    r = runner.invoke(main, ["commissioning", "stop", *common])
    assert r.exit_code == 0 and "stopped" in r.output
    with Store(db) as s:
        assert trial.current(s) is None


@pytest.mark.energyplus
@pytest.mark.integration
def test_the_closed_loop_commissions_through_the_writer_within_the_legal_range(site, tmp_path):
    """A commissioning day in the closed loop (the runtime, the decision path, the Writer, the
    EnergyPlus centre): every setpoint BEMS wrote while people were there is the floor's test
    of the day (or the floor, where the comfort guard acted), in 25-26.5 °C; the decision path
    reading the loop's store from another connection decides the same."""
    from bems.storage import Store
    from connectors.simulator.closedloop import simulate

    db = tmp_path / "loop.sqlite"
    cal = SiteCalendar(site)
    c = Commissioning(MON, 7)
    tests = {z.cooling_setpoint: trial.test_for(site, cal, c, z, MON) for z in site.zones
             if z.cooling_setpoint}
    seen: list = []
    same: list = []

    def check(now, d) -> None:
        local = now.astimezone(site.tz)
        if local.date() == MON and local.time() == dt.time(10, 0) and not same:
            with Store(db, site.timezone, migrate=False) as other:
                again = decide(site, other, now)
            same.append(sorted((i.point, i.value) for i in d.intents) ==
                        sorted((i.point, i.value) for i in again.intents))
        if d.strategy == "commissioning" and 9 <= local.hour < 11 and local.date() == MON:
            seen.extend((i.point, i.value, i.reason) for i in d.intents if i.point in tests)

    k = simulate(site, MON, 1, "rules", warmup_days=0, db=db, on_decision=check,
                 commissioning_days=7)
    assert same == [True] and seen and k.as_dict()["policy_violations"] == 0
    for point, value, why in seen:
        t = tests[point]
        if t is None:
            continue
        assert 25.0 <= value <= 26.5
        assert value == t.setpoint or "commissioning_guard" in why.codes(), (point, value, why)
    assert {v for _p, v, _w in seen} >= {t.setpoint for t in tests.values() if t} - {25.0}
    with Store(db) as store:
        done = [w for w in store.writes(sources=["strategy"], outcomes=["done"])
                if w.point in tests]
        assert done and all(25.0 <= float(w.value) <= 30.0 for w in done if w.action == "write")
        assert store.held_writes() == []
