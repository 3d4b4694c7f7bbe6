"""A controller BEMS did not write, served by another BACnet implementation (bacpypes 0.18,
its own code base, installed from PyPI in its own virtual environment): no segmentation, a
480-byte APDU and 1,005 objects, a proprietary object type, a writable value without a
priority array, a lighting output. Discover, poll, write, release and restore after a crash,
over real UDP on loopback.
"""

from __future__ import annotations

import time

import pytest

from bems.config import parse_site
from bems.control import Writer
from bems.intents import WriteIntent
from bems.storage import Store
from connectors.bacnet.discovery import discover
from connectors.bacnet.fieldbus import BacnetFieldBus
from connectors.bacnet.gateway import BacnetGateway
from tests.interop import LegacyDevice
from devtools.ports import free_port
from tests.runs import BemsRun, Holder

pytestmark = pytest.mark.bacnet

SITE = """
[site]
name = "Interop"
timezone = "Asia/Ho_Chi_Minh"

[[devices]]
id = "gw"
address = "{address}"
instance = 7001
timeout_s = 2

[[points]]
id = "gw.temp"
device = "gw"
object = "analog-input,17"
kind = "temperature"

[[points]]
id = "gw.sp"  # writable, no priority array: BEMS restores what it replaced
device = "gw"
object = "analog-value,1"
kind = "setpoint"
writable = true
commandable = false
min = 20
max = 30

[[points]]
id = "gw.room_sp"
device = "gw"
object = "analog-value,2"
kind = "setpoint"
writable = true
min = 20
max = 30

[[points]]
id = "gw.lights"
device = "gw"
object = "lighting-output,1"
kind = "dimming"
writable = true
min = 0
max = 100

[[points]]
id = "gw.typo"  # a property the client cannot name: this point is bad, nothing else
device = "gw"
object = "analog-input,2"
property = "presnt-value"
kind = "temperature"

[[points]]
id = "gw.vendor_prop"  # a property by number the device does not have: bad, nothing else
device = "gw"
object = "analog-input,3"
property = "1234"
kind = "other"

[[points]]
id = "gw.meter"  # the vendor's proprietary object type 513
device = "gw"
object = "513,1"
kind = "power"
cov = true
"""


@pytest.fixture(scope="module")
def legacy():
    dev = LegacyDevice(f"127.0.0.1:{free_port()}", 7001, objects=1000)
    yield dev
    dev.stop()


@pytest.fixture
def site_path(legacy, tmp_path):
    path = tmp_path / "interop.toml"
    path.write_text(SITE.format(address=legacy.address))
    return path


@pytest.fixture
def site(site_path):
    return parse_site(site_path.read_text(), str(site_path))


@pytest.fixture
def bus(site):
    b = BacnetFieldBus(site, port=free_port())
    b.start()
    yield b
    b.stop()


def test_discovery_of_the_other_stack_is_complete(legacy):
    with BacnetGateway(port=free_port()) as gw:
        (dev,) = discover(gw, [legacy.address], timeout_s=2)
    assert (dev["instance"], dev["max_apdu"], dev["segmentation"]) == (7001, 480,
                                                                        "no-segmentation")
    assert dev["object_list"] == "by index" and len(dev["objects"]) == 1005
    by = {o["object"]: o for o in dev["objects"]}
    assert by["513,1"]["name"] == "Vendor Meter" and "unknown to the client" in \
        by["513,1"]["warning"]
    assert by["analog-value,1"]["commandable"] is False  # the gateway setpoint
    assert by["analog-value,2"]["commandable"] is True
    assert by["lighting-output,1"]["commandable"] is True
    assert by["analog-input,1000"]["name"] == "Zone 1000 Temperature"


