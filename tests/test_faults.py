"""Fault detection: the rules on faults injected into the EnergyPlus centre (every rule family,
and the fault-free zone-days raising nothing), open-fdd's GL36 rules beside ours on the same
air-handler data, the faults store, the site file's [faults] and [[air_handlers]], the texts,
the CLI and the screens."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from bems.config import ConfigError, load_site, parse_site
from bems.faults import rules
from bems.faults.texts import TEXTS, fault_text
from bems.storage import Store
from tests.conftest import require_energyplus

WARMUP = 5
SCORED = 7
START = dt.date(2026, 7, 13)  # a Monday; the warm-up days before it are fault-free


def _plan():
    from connectors.simulator.faults import Injection

    d = [START + dt.timedelta(days=k) for k in range(SCORED)]
    return [
        Injection("ac_held_on", "f1.p1", d[0], 2), Injection("lights_left_on", "f1.p2", d[0], 1),
        Injection("sensor_bias", "f3.p3", d[0], 2), Injection("capacity_loss", "ahu2", d[0], 2),
        Injection("sensor_stuck", "f1.p3", d[1], 2), Injection("short_cycling", "f3.p1", d[1], 2),
        Injection("open_window", "f3.p2", d[1], 2), Injection("mixed_air_sensor", "ahu1", d[1], 2),
        Injection("empty_room_lights", "f2.p4", d[2], 2), Injection("meter_reset", "main", d[2], 1),
        Injection("plug_creep", "main", d[2], 2), Injection("oa_damper_stuck", "ahu3", d[2], 2),
        Injection("submeter_dropout", "lighting", d[3], 2),
        Injection("setpoint_held_low", "f2.p1", d[3], 2),
        Injection("return_air_sensor", "ahu3", d[3], 2),
        Injection("submeter_ct_ratio", "lighting", d[0], 1),
        # days 4 to 6: no fault anywhere (the controls)
    ]




@pytest.fixture(scope="module")
def injected(tmp_path_factory, site):
    """The centre run with BEMS's rule strategies in the loop and the faults above injected;
    what BEMS read stored in a real SQLite file; then the rules over the scored days."""
    require_energyplus()
    from bems.faults.engine import detect
    from connectors.simulator.closedloop import run_with_faults

    db = tmp_path_factory.mktemp("fdd") / "fdd.sqlite"
    store = Store(db, site.timezone)
    run_with_faults(site, START - dt.timedelta(days=WARMUP), WARMUP + SCORED, _plan(), store)
    t0 = dt.datetime.combine(START, dt.time(0), site.tz)
    found = detect(site, store, t0, t0 + dt.timedelta(days=SCORED))
    yield {"store": store, "found": found, "db": db}
    store.close()


def _utc(site, day: dt.date, hour: float = 0.0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), site.tz) + dt.timedelta(hours=hour)


@pytest.mark.energyplus
@pytest.mark.parametrize("kind", [i.kind for i in _plan()])
def test_each_injected_fault_is_found_by_its_rule_within_a_day(injected, site, kind):
    inj = next(i for i in _plan() if i.kind == kind)
    onset = _utc(site, inj.day, inj.onset_h)
    from connectors.simulator.faults import FAULT_TYPES

    hits = [f for f in injected["found"] if f.rule == FAULT_TYPES[kind].rule
            and (f.target == inj.target or (inj.target_kind == "meter" == f.target_kind))
            and onset <= f.detected <= onset + dt.timedelta(hours=24)]
    assert hits, (kind, [(f.rule, f.target, f.detected) for f in injected["found"]])
    f = hits[0]
    assert f.evidence["points"] and all(p in {q.id for q in site.points}
                                        for p in f.evidence["points"])
    text = fault_text(f.rule, f.evidence, f.target, "vi")
    assert text["title"] and "{" not in text["cause"] + text["check"]


@pytest.mark.energyplus
def test_fault_free_zone_days_and_days_raise_nothing(injected, site):
    plan = _plan()
    faulty = {(i.target, i.day) for i in plan}
    zone_ahu = {z: a.id for a in site.air_handlers for z in a.zones}
    days = [START + dt.timedelta(days=k) for k in range(SCORED)]
    quiet_days = {d for d in days if not any(i.day == d for i in plan)}
    assert len(quiet_days) == 3
    false = []
    for f in injected["found"]:
        day = f.first.astimezone(site.tz).date()
        if f.target_kind == "zone" and (f.target, day) not in faulty \
                and (zone_ahu.get(f.target), day) not in faulty:
            false.append(f)
        elif f.target_kind == "ahu" and (f.target, day) not in faulty:
            false.append(f)
        elif f.target_kind == "meter" and day in quiet_days:
            false.append(f)
    assert false == [], [(f.rule, f.target, f.first.astimezone(site.tz)) for f in false]
    # the old alarms, for contrast, were anything but quiet on those days
    from bems.status import alarms

    noisy = {a["kind"] for d in quiet_days for h in (8, 12, 16, 20)
             for a in alarms(site, injected["store"], _utc(site, d, h))}
    assert noisy, "the old alarms raise something on a fault-free day (out of band, after hours)"


@pytest.mark.energyplus
def test_open_fdd_gl36_rules_agree_with_ours_on_the_same_air_handler_data(injected, site):
    """GL36 FC2/FC3 (mixed air outside the return/outdoor envelope) and FC13 (supply air above
    its setpoint while cooling), open-fdd's implementation beside ours, on the air handlers'
    15-minute data from the injected run (a mixed-air sensor reading low on one unit, a coil
    short of capacity on another, a damper stuck open on the third). Thresholds set alike:
    ours in K, theirs in °F, sensor errors folded into one margin as ours are."""
    pd = pytest.importorskip("pandas")
    from open_fdd.rules.cookbook_catalog import fc2, fc3, fc13

    from bems.faults.engine import load

    th = rules.thresholds(site.faults)
    t0 = _utc(site, START)
    data = load(site, injected["store"], t0, t0 + dt.timedelta(days=SCORED), 0)
    outdoor = data.get(next(p.id for p in site.points if p.kind == "outdoor_temperature"))
    index = pd.date_range(data.time(0), periods=data.n, freq="15min")
    f = lambda c: c * 9 / 5 + 32  # noqa: E731  (open-fdd's canonical units)
    compared = 0
    for a in site.air_handlers:
        zs = [z for z in site.zones if z.id in a.zones]
        cooling = np.sum([(data.get(z.ac_status) > 0.5) & ~(np.round(data.get(z.ac_mode)) == 2)
                          for z in zs], axis=0) * 2 >= len(zs)
        d = pd.DataFrame({
            "mixed-air-temp": f(data.get(a.mixed_air_temperature)),
            "return-air-temp": f(data.get(a.return_air_temperature)),
            "outside-air-temp": f(outdoor),
            "discharge-air-temp": f(data.get(a.supply_air_temperature)),
            "discharge-air-temp-sp": f(data.get(a.supply_air_setpoint)),
            "fan-status": data.get(a.fan_status),
            "cooling-valve": cooling.astype(float),  # our units report cooling, not a valve
            "outside-air-damper": np.nan_to_num(data.get(a.outdoor_air), nan=1.0),
        }, index=index)
        mix = {"eps_mat": th["mat_error_k"] * 9 / 5, "eps_rat": 0.0, "eps_oat": 0.0,
               "mode_delay_min": 0.0}
        theirs = {
            "ahu_mixed_air_implausible": (fc2(d, mix, 900) | fc3(d, mix, 900)).to_numpy(bool),
            "ahu_supply_air_high": fc13(d, {"eps_sat": th["sat_error_k"] * 9 / 5,
                                            "mode_delay_min": 0.0}, 900).to_numpy(bool),
        }
        ours = {k: np.zeros(data.n, bool) for k in theirs}
        for x in injected["found"]:
            if x.target == a.id and x.rule in ours:
                i0 = int((x.first.timestamp() - data.t0) // 900)
                i1 = int((x.last.timestamp() - data.t0) // 900)
                ours[x.rule][i0:i1] = True
        fan_on = np.nan_to_num(data.get(a.fan_status)) > 0.5
        # the one designed difference: we wait an hour after the fan starts (GL36's mode
        # delay for a unit starting up) and ask a condition to last `reach_persist_h` before
        # it is a fault; open-fdd's raw masks flag single intervals
        since_start = np.zeros(data.n)
        for i in range(1, data.n):
            since_start[i] = since_start[i - 1] + 1 if fan_on[i] else 0
        settled = since_start > 4
        persist = int(th["reach_persist_h"] * 4)
        stuck = np.zeros(data.n, bool)  # where ours found the damper stuck open
        for x in injected["found"]:
            if x.target == a.id and x.rule == "ahu_outdoor_air_high":
                stuck[int((x.first.timestamp() - data.t0) // 900):
                      int((x.last.timestamp() - data.t0) // 900)] = True
        for rule, mask in theirs.items():
            if rule == "ahu_supply_air_high":  # the second designed difference: ours stands
                mask = mask & ~stuck  # down where the damper explains the warm supply air
            lasting = np.zeros(data.n, bool)
            for i0, i1 in rules.runs(mask & settled, persist):
                lasting[i0:i1] = True
            both, only_theirs, only_ours = (lasting & ours[rule]).sum(), \
                (lasting & ~ours[rule]).sum(), (ours[rule] & ~lasting).sum()
            assert only_theirs == 0 and only_ours == 0, (a.id, rule, both, only_theirs, only_ours)
            compared += int(both)
            print(f"GL36 {a.id} {rule}: both {both}, open-fdd only {only_theirs}, ours only {only_ours}")
    assert compared > 0, "neither implementation flagged anything: nothing was compared"


# --- fast tier: the store, the site file, the texts, the CLI, the screens --------------------

def _finding(rule="ac_after_hours", target="f1.p1", first="2026-07-07T12:00", hours=2.0,
             vnd=1000.0):
    t = dt.datetime.fromisoformat(first).replace(tzinfo=dt.timezone.utc)
    return {"rule": rule, "target": target, "target_kind": "zone", "first": t,
            "last": t + dt.timedelta(hours=hours), "detected": t + dt.timedelta(minutes=30),
            "kwh_per_day": 1.0, "vnd_per_day": vnd, "discomfort_kh": 0.0,
            "evidence": {"points": ["f1.p1.ac"], "hours": hours}}


def test_a_fault_seen_again_within_four_days_is_one_occurrence(store):
    now = dt.datetime(2026, 7, 8, tzinfo=dt.timezone.utc)
    a = store.record_fault(_finding(), now)
    b = store.record_fault(_finding(first="2026-07-07T20:00"), now)
    assert a == b
    f = store.fault(a)
    assert f["first"].hour == 12 and f["last"].hour == 22
    # a fault of every working day: Friday's and Monday's (and after a four-day holiday) are
    # one line, not one a week
    fri = store.record_fault(_finding(target="f2.p1", first="2026-07-10T10:00", hours=1), now)
    mon = store.record_fault(_finding(target="f2.p1", first="2026-07-13T10:00", hours=1), now)
    tue = store.record_fault(_finding(target="f2.p1", first="2026-07-17T10:00", hours=1), now)
    assert fri == mon == tue and store.fault(fri)["last"].day == 17
    assert store.record_fault(_finding(target="f2.p1", first="2026-07-21T11:01"), now) != fri
    c = store.record_fault(_finding(first="2026-07-12T12:00"), now)  # five days later: new
    assert c != a
    assert store.update_fault(a, "op1", now, status="closed", note="panel reset")
    d = store.record_fault(_finding(first="2026-07-07T23:00"), now)  # closed: a new one
    assert d not in (a, c)
    assert {x["id"] for x in store.faults(status="active", target="f1.p1")} == {c, d}
    audit = store.audit_rows(action="fault.update")
    assert audit and json.loads(audit[0]["detail"])["note"] == "panel reset"



def test_the_demo_counts_faults_as_the_faults_screen_lists_them(store, monkeypatch):
    """`bems demo` says how many faults its history has: the lines of the faults screen, not
    the rules' findings (one fault found on three days is one)."""
    from bems import demo
    from bems.faults import engine

    class Finding:
        def __init__(self, d):
            self.d = d

        def as_dict(self):
            return self.d

    found = [Finding(_finding(first=f"2026-07-0{d}T10:00")) for d in (6, 7, 8)] + \
        [Finding(_finding(target="f1.p2"))]
    monkeypatch.setattr(engine, "detect", lambda *a: found)
    now = dt.datetime(2026, 7, 9, tzinfo=dt.timezone.utc)
    assert demo._find_faults(None, store, now, 14) == 2 == len(store.faults())

