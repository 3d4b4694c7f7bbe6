"""The runtime's jobs on the in-memory device model: poll, strategies, dry run, COV, heartbeat,
rollups, purge, controller schedules, recovery at start and release at stop. Milliseconds."""

from __future__ import annotations

import datetime as dt

import pytest

from bems.intents import WriteIntent
from connectors.memory import MemoryBus
from bems.runtime import Runtime
from bems import state
from devtools.clock import Clock

UTC = dt.timezone.utc
MONDAY_0800 = dt.datetime(2026, 7, 6, 1, 0, tzinfo=UTC)  # 08:00 in Hải Phòng


@pytest.fixture
def clock():
    return Clock(MONDAY_0800)


@pytest.fixture
def bus(site, clock):
    b = MemoryBus(site, clock=clock)
    for z in site.zones:
        b.set(z.temperature, 27.0)
    return b


@pytest.fixture
def rt(site, bus, clock, tmp_path):
    r = Runtime(site, tmp_path / "rt.sqlite", bus=bus, clock=clock)
    yield r
    if r.store.db.conn is not None:
        try:
            r.stop()
        except Exception:  # noqa: BLE001 - stopped by the test already
            pass


def test_poll_stores_every_point_at_bems_time(rt, site, bus):
    rt.poll()
    assert rt.store.count_readings() == len(site.points)
    latest = rt.store.latest(now=MONDAY_0800)
    assert latest["f1.p1.temp"][0] == MONDAY_0800 and latest["f1.p1.temp"][1] == 27.0
    assert rt.last_values["f1.p1.temp"] == 27.0


def test_an_implausible_reading_is_bad_kept_raw_and_never_decides(rt, site, bus):
    bus.set("f1.p1.temp", 3.4e38)  # what some controllers send for "no sensor"
    bus.set("meter.main.kw", 1e10)
    rt.poll()
    latest = rt.store.latest(now=MONDAY_0800)
    assert latest["f1.p1.temp"][1:] == (None, "bad")
    assert latest["meter.main.kw"][1:] == (None, "bad")
    assert "f1.p1.temp" not in rt.last_values and rt.last_values["f1.p2.temp"] == 27.0
    raw = {p: v for _t, p, v in rt.store.implausible()}
    assert (raw["f1.p1.temp"], raw["meter.main.kw"]) == (3.4e38, 1e10)
    assert "f1.p2.temp" not in raw


def test_a_dead_device_is_stale_once_and_the_rest_is_polled(rt, site, bus, clock):
    bus.offline.add("fc2")
    rt.poll()
    clock.t += dt.timedelta(minutes=1)
    rt.poll()
    fc2 = {p.id for p in site.points_of("fc2")}
    latest = rt.store.latest(now=clock.t)
    assert all(latest[p][2] == "stale" for p in fc2)  # one stale marker per outage
    assert rt.store.count_readings(next(iter(fc2))) == 1
    assert latest["f1.p1.temp"] == (clock.t, 27.0, "good")


def test_strategies_write_through_the_writer_at_priority_12(rt, bus):
    rt.poll()
    rt.run_strategies()
    assert bus.slots("f1.p1.sp") == {12: 26.0} and bus.slots("f1.p1.ac") == {12: 1.0}
    assert bus.slots("f1.p1.light") == {12: 1.0}
    writes = rt.store.writes(sources=["strategy"], outcomes=["done"])
    assert writes and all(w.reason for w in writes)
    n = len(bus.writes)
    rt.run_strategies()  # nothing changed: no-op writes are skipped
    assert len(bus.writes) == n


def test_dry_run_decides_but_never_writes(site, bus, clock, tmp_path):
    rt = Runtime(site, tmp_path / "dry.sqlite", bus=bus, clock=clock, dry_run=True)
    rt.poll()
    rt.run_strategies()
    assert rt.last_decisions and bus.writes == []
    rt.stop()


