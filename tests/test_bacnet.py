"""The BACnet connector over real UDP against the virtual centre: discovery, polling, stale and
recovery, writes with read-back and release, COV, and no stuck override after kill -9."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from tests.conftest import require_energyplus

require_energyplus()

from bems.control import WriteIntent, Writer
from bems.storage import Store
from connectors.bacnet.discovery import discover
from connectors.bacnet.gateway import BacnetError, BacnetGateway
from connectors.bacnet.poller import CovSubscriptions, Poller
from tests.bacnet_helpers import RunningCentre, quick_site
from devtools.ports import free_port
from tests.runs import BemsRun, Holder

pytestmark = [pytest.mark.bacnet, pytest.mark.energyplus]  # against the virtual centre
MONDAY_0800 = dt.datetime(2026, 7, 6, 8, 0)


@pytest.fixture(scope="module")
def qsite(site):
    return quick_site(site)


@pytest.fixture(scope="module")
def centre(qsite):
    rc = RunningCentre(qsite, MONDAY_0800, speed=600)  # a 15-min step every 1.5 s
    yield rc.start()
    rc.stop()


@pytest.fixture
def gateway():
    gw = BacnetGateway(port=free_port()).start()
    yield gw
    gw.stop()


def test_discovery_finds_every_device_and_object(centre, qsite, gateway):
    # the devices, and two addresses where nothing answers
    qsite = qsite.for_protocol("bacnet")  # (the plugs' meter speaks Modbus)
    addresses = [d.address for d in qsite.devices] + [f"127.0.0.1:{free_port()}"
                                                      for _ in range(2)]
    found = discover(gateway, addresses, timeout_s=1.0)
    assert {d["instance"] for d in found} == {d.instance for d in qsite.devices}
    for dev in found:
        site_dev = next(d for d in qsite.devices if d.instance == dev["instance"])
        objects = {o["object"] for o in dev["objects"]}
        pts = qsite.points_of(site_dev.id)
        expected = {p.object for p in pts} | {p.trend_log for p in pts if p.trend_log}
        expected |= {o for o in (site_dev.schedule_object, site_dev.calendar_object) if o}
        assert objects == expected
        names = {o["object"]: o["name"] for o in dev["objects"]}
        assert all(names[p.object] == p.name for p in qsite.points_of(site_dev.id))


def test_full_poll_reads_every_point_into_the_store(centre, qsite, gateway, store):
    from connectors.modbus.fieldbus import ModbusFieldBus

    poller = Poller(qsite, gateway, sink=store.insert_readings)
    result = poller.poll()
    bacnet = qsite.for_protocol("bacnet")
    assert set(result.values) == {p.id for p in bacnet.points}
    bad = {pid: q for pid, (v, q) in result.values.items() if q != "good"}
    assert bad == {}
    assert all(h.state == "ok" for h in result.devices.values())
    assert store.count_readings() == len(bacnet.points)
    t = result.values["f1.core.temp"][0]
    assert 15 < t < 40
    # the plugs' meter, served over Modbus TCP by the same virtual centre
    mb = ModbusFieldBus(qsite)
    mb.start()
    try:
        modbus = mb.poll(store.insert_readings)
    finally:
        mb.stop()
    assert set(modbus.values) == {"plugmeter.power", "plugmeter.energy"}
    assert all(q == "good" and v >= 0 for v, q in modbus.values.values()), modbus.values
    assert store.count_readings() == len(qsite.points)


def test_dead_device_is_stale_others_keep_cadence_and_it_returns(centre, qsite, gateway, store):
    poller = Poller(qsite, gateway, sink=store.insert_readings, backoff_base_s=3.0,
                    backoff_max_s=3.0)
    healthy = poller.poll()
    time.sleep(1.1)  # readings are stored per second: keep the cycles apart
    centre.apply_fault("fc2:offline")
    try:
        down = poller.poll()
        assert down.devices["fc2"].state == "stale"
        assert all(down.values[p.id] == (None, "stale") for p in qsite.points_of("fc2"))
        others = [p.id for p in qsite.for_protocol("bacnet").points if p.device != "fc2"]
        assert all(down.values[p][1] == "good" for p in others)
        # the dead device costs its own timeout budget (1 s), not more
        assert down.duration_s < healthy.duration_s + 1.0 + 0.8
        skipped = poller.poll()  # in back-off: not even tried, so no timeout at all
        assert skipped.skipped == ("fc2",)
        assert skipped.duration_s < 0.8
        stale_rows = [q for _, _, q in store.readings("f2.core.temp", 0, 2**31)]
        assert stale_rows.count("stale") == 1  # one marker per outage
    finally:
        centre.apply_fault("fc2:online")
    time.sleep(3.1)
    back = poller.poll()
    assert back.devices["fc2"].state == "ok"
    assert back.values["f2.core.temp"][1] == "good"


def test_a_device_that_answers_again_is_polled_at_once_not_after_its_back_off(centre, qsite,
                                                                            gateway, store):
    """After an outage (or a slow spell), a device in back-off gets a cheap probe each cycle
    in the background; once it answers, the next cycle polls it in full, long before its
    back-off (here ten minutes) would end."""
    poller = Poller(qsite, gateway, sink=store.insert_readings, backoff_base_s=600,
                    backoff_max_s=600)
    centre.apply_fault("fc2:offline")
    try:
        assert poller.poll().devices["fc2"].state == "stale"
        skipped = poller.poll()  # in back-off: not polled (its probe goes out, unanswered)
        assert skipped.skipped == ("fc2",) and skipped.devices["fc2"].state == "stale"
    finally:
        centre.apply_fault("fc2:online")
    deadline = time.monotonic() + 30  # far below the back-off; a loaded machine is slow
    state = "stale"
    while state != "ok" and time.monotonic() < deadline:
        time.sleep(0.5)
        r = poller.poll()
        state = r.devices["fc2"].state
    assert state == "ok" and r.values["f2.core.temp"][1] == "good"


def test_write_readback_and_release_show_in_the_priority_array(centre, qsite, gateway, store):
    writer = Writer(qsite, gateway, store)
    r = writer.apply(WriteIntent("f3.p2.sp", 26.5, "test: occupied setpoint"))
    assert (r.outcome, r.priority, r.readback) == ("done", 12, 26.5)
    assert centre.devices.priority_array("f3.p2.sp") == {12: 26.5}
    assert writer.apply(WriteIntent("f3.p2.sp", 26.5, "again")).outcome == "unchanged"
    r = writer.apply(WriteIntent("f3.p2.light", 0, "test: lights off"))
    assert r.outcome == "done" and centre.devices.priority_array("f3.p2.light") == {12: 0.0}
    # the device refuses out-of-range values; the writer clamps first, so this lands at max
    r = writer.apply(WriteIntent("f3.p2.dim", 250, "test: clamp"))
    assert r.outcome == "done" and r.value == 100.0 and "clamped" in r.error
    held = {w.point for w in store.held_writes()}
    assert held == {"f3.p2.sp", "f3.p2.light", "f3.p2.dim"}
    # what the priority arrays read back imply the devices now hold: readings at once
    assert {p: v for p, (_t, v, _q) in store.latest(held).items()} == {
        "f3.p2.sp": 26.5, "f3.p2.light": 0.0, "f3.p2.dim": 100.0}
    results = writer.release_all("test", "end of test")
    assert all(x.outcome == "released" for x in results)
    for pid in held:
        assert centre.devices.priority_array(pid) == {}
    assert store.held_writes() == []
    outcomes = [w.outcome for w in store.writes(point="f3.p2.sp")]
    assert outcomes == ["released", "done"]  # the no-op write was not sent, nor logged


def test_a_refused_write_is_audited(centre, qsite, gateway, store):
    import dataclasses

    # a site whose limits are wider than the controller's: the device refuses, we record it
    loose = dataclasses.replace(qsite, points=tuple(
        dataclasses.replace(p, max=40.0) if p.id == "f1.p3.sp" else p for p in qsite.points))
    writer = Writer(loose, gateway, store)
    r = writer.apply(WriteIntent("f1.p3.sp", 35.0, "test: beyond the device's limit"))
    assert r.outcome == "rejected" and "value-out-of-range" in r.error
    w = store.writes(point="f1.p3.sp")[0]
    assert (w.outcome, w.value, w.priority) == ("rejected", "35.0", 12)
    assert centre.devices.priority_array("f1.p3.sp") == {}


def test_cov_notifications_arrive(centre, qsite, gateway, store):
    got: list = []
    cov = CovSubscriptions(qsite, gateway, lambda p, v, t: got.append((p, v)), lifetime_s=60)
    n = cov.start(["f2.p1.sp"])
    assert n == 1
    try:
        time.sleep(0.5)
        Writer(qsite, gateway, store).apply(WriteIntent("f2.p1.sp", 27.0, "test: COV"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and ("f2.p1.sp", 27.0) not in got:
            time.sleep(0.1)
        assert ("f2.p1.sp", 27.0) in got
    finally:
        cov.stop()
        Writer(qsite, gateway, store).release_all("test", "cleanup")


def test_taken_port_is_a_clear_error_at_once(gateway):
    t = time.monotonic()
    with pytest.raises(BacnetError, match="already in use"):
        BacnetGateway(port=gateway.port).start()
    assert time.monotonic() - t < 3


def test_kill_9_then_restart_leaves_no_stuck_override(centre, site_file, tmp_path):
    db = tmp_path / "bems.sqlite"
    with Holder(site_file, db, [("f1.p1.sp", 27.5), ("f2.core.ac", 0), ("f3.p4.light", 0)]) \
            as holder:
        for pid in ("f1.p1.sp", "f2.core.ac", "f3.p4.light"):
            assert 12 in centre.devices.priority_array(pid)
        holder.crash()
    # restart: `bems run` recovers (releases) what the ledger says is held. Dry-run keeps the
    # strategies from writing what they would want now, so the release itself is what we see.
    with BemsRun(site_file, db, "--poll-interval", "3600", "--dry-run") as run:
        for pid in ("f1.p1.sp", "f2.core.ac", "f3.p4.light"):
            assert centre.devices.priority_array(pid) == {}
        assert 12 in centre.devices.priority_array("bems.heartbeat")
        # SIGTERM as the kernel may deliver it: to another thread than the main one (a bare
        # Event.wait() in the main thread once slept through it for ever)
        assert "every write released" in run.stop(within_s=20, to_a_worker_thread=True)
    assert centre.devices.priority_array("bems.heartbeat") == {}
    with Store(db) as store:
        assert store.held_writes() == []
        sources = {w.source for w in store.writes() if w.action == "release"}
        assert {"recovery", "shutdown"} <= sources


def test_sigterm_during_a_slow_weather_fetch_releases_every_write_first(centre, site_file,
                                                                       tmp_path):
    """A weather provider that answers a byte a second (it would last hours; each byte well
    within the per-read timeout) while BEMS holds writes: SIGTERM releases every write and
    the process ends (it once waited for the fetch, writes held, for as long as it lasted)."""
    from tests.httpservers import Drip, wait_for

    with Drip(every_s=1.0) as slow:
        site = tmp_path / "site.toml"
        site.write_text(site_file.read_text() + f'\n[weather]\nurl = "{slow.url}/v1/forecast"'
                                                '\ntimeout_s = 120\n')
        db = tmp_path / "bems.sqlite"
        with BemsRun(site, db, "--poll-interval", "3600") as run:
            assert wait_for(lambda: slow.requests, 30), "the weather fetch never began"
            assert 12 in centre.devices.priority_array("bems.heartbeat")
            with Store(db) as store:
                held = {w.point for w in store.held_writes()}
            assert "bems.heartbeat" in held
            assert "every write released" in run.stop(within_s=30)
    with Store(db) as store:
        assert store.held_writes() == []
    for pid in held:
        assert 12 not in centre.devices.priority_array(pid), pid


def test_trend_log_backfill_fills_a_polling_gap(centre, qsite, gateway, store):
    from connectors.bacnet.trends import backfill

    # the centre has been running at 600x with nobody polling: its controllers logged
    deadline = time.monotonic() + 30
    while centre.sim_now < dt.datetime(2026, 7, 6, 9, 0) and time.monotonic() < deadline:
        time.sleep(0.2)
    since = dt.datetime(2026, 7, 6, 8, 0, tzinfo=qsite.tz)
    counts = backfill(qsite, gateway, store.insert_readings, since)
    logged = {p.id for p in qsite.points if p.trend_log}
    assert set(counts) == logged
    assert all(n >= 2 for n in counts.values()), counts
    rows = store.readings("f1.core.temp", since, since + dt.timedelta(days=1))
    assert len(rows) == counts["f1.core.temp"]
    # 15-minute records, stamped at the device's local time, stored in UTC
    times = [t for t, _, _ in rows]
    assert all((b - a) == dt.timedelta(minutes=15) for a, b in zip(times, times[1:]))
    assert times[0] > since
    assert all(15 < v < 40 for _, v, _ in rows)
    # a second backfill over the same span adds nothing (the store keeps the first reading)
    n_before = store.count_readings()
    backfill(qsite, gateway, store.insert_readings, since, until=times[-1])
    assert store.count_readings() == n_before


def test_controller_schedule_and_holidays_written_and_read_back(centre, qsite, gateway, store):
    from bems.schedules import for_controller
    from connectors.bacnet import schedules
    from connectors.bacnet.fieldbus import BacnetFieldBus

    dev = qsite.device("fc1")
    today = dt.date(2026, 7, 6)
    pushed = for_controller(qsite, dev, today)
    writer = Writer(qsite, BacnetFieldBus(qsite, gateway=gateway), store)
    assert writer.push_schedule(dev, pushed).outcome == "done"
    got = schedules.read(gateway, dev)
    assert got == pushed
    row = store.writes(action="schedule")[0]  # in the ledger, read back
    assert (row.point, row.outcome, row.readback) == ("fc1:schedule,1", "done", "same")
    assert got.weekly[0] == (("07:00", 1.0), ("11:30", 0.0), ("13:30", 1.0), ("17:00", 0.0))
    assert got.weekly[6] == ()
    assert dt.date(2026, 9, 2) in got.off_days  # National Day
    assert dt.date(2027, 2, 11) in got.off_days  # the site's Tết closure
    assert got.makeup_days == (dt.date(2026, 8, 22),)
    winter = for_controller(qsite, dev, dt.date(2026, 12, 1))
    assert winter.weekly[0][0] == ("07:30", 1.0)


def test_cli_write_finds_the_site_point_however_it_is_spelled(centre, qsite, site_file,
                                                              tmp_path, runner):
    from bems.cli import main

    sp = qsite.point("f2.p1.sp")
    addr = qsite.device(sp.device).address.replace("127.0.0.1", "localhost")
    obj = sp.object.replace(",", ", 00")  # analog-value, 002
    common = ["--site", str(site_file), "--db", str(tmp_path / "cli.sqlite")]

    def cli(*args):
        return runner.invoke(main, [*args, *common, "--bacnet-port", str(free_port())])

    r = cli("write", addr, obj, "1e30", "--priority", "12")
    assert r.exit_code == 0 and r.output.startswith("f2.p1.sp: done"), r.output
    assert centre.devices.priority_array("f2.p1.sp") == {12: sp.max}  # the site's limits
    r = cli("write", addr, obj, "nan", "--priority", "12")  # not a number: a usage error
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    r = cli("write", addr, obj, "18", "--priority", "12")  # below the policy floor: refused
    assert r.exit_code == 1 and "policy floor" in r.output, r.output
    assert cli("release", addr, obj, "--priority", "8").exit_code == 1  # the operator's slot
    assert centre.devices.priority_array("f2.p1.sp") == {12: sp.max}
    r = cli("release", addr, obj, "--priority", "12")
    assert r.exit_code == 0 and centre.devices.priority_array("f2.p1.sp") == {}


class _Bbmd:
    """A BACnet Broadcast Management Device (plain bacpypes3) on its own loopback address."""

    def __init__(self, host: str, port: int):
        import asyncio
        import threading

        self.address = f"{host}:{port}"
        self.loop = asyncio.new_event_loop()
        self.app = None
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(self._build, host, port, ready)
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(10)

    def _build(self, host, port, ready):
        from bacpypes3.app import Application
        from bacpypes3.basetypes import BDTEntry, IPMode
        from bacpypes3.local.device import DeviceObject
        from bacpypes3.local.networkport import NetworkPortObject

        npo = NetworkPortObject(f"{host}/8:{port}", objectIdentifier=("network-port", 1),
                                objectName="bbmd-port")
        npo.bacnetIPMode = IPMode.bbmd
        npo.bbmdAcceptFDRegistrations = True
        npo.bbmdForeignDeviceTable = []
        npo.bbmdBroadcastDistributionTable = [BDTEntry(self.address)]
        self.app = Application.from_object_list([
            DeviceObject(objectIdentifier=("device", 4000), objectName="bbmd",
                         vendorIdentifier=999), npo])
        ready.set()

    def foreign_devices(self) -> set[str]:
        ll = self.app.link_layers[self.app.link_layers.__iter__().__next__()]
        return {str(f.fdAddress) for f in getattr(ll, "bbmdFDT", [])}

    def stop(self):
        self.loop.call_soon_threadsafe(self.app.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_bems_on_its_own_address_registers_with_a_bbmd_and_polls(centre, qsite):
    import dataclasses

    from bems.site import Bacnet
    from connectors.bacnet.fieldbus import BacnetFieldBus

    bbmd = _Bbmd("127.0.0.3", free_port())
    port = free_port()
    site = dataclasses.replace(qsite, bacnet=Bacnet(interface="127.0.0.2/8", port=port,
                                                    instance=599123, bbmd=bbmd.address,
                                                    bbmd_ttl=60))
    bus = BacnetFieldBus(site)
    try:
        bus.start()
        assert bus.gateway.host == "127.0.0.2"  # not 127.0.0.1: the site file's interface
        r = bus.poll()
        assert all(q == "good" for _, q in r.values.values()), r.devices
        deadline = time.monotonic() + 10
        while f"127.0.0.2:{port}" not in bbmd.foreign_devices() and \
                time.monotonic() < deadline:
            time.sleep(0.2)
        assert f"127.0.0.2:{port}" in bbmd.foreign_devices()
    finally:
        bus.stop()
        bbmd.stop()


def test_controller_clocks_are_read_over_bacnet(centre, qsite, gateway):
    from connectors.bacnet.fieldbus import BacnetFieldBus

    bus = BacnetFieldBus(qsite, gateway=gateway)
    local = bus.read_clock(qsite.device("fc1"))
    assert abs((local - centre.sim_now).total_seconds()) < 3600  # the devices keep sim time


def test_a_controller_clock_that_is_wrong_is_seen_and_set(centre, qsite, gateway):
    from connectors.bacnet.fieldbus import BacnetFieldBus

    bus = BacnetFieldBus(qsite, gateway=gateway)
    fc2 = qsite.device("fc2")
    # the centre steps 15 simulated minutes at a time: a step may fall between two readings,
    # so the tolerance is one step (and the fault two hours)
    step = 15 * 60 + 60
    centre.apply_fault("fc2:clock=-7200")
    try:
        wrong = bus.read_clock(fc2)
        assert abs((wrong - centre.sim_now).total_seconds() + 7200) < step
        bus.sync_clock(fc2, centre.sim_now)  # as BEMS would, with its own time
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and \
                abs((bus.read_clock(fc2) - centre.sim_now).total_seconds()) > step:
            time.sleep(0.2)
        assert abs((bus.read_clock(fc2) - centre.sim_now).total_seconds()) < step
    finally:
        centre.apply_fault("fc2:clock=0")