def test_faults_are_listed_most_costly_first_and_statuses_are_checked(store):
    now = dt.datetime(2026, 7, 8, tzinfo=dt.timezone.utc)
    cheap = store.record_fault(_finding(target="f1.p2", vnd=10.0), now)
    dear = store.record_fault(_finding(target="f1.p3", vnd=90_000.0), now)
    assert [f["id"] for f in store.faults()][:2] == [dear, cheap]
    assert not store.update_fault(dear, "op1", now, status="fixed?")
    assert not store.update_fault(999, "op1", now, status="closed")
    assert store.count_faults(now - dt.timedelta(days=7)) == {"zone": 2}


@pytest.mark.parametrize("value,problem", [("nan", "number"), ("inf", "number"),
                                           ("1e300", "within"), ('"2"', "number"),
                                           ("-1", "within"), ("true", "number")])
def test_fault_thresholds_in_the_site_file_are_checked(site_file, value, problem):
    text = site_file.read_text() + f"\n[faults]\nbias_k = {value}\n"
    with pytest.raises(ConfigError) as err:
        parse_site(text)
    assert "faults.bias_k" in str(err.value) and problem in str(err.value)


def test_fault_thresholds_and_air_handlers_from_the_site_file(site_file):
    site = parse_site(site_file.read_text() + "\n[faults]\nbias_k = 1.5\npersist_min = 45\n")
    assert site.faults == {"bias_k": 1.5, "persist_min": 45.0}
    assert rules.thresholds(site.faults)["setpoint_error_k"] == \
        rules.THRESHOLDS["setpoint_error_k"][0]
    with pytest.raises(ConfigError) as err:
        parse_site(site_file.read_text() + "\n[faults]\nwhatever = 1\n")
    assert "unknown threshold" in str(err.value)
    bad = site_file.read_text() + ('\n[[air_handlers]]\nid = "x"\nzones = ["nowhere"]\n'
                                   'supply_air_temperature = "no.such.point"\n')
    with pytest.raises(ConfigError) as err:
        parse_site(bad)
    assert "no zone with id 'nowhere'" in str(err.value)
    assert "no point with id 'no.such.point'" in str(err.value)
    site = load_site(site_file)
    assert [a.id for a in site.air_handlers] == ["ahu1", "ahu2", "ahu3"]
    assert all(len(a.points()) == 8 for a in site.air_handlers)