def test_an_override_wins_and_the_strategies_take_the_point_back(rt, site, bus, clock):
    from bems.overrides import add_override, release_override

    rt.poll()
    oid = add_override(site, rt.store, "f1.p1.light", 0.0, clock.t + dt.timedelta(hours=1),
                       "lan", "meeting", clock.t)
    rt.run_strategies()
    assert bus.slots("f1.p1.light") == {12: 0.0}
    release_override(rt.store, oid, "lan", clock.t)
    rt.run_strategies()
    assert bus.slots("f1.p1.light") == {12: 1.0}


def test_cov_values_are_stored_at_the_next_flush(rt, site, bus):
    rt.bus.subscribe(rt._on_cov)
    cov_point = next(p for p in site.points if p.cov and p.writable)
    bus.set(cov_point.id, 25.0)
    assert rt.store.count_readings(cov_point.id) == 0
    rt.flush_cov()
    assert rt.store.latest(now=MONDAY_0800)[cov_point.id][1] == 25.0


def test_heartbeat_is_written_and_changes_with_time(rt, site, bus, clock):
    hb = site.control.heartbeat_point
    rt.heartbeat()
    first = bus.value(hb)
    clock.t += dt.timedelta(minutes=3)
    rt.heartbeat()
    assert bus.value(hb) == first + 3


def test_every_write_is_recorded_holding_the_runtimes_store_lock(rt, site, bus, clock):
    """The runtime's workers share one connection: the writer's ledger and readings are
    recorded holding the runtime's lock (a nightly backup recording its outcome while a
    strategy run recorded a write once failed with "cannot start a transaction within a
    transaction")."""
    called, unlocked = set(), []
    for name in ("record_write", "insert_readings", "mark_released"):
        real = getattr(rt.store, name)

        def checked(*a, _real=real, _name=name, **k):
            called.add(_name)
            if not rt._lock._is_owned():
                unlocked.append(_name)
            return _real(*a, **k)

        setattr(rt.store, name, checked)
    rt.poll()
    rt.run_strategies()
    rt.heartbeat()
    rt.push_schedules()
    rt.writer.apply(WriteIntent("f1.p1.sp", 18.0, "cli"))  # refused: recorded all the same
    rt.stop()  # releases everything
    assert called == {"record_write", "insert_readings", "mark_released"}
    assert not unlocked, unlocked


def test_rollups_and_purge(rt, site, clock):
    rt.poll()
    rt.store_maintenance()
    assert rt.store.refresh_rollups() == 0  # nothing left pending
    clock.t += dt.timedelta(days=site.storage.retention_days + 1)
    n = rt.purge()
    assert n == len(site.points) and rt.store.count_readings() == 0
    day = MONDAY_0800.astimezone(site.tz).replace(hour=0)
    assert rt.store.summary(day, day + dt.timedelta(days=1))  # the rollups are kept


def test_controller_schedules_are_pushed_through_the_ledger(rt, site, bus):
    rt.push_schedules()
    local = [d for d in site.devices if d.schedule_object]
    assert set(bus.schedules) == {d.id for d in local}
    assert {w.device for w in rt.store.writes(action="schedule")} == {d.id for d in local}
    rt.push_schedules()  # the same schedule again: skipped, not written twice
    assert len(rt.store.writes(action="schedule")) == len(local)


def test_a_failing_job_is_logged_and_the_next_run_works(rt, bus, caplog):
    bus.offline.update(d for d in ("fc1", "fc2", "fc3", "meters"))
    rt.poll()
    rt.run_strategies()  # no readings: decisions without temperatures, writes fail
    assert rt.store.writes(outcomes=["failed"])
    bus.offline.clear()
    rt.poll()
    rt.run_strategies()
    assert bus.slots("f1.p1.sp") == {12: 26.0}