def test_poll_write_release_and_refused_cov_against_the_other_stack(site, bus, tmp_path):
    r = bus.poll()
    assert {p: q for p, (_, q) in r.values.items()} == dict.fromkeys(
        ("gw.temp", "gw.sp", "gw.room_sp", "gw.lights", "gw.meter"), "good") | {
        "gw.typo": "bad", "gw.vendor_prop": "bad"}
    assert r.values["gw.meter"][0] == 12.5  # read raw: a REAL in a proprietary object
    addr = site.device("gw").address
    with Store(tmp_path / "b.sqlite", site.timezone) as store:
        w = Writer(site, bus, store)
        res = w.apply(WriteIntent("gw.sp", 27.5, "test: a non-commandable setpoint"))
        assert res.outcome == "done", res
        assert bus.read(addr, "analog-value,1") == 27.5
        assert w.apply(WriteIntent("gw.lights", 55, "test: dim")).outcome == "done"
        assert bus.priority_array(addr, "lighting-output,1") == {12: 55.0}
        (held_sp,) = [x for x in store.held_writes() if x.point == "gw.sp"]
        assert float(held_sp.previous) == 26.0  # the ledger says what it replaced
        # what the other stack answered to the read-backs is a reading at once
        assert {p: v for p, (_t, v, _q) in store.latest(["gw.sp", "gw.lights"]).items()} == {
            "gw.sp": 27.5, "gw.lights": 55.0}
        out = {x.point: x for x in w.release_all("shutdown", "test over")}
        assert out["gw.sp"].outcome == "restored", out["gw.sp"]
        assert store.latest(["gw.sp"])["gw.sp"][1] == 26.0
        assert bus.read(addr, "analog-value,1") == 26.0  # the value BEMS found
        assert bus.priority_array(addr, "lighting-output,1") == {}
        assert store.held_writes() == []
    # the vendor's object cannot be subscribed: it is polled only, and says why
    assert bus.subscribe(lambda *a: None) == 1
    deadline = time.monotonic() + 10
    while "gw.meter" not in bus.cov.refused and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "gw.meter" in bus.cov.refused
    assert bus.poll().values["gw.meter"] == (12.5, "good")


def test_a_crash_leaves_nothing_held_on_the_other_stack(site_path, legacy, tmp_path):
    db = tmp_path / "bems.sqlite"
    addr = legacy.address
    with BacnetGateway(port=free_port()) as gw:
        with Holder(site_path, db, [("gw.sp", 27.0), ("gw.room_sp", 25.5),
                                    ("gw.lights", 40)]) as holder:
            assert gw.read(addr, "analog-value,1") == 27.0
            assert 12 in gw.priority_array(addr, "analog-value,2")
            holder.crash()
        with BemsRun(site_path, db, "--poll-interval", "3600", "--dry-run") as run:
            assert float(gw.read(addr, "analog-value,1")) == 26.0  # restored, not relinquished
            assert gw.priority_array(addr, "analog-value,2") == {}
            assert gw.priority_array(addr, "lighting-output,1") == {}
            assert "every write released" in run.stop()
    with Store(db) as store:
        assert store.held_writes() == []


def test_the_command_line_finds_an_object_without_a_priority_array(legacy, tmp_path):
    """`bems write` on the other stack's value without a priority array, with no site file
    that says so: the writer finds out before writing, says so, and `bems release` restores
    the value it replaced (it was rejected, and the device kept the write). A number no BACnet
    Real holds is one line, exit 1, and nothing written."""
    from click.testing import CliRunner

    from bems.cli import main

    runner, db = CliRunner(), str(tmp_path / "cli.sqlite")
    addr, obj = legacy.address, "analog-value,1"

    def bems(*args: str):
        return runner.invoke(main, [*args, "--db", db, "--bacnet-port", str(free_port())])

    with BacnetGateway(port=free_port()) as gw:
        before = float(gw.read(addr, obj))
        r = bems("write", addr, obj, "26.5", "--priority", "12")
        assert r.exit_code == 0, r.output
        assert "done 26.5 written directly (no priority array)" in r.output, r.output
        assert float(gw.read(addr, obj)) == 26.5
        r = bems("write", addr, obj, "1e308", "--priority", "12")
        assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1, r.output
        assert "rejected" in r.output and "Real" in r.output
        assert float(gw.read(addr, obj)) == 26.5
        r = bems("release", addr, obj, "--priority", "12")
        assert r.exit_code == 0 and "restored" in r.output, r.output
        assert float(gw.read(addr, obj)) == before
        with Store(db) as store:
            assert store.held_writes() == []