def test_every_rule_has_its_texts_in_both_languages():
    with pytest.raises(ValueError, match="not declared"):
        rules.grid._finding(rules.Data(0, 4, 0, [], {}), "made_up_rule", "z1", "zone", 0, 2, 1)
    from bems.faults.rules.suppress import EXPLAINED_BY

    from bems.faults.rules.grid import DECLARED

    emitted = set(rules.RULES)  # declared where each rule is written; _finding refuses others
    blocks = [r for kind in ("zone", "ahu", "meter") for r in DECLARED[kind]]
    for r in blocks:  # a declared rule: its points, its mode, its persistence
        assert r.needs and r.mode and r.persistence in {"", *rules.THRESHOLDS}, r
    # every rule of one target is a declared block; the rules that judge a target against its
    # neighbours (bems/faults/rules/neighbours.py) take the neighbours as well
    assert emitted - {r.name for r in blocks} == {"sensor_bias", "ahu_return_air_drift"}, \
        emitted - {r.name for r in blocks}
    assert {r for rule, why in EXPLAINED_BY.items() for r in (rule, *(w for w, _ in why))} \
        <= emitted
    from connectors.simulator.faults import FAULT_TYPES

    assert {t.rule for t in FAULT_TYPES.values()} <= emitted  # each injected fault has its rule
    assert len(emitted) >= 14 and emitted ^ set(TEXTS) == set(), emitted ^ set(TEXTS)
    sample = {"hours": 2.5, "above_k": 1.26, "bias_k": 3.0, "usual_k": -0.2, "value": 29.1,
              "changes_3h": 8, "seen_pct": 80.0, "usual_pct": 22.0, "drop_kwh": 1234.5,
              "how": "zero", "unmetered_kwh": 40.0, "night_kw": 24.0, "usual_kw": 19.0,
              "kwh": 619.0, "usual_kwh": 448.0, "closed_day": True, "window_likely": True,
              "setpoint": 23.0, "floor": 25.0, "parent_kw": 40.0, "children_kw": 52.0}
    for rule in TEXTS:
        vi, en = fault_text(rule, sample, "Phòng họp", "vi"), fault_text(rule, sample, "X", "en")
        for t in (vi, en):
            assert t["title"] and t["check"] and "{" not in t["cause"] and "–" not in t["cause"]
        assert vi["title"] != en["title"]
    assert "1,3" in fault_text("cannot_reach_setpoint", sample, "Z", "vi")["cause"]  # 1,26 K