def test_start_recovers_what_a_crash_left_and_stop_releases_everything(site, bus, clock,
                                                                       tmp_path):
    from bems.control import Writer
    from bems.storage import Store

    db = tmp_path / "crash.sqlite"
    with Store(db) as store:  # a previous BEMS that died holding a write
        Writer(site, bus, store, clock=clock).apply(WriteIntent("f3.p4.sp", 28.0, "held"))
    assert bus.slots("f3.p4.sp") == {12: 28.0}
    clock.t = dt.datetime(2026, 7, 5, 15, 0, tzinfo=UTC)  # Sunday 22:00: nothing is wanted
    rt = Runtime(site, db, bus=bus, clock=clock, poll_interval_s=3600,
                 strategy_interval_s=3600)
    rt.start()
    try:
        assert bus.running
        assert bus.slots("f3.p4.sp") in ({}, {12: 30.0}, {12: 26.0})  # released, or re-decided
        assert "recovery" in {w.source for w in rt.store.writes(action="release")}
        assert bus.slots(site.control.heartbeat_point)  # alive
    finally:
        rt.stop()
    assert not bus.running
    assert all(o.slots == {} for o in bus.objects.values()), \
        {p: o.slots for p, o in bus.objects.items() if o.slots}
    with Store(db) as store:
        assert store.held_writes() == []


def test_a_runtime_polling_slowly_in_its_own_time_still_controls(rt, bus, clock):
    # a demo at 60x polls once a simulated hour: readings of the last cycles still count
    rt.poll()
    clock.t += dt.timedelta(hours=1)
    rt.poll()
    clock.t += dt.timedelta(minutes=50)
    from bems.decision import current_values

    assert current_values(rt.store, clock.t)["f1.p1.temp"] == 27.0  # 50 min old, still used


@pytest.mark.parametrize("switch", ["lighting", "occupancy", "outdoor_air"])
def test_a_strategy_switched_off_lets_go_of_its_points_in_the_same_run(rt, site, bus, switch):
    from bems.strategies import params as strategy_params

    rt.poll()
    rt.run_strategies()
    lights = [z.lighting for z in site.zones if z.lighting]
    assert all(bus.slots(p) == {12: 1.0} for p in lights)
    rt.store.put(state.STRATEGY_PARAMS, {switch: False})
    rt.run_strategies()
    held = {p for p, o in bus.objects.items() if o.slots} - {site.control.heartbeat_point}
    if switch == "lighting":
        assert not held & set(lights) and held  # the rest still commanded
    elif switch == "occupancy":
        assert held == set()  # nothing planned: everything released
    else:
        assert not {p for p in held if site.point(p).kind == "outdoor_air"}
    assert {p for p in rt.writer.held} - {site.control.heartbeat_point} == held


def test_controller_clocks_are_read_and_a_wrong_one_is_an_alarm(rt, site, bus):
    from bems.status import alarms

    bus.clock_offset["fc2"] = dt.timedelta(minutes=-10)
    bus.offline.add("fc3")
    drift = rt.check_clocks()
    assert drift["fc2"] == -600 and drift["fc1"] == 0 and "fc3" not in drift
    found = {a["key"]: a for a in alarms(site, rt.store, MONDAY_0800)}
    assert found["clock:fc2"]["value"] == -10 and "clock:fc1" not in found


def test_clocks_more_than_a_minute_off_are_set_when_the_site_says_so(site, bus, clock,
                                                                     tmp_path):
    import dataclasses

    synced = dataclasses.replace(site, bacnet=dataclasses.replace(site.bacnet, time_sync=True))
    rt = Runtime(synced, tmp_path / "sync.sqlite", bus=bus, clock=clock)
    try:
        bus.clock_offset["fc2"] = dt.timedelta(minutes=-10)
        bus.clock_offset["fc3"] = dt.timedelta(seconds=30)  # within a minute: left alone
        drift = rt.check_clocks()
        assert drift["fc2"] == 0 and drift["fc3"] == 30
        row = rt.store.writes(action="time-sync")[0]
        assert (row.point, row.outcome, row.reason) == ("fc2:clock", "done", "clock -600 s off")
        assert len(rt.store.writes(action="time-sync")) == 1
    finally:
        rt.stop()


