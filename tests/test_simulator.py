"""The virtual centre: EnergyPlus physics served as real BACnet/IP devices on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pytest
from bacpypes3.app import Application
from bacpypes3.local.device import DeviceObject
from bacpypes3.local.networkport import NetworkPortObject
from bacpypes3.pdu import Address
from bacpypes3.primitivedata import Null, ObjectIdentifier

from bems.calendar import SiteCalendar
from tests.conftest import require_energyplus

require_energyplus()

from connectors.simulator.centre import VirtualCentre, occupancy_fraction  # noqa: E402
from connectors.simulator.devices import SimulatorError, VirtualDevices
from devtools.ports import free_port

pytestmark = pytest.mark.energyplus  # the virtual centre's EnergyPlus physics

MONDAY_0700 = dt.datetime(2026, 7, 6, 7, 0)
def _client(port: int | None = None) -> Application:
    """An independent BACnet client (plain bacpypes3, none of our connector code)."""
    port = port or free_port()
    return Application.from_object_list([
        DeviceObject(objectIdentifier=("device", 999_000 + port % 1000), objectName="test-client",
                     vendorIdentifier=999),
        NetworkPortObject(f"127.0.0.1/8:{port}", objectIdentifier=("network-port", 1),
                          objectName="port-1")])


async def _with_centre(site, body, speed: float = 0.0, days: int = 1, on_step=None):
    """Run the centre from Monday 07:00; `body(centre, client)` runs once devices answer and
    before the physics starts; the physics then runs `days` unpaced. Returns the centre."""
    centre = VirtualCentre(site)
    ready, gate = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(centre.serve(MONDAY_0700, speed=speed, days=days,
                                            ready=ready.set, gate=gate, on_step=on_step))
    client = _client()
    try:
        await asyncio.wait_for(ready.wait(), 30)
        await body(centre, client)
        gate.set()
        await asyncio.wait_for(task, 300)
    finally:
        client.close()
        centre.stop()
        gate.set()
        if not task.done():
            await asyncio.wait_for(task, 60)
    return centre


@pytest.mark.bacnet
def test_independent_client_reads_every_point_of_every_device(site):
    results: dict[str, object] = {}

    async def body(centre, client):
        from pymodbus.client import AsyncModbusTcpClient

        for dev in site.for_protocol("modbus").devices:  # the plugs' meter: plain pymodbus
            mb = AsyncModbusTcpClient(dev.host, port=dev.port, timeout=2)
            await mb.connect()
            try:
                for p in site.points_of(dev.id):
                    reg = p.modbus()
                    rr = await mb.read_holding_registers(reg.address, count=reg.width,
                                                         device_id=dev.unit)
                    results[p.id] = mb.convert_from_registers(
                        rr.registers, getattr(mb.DATATYPE, reg.type.upper()))
            finally:
                mb.close()
        for dev in site.for_protocol("bacnet").devices:
            addr = Address(dev.address)
            name = await client.read_property(addr, ObjectIdentifier(f"device,{dev.instance}"),
                                              "object-name")
            assert name == dev.name
            for p in site.points_of(dev.id):
                results[p.id] = await client.read_property(addr, ObjectIdentifier(p.object),
                                                           "present-value")
            iam = await client.who_is(dev.instance, dev.instance, addr)
            assert iam and iam[0].iAmDeviceIdentifier[1] == dev.instance

    asyncio.run(_with_centre(site, body, days=1))
    assert set(results) == {p.id for p in site.points}
    assert all(v is not None for v in results.values())


@pytest.mark.bacnet
def test_setpoint_write_changes_the_zone_trajectory_and_null_restores(site):
    zone = site.zones[1]  # south perimeter, floor 1
    obj = ObjectIdentifier(site.point(zone.cooling_setpoint).object)
    addr = Address(site.device(site.point(zone.cooling_setpoint).device).address)

    def recorder(store: list):
        def on_step(step, values):
            local = step.time + dt.timedelta(hours=7)
            if local.date() == MONDAY_0700.date() and 10 <= local.hour < 16:
                store.append(values[zone.temperature])
        return on_step

    async def no_write(centre, client):
        pass

    async def write_28(centre, client):
        await client.write_property(addr, obj, "present-value", 28.0, priority=12)
        pa = await client.read_property(addr, obj, "priority-array")
        assert pa[11].real == 28.0
        assert await client.read_property(addr, obj, "present-value") == 28.0

    base, raised = [], []
    asyncio.run(_with_centre(site, no_write, on_step=recorder(base)))
    asyncio.run(_with_centre(site, write_28, on_step=recorder(raised)))
    assert len(base) == len(raised) == 24
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    assert mean(base) < 24.6  # the time clock's 24 °C holds
    assert mean(raised) > mean(base) + 2.5  # a 28 °C setpoint lets the zone float up to it
    assert max(raised) <= 28.6

    async def write_then_null(centre, client):
        await client.write_property(addr, obj, "present-value", 27.0, priority=12)
        assert await client.read_property(addr, obj, "present-value") == 27.0
        await client.write_property(addr, obj, "present-value", Null(()), priority=12)
        pa = await client.read_property(addr, obj, "priority-array")
        assert all(slot.null is not None for slot in pa)
        rd = await client.read_property(addr, obj, "relinquish-default")
        assert await client.read_property(addr, obj, "present-value") == rd == 24.0

    asyncio.run(_with_centre(site, write_then_null, days=1))


@pytest.mark.bacnet
def test_write_outside_limits_is_refused_like_a_real_controller(site):
    sp = site.point("f2.core.sp")
    addr, obj = Address(site.device(sp.device).address), ObjectIdentifier(sp.object)

    async def body(centre, client):
        for bad in (sp.max + 1, sp.min - 1):
            with pytest.raises(BaseException) as info:
                await client.write_property(addr, obj, "present-value", bad, priority=12)
            err = info.value
            assert (str(err.errorClass), str(err.errorCode)) == ("property", "value-out-of-range")
        assert centre.devices.priority_array("f2.core.sp") == {}
        mode = site.point("f2.core.mode")
        with pytest.raises(BaseException):
            await client.write_property(addr, ObjectIdentifier(mode.object), "present-value", 9,
                                        priority=12)

    asyncio.run(_with_centre(site, body, days=1))


@pytest.mark.bacnet
def test_faults_offline_slow_stuck_and_meter_reset(site):
    fc2 = site.device("fc2")
    temp = site.point("f2.core.temp")

    async def body(centre, client):
        addr, obj = Address(fc2.address), ObjectIdentifier(temp.object)
        centre.apply_fault("fc2:offline")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.read_property(addr, obj, "present-value"), 1.5)
        centre.apply_fault("fc2:online")
        centre.apply_fault("fc2:slow=0.5")
        t = time.monotonic()
        await client.read_property(addr, obj, "present-value")
        assert time.monotonic() - t >= 0.45
        centre.apply_fault("fc2:online")
        centre.apply_fault("f2.core.temp:stuck=31.5")
        assert await client.read_property(addr, obj, "present-value") == 31.5
        centre.energy_kwh["main"] = 1234.0
        centre.apply_fault("main:reset")
        assert centre.energy_kwh["main"] == 0.0
        with pytest.raises(SimulatorError):
            centre.apply_fault("nodevice:offline")

    seen = []
    centre = asyncio.run(_with_centre(site, body, days=1,
                                      on_step=lambda s, v: seen.append(v["f2.core.temp"])))
    # the physics went on computing the real temperature; the device kept showing the stuck one
    assert seen and any(abs(v - 31.5) > 0.5 for v in seen)
    assert centre.devices.present_values(["f2.core.temp"])["f2.core.temp"] == 31.5


@pytest.mark.bacnet
def test_port_taken_is_a_clear_error_at_once(site):
    async def body():
        first = VirtualDevices(site)
        await first.start()
        try:
            second = VirtualDevices(site)
            t = time.monotonic()
            with pytest.raises(SimulatorError, match="already in use"):
                await second.start()
            assert time.monotonic() - t < 5
            second.close()
        finally:
            first.close()

    asyncio.run(body())


def test_history_fills_the_store_like_a_poller(site, store):
    centre = VirtualCentre(site)
    end = dt.datetime(2026, 7, 8, 12, 0)
    rows = centre.history(end, 2, store.insert_readings)
    sim_points = {p for z in centre.binding.zones for p in z.points().values()}
    assert rows == store.count_readings()
    latest = store.latest()
    assert sim_points <= set(latest)
    last_time = max(t for t, _, _ in latest.values())
    assert last_time == dt.datetime(2026, 7, 8, 5, 0, tzinfo=dt.timezone.utc)  # 12:00 local
    # 2 days at 15 minutes, every simulated point
    assert store.count_readings("f1.core.temp") == 2 * 96
    # the meter registers only grow, and the main meter carries more than its sub-meters
    kwh = [v for _, v, _ in store.readings("meter.main.kwh", 0, 2**31)]
    assert kwh == sorted(kwh) and kwh[-1] > 0
    subs = sum(store.latest()[site.meter(m).energy][1] for m in ("ac", "lighting", "plugs"))
    assert store.latest()["meter.main.kwh"][1] >= subs * 0.99
    # the time clock ran the AC on a working morning and not at night
    day = [(t, v) for t, v, _ in store.readings("f1.core.ac", 0, 2**31)]
    on = {t.hour for t, v in day if v == 1.0}
    assert 3 in on and 20 not in on  # 10:00 local on, 03:00 local off


def test_served_centre_continues_its_history(site):
    """One simulation from the first history day into the live period: the first live zone
    temperatures carry on from the last stored ones (a new run per phase made every room jump
    5-7 K on a closed Sunday morning in December: a building on fire on the demo's first
    screen). The start is that very moment."""
    import statistics

    start = dt.datetime(2026, 12, 6, 7, 30)  # a Sunday
    rows: list[tuple] = []
    first_live: dict[str, float] = {}
    temps = {z.temperature for z in site.zones if z.temperature}

    def on_step(step, values) -> None:
        if not first_live and step.time >= start.replace(tzinfo=site.tz):
            first_live.update({p: v for p, v in values.items() if p in temps})

    async def body() -> None:
        centre = VirtualCentre(site)
        task = asyncio.create_task(centre.serve(
            start, speed=0.0, days=1, history_from=start - dt.timedelta(days=2),
            sink=rows.extend, on_step=on_step))
        try:
            deadline = time.monotonic() + 240
            while not first_live and time.monotonic() < deadline and not task.done():
                await asyncio.sleep(0.2)
        finally:
            centre.stop()
            await asyncio.wait_for(task, 60)

    asyncio.run(body())
    assert first_live, "the centre never went live"
    last: dict[str, tuple] = {}
    for pid, t, v in rows:
        if pid in temps and (pid not in last or t >= last[pid][0]):
            last[pid] = (t, v)
    assert max(t for t, _ in last.values()) == \
        (start - dt.timedelta(minutes=15)).replace(tzinfo=site.tz).astimezone(dt.timezone.utc)
    jumps = [abs(first_live[p] - v) for p, (_, v) in last.items()]
    assert statistics.median(jumps) <= 1.0, sorted(jumps)
    assert max(jumps) <= 2.0, sorted(jumps)
    # two days of history, every 15 minutes, up to the start (the step that ends at the
    # start is the first live one: the controllers' own)
    assert sum(1 for pid, _, _ in rows if pid == "f1.core.temp") == 2 * 96 - 1


def test_occupancy_follows_the_site_calendar(site):
    cal = SiteCalendar(site)
    office = site.zones[1]
    assert occupancy_fraction(cal, office, dt.datetime(2026, 7, 6, 9, 0)) == 0.9
    assert occupancy_fraction(cal, office, dt.datetime(2026, 7, 6, 12, 0)) == 0.5  # lunch
    assert occupancy_fraction(cal, office, dt.datetime(2026, 7, 4, 9, 0)) == 0.0  # Saturday
    assert occupancy_fraction(cal, office, dt.datetime(2026, 9, 2, 9, 0)) == 0.0  # National Day
    assert occupancy_fraction(cal, office, dt.datetime(2026, 8, 22, 9, 0)) == 0.9  # make-up Sat
    lobby = site.zones[0]  # the one-stop desk opens Saturday mornings
    assert occupancy_fraction(cal, lobby, dt.datetime(2026, 7, 4, 9, 0)) == 0.9


@pytest.mark.bacnet
def test_simulator_command_serves_and_stops_cleanly(site, site_file, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "bems", "simulator", "--site", str(site_file),
                             "--speed", "600",
                             "--start", "2026-07-06T08:00", "--history-days", "1", "--db",
                             str(tmp_path / "sim.sqlite")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "simulator ready" in line or not line:
                break
        assert any("simulator ready" in l for l in lines), lines
        assert any(l.startswith("history: 1 days") for l in lines)

        async def read():
            c = _client()
            try:
                return await c.read_property(Address(site.device("fc1").address),
                                             ObjectIdentifier("device,1001"), "local-date")
            finally:
                c.close()
        assert tuple(asyncio.run(read()))[:3] == (2026 - 1900, 7, 6)
        proc.stdin.write("fc1:offline\n")
        proc.stdin.flush()
        assert "fault fc1: offline" in proc.stdout.readline()
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        assert proc.wait(timeout=60) == 0
        assert "simulator stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stdin.close()


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stopped_simulate_ends_and_removes_what_it_made(tmp_path, sig, code):
    # EnergyPlus's callbacks swallow exceptions, so before, neither signal unwound the run:
    # SIGTERM left its EnergyPlus folder and store behind, Ctrl-C did not stop it
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.Popen([sys.executable, "-m", "bems", "simulate", "--start", "2026-07-06",
                             "--days", "3", "--warmup-days", "2", "--strategy", "rules",
                             "--json"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        # EnergyPlus has begun when its output folder exists
        while not list(tmp.glob("bems-sim-*/out/*")) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.2)
        assert list(tmp.glob("bems-loop-*")), "the run's store folder"
        time.sleep(1.0)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err
    assert out == "" and "stopped" in err and "Traceback" not in err
    assert list(tmp.iterdir()) == []