def test_bems_faults_lists_what_the_rules_found(tmp_path, site_file, runner):
    from bems.cli import main

    db = tmp_path / "f.sqlite"
    now = dt.datetime(2026, 7, 8, tzinfo=dt.timezone.utc)
    with Store(db) as s:
        s.insert_readings([("f1.p1.temp", now, 25.0)])
        s.record_fault(_finding(), now)
    r = runner.invoke(main, ["faults", "--db", str(db), "--site", str(site_file), "--lang",
                             "vi"])
    assert r.exit_code == 0, r.output
    assert "Điều hòa chạy ngoài giờ làm việc" in r.output
    r = runner.invoke(main, ["faults", "--db", str(db), "--site", str(site_file), "--json"])
    assert json.loads(r.output)[0]["rule"] == "ac_after_hours"
    r = runner.invoke(main, ["faults", "--db", str(db), "--site", str(site_file), "--days", "0"])
    assert r.exit_code != 0  # a range is checked


def test_runs_and_usual_by_hour_are_causal():
    assert rules.runs(np.array([0, 1, 1, 0, 1, 1, 1], bool), 2) == [(1, 3), (4, 7)]
    kw = np.array([5.0] * 96 * 4 + [0.0] * 96)
    hours = np.tile(np.repeat(np.arange(24), 4), 5)
    days = np.repeat(np.arange(5), 96)
    usual, low = rules._usual_by_hour(kw, hours, days, np.zeros(5 * 96), 4 * 96, 14)
    assert np.all(usual[4 * 96:] == 5.0) and np.all(low[4 * 96:] == 5.0)  # from days before
    assert np.isnan(usual[: 4 * 96]).all()