def test_the_fault_rules_run_on_their_own_worker_and_record_what_they_find(rt, site, bus,
                                                                           clock):
    """An AC left on in the evening: the runtime's fault job (its own connection, its own
    worker) finds it and records it; a second pass extends the same occurrence."""
    bus.set("f1.p1.ac", 1.0)
    for q in range(12 * 4):  # 08:00 to 20:00, a poll every 15 minutes
        clock.t = MONDAY_0800 + dt.timedelta(minutes=15 * q)
        rt.poll()
    assert rt.detect_faults() >= 1
    faults = [f for f in rt.store.faults() if f["rule"] == "ac_after_hours"]
    assert [f["target"] for f in faults] == ["f1.p1"]
    clock.t += dt.timedelta(minutes=15)
    rt.poll()
    rt.detect_faults()
    assert len([f for f in rt.store.faults() if f["rule"] == "ac_after_hours"]) == 1
    rt.start()  # scheduled on its own worker, beside the polls
    try:
        assert rt.scheduler.get_job("faults").executor == "faults"
        assert rt.scheduler.get_job("poll").executor == "default"
    finally:
        rt.stop()


def test_switched_to_predictive_it_fits_the_rooms_then_plans(site, clock, tmp_path):
    """A site switched to the predictive strategy before any nightly refit: the rule set decides
    (and says why), the runtime asks for a fit at once on its second worker, and the next
    decision follows a plan."""
    import dataclasses
    import math

    from bems.predictive import store as pstore
    from bems.predictive.model import STEP_S
    from tests.test_predictive import synthetic_history

    psite = dataclasses.replace(site, strategies=dataclasses.replace(site.strategies,
                                                                     mode="predictive"))
    h = synthetic_history(site)
    bus = MemoryBus(psite, clock=clock)
    for z in site.zones:
        bus.set(z.temperature, 26.5)
    rt = Runtime(psite, tmp_path / "p.sqlite", bus=bus, clock=clock)
    try:
        rt.store.insert_readings([(p, dt.datetime.fromtimestamp(h.t0 + i * STEP_S, UTC),
                                   float(v[i]), "good") for p, v in h.mean.items()
                                  for i in range(h.n) if math.isfinite(v[i])])
        rt.store.refresh_rollups()
        rt.poll()
        rt.run_strategies()
        assert rt._note == "no_model"
        assert rt.scheduler.get_job("asked-zones") is not None
        rt.refit_zone_models()
        model = pstore.load_model(rt.store)
        assert model is not None and len(model.usable()) == len(site.zones)
        d = rt.decide()
        assert d.strategy == "predictive" and d.plan is not None and d.note == ""
        assert any(i.reason.startswith("predictive:") for i in d.intents)
    finally:
        rt.stop()


def test_one_runtime_per_store_and_its_nightly_backup(site, bus, clock, tmp_path):
    """A second `bems run` on the same store is refused before it touches a device (two
    would fight over the same setpoints); the nightly job leaves a checked backup beside the
    store; after stop (or a crash: the lock dies with the process) a runtime starts again."""
    from bems.storage.backup import BackupError, backups, check_store

    db = tmp_path / "one.sqlite"
    first = Runtime(site, db, bus=bus, clock=clock, poll_interval_s=3600,
                    strategy_interval_s=3600)
    first.start()
    try:
        second = Runtime(site, db, bus=MemoryBus(site, clock=clock), clock=clock)
        with pytest.raises(BackupError, match="another `bems run`"):
            second.start()
        assert not second.bus.running
        second.store.close()
        assert "backup" in {j.id for j in first.scheduler.get_jobs()}
        made = first.backup()
        assert made.parent == tmp_path / "backups" and check_store(made).startswith("ok")
        assert backups(db, tmp_path / "backups") == [made]
    finally:
        first.stop()
    again = Runtime(site, db, bus=bus, clock=clock, poll_interval_s=3600,
                    strategy_interval_s=3600)
    again.start()
    again.stop()