def test_the_night_load_is_judged_against_bems_own_forecast_where_there_is_one(tmp_path, site):
    """Three weeks of nights at 20 kW, then a night at 26 kW: above the usual nights. Where
    BEMS forecast that night (before it came) the forecast is the baseline: 26 kW against a
    forecast of 25.5 kW is no fault, against a forecast of 20 kW it is."""
    from bems.faults.engine import detect

    main = next(m for m in site.meters if m.measures == "main")
    tz = site.tz
    last = dt.datetime(2026, 7, 22, tzinfo=tz)
    rows = []
    for day in range(21, -1, -1):
        base = last - dt.timedelta(days=day)
        for q in range(96):
            t = base + dt.timedelta(minutes=15 * q)
            night = q < 20
            rows.append((main.power, t, (26.0 if day == 0 else 20.0) if night else 60.0))
    for forecast_kw, expect in ((25.5, False), (20.0, True)):
        with Store(tmp_path / f"n{forecast_kw}.sqlite", site.timezone) as s:
            s.insert_readings(rows)
            s.refresh_rollups()
            s.save_forecast(main.id, last - dt.timedelta(hours=12), "test",
                            [(last + dt.timedelta(hours=h), forecast_kw) for h in range(6)])
            found = [f for f in detect(site, s, last, last + dt.timedelta(hours=23))
                     if f.rule == "base_load_high"]
        assert bool(found) == expect, (forecast_kw, found)
        if found:
            assert found[0].evidence["from_forecast"] and found[0].evidence["usual_kw"] == 20.0
            assert "theo dự báo" in fault_text("base_load_high", found[0].evidence, "X", "vi")[
                "cause"]
    with Store(tmp_path / "none.sqlite", site.timezone) as s:  # no forecast: the usual nights
        s.insert_readings(rows)
        s.refresh_rollups()
        found = [f for f in detect(site, s, last, last + dt.timedelta(hours=23))
                 if f.rule == "base_load_high"]
    assert found and not found[0].evidence["from_forecast"]
