"""BEMS on a building's network, not its own loopback simulator: real IP subnets with real
broadcast (a network namespace the test makes), controllers on another subnet joined by a BBMD
pair, a BACnet router with devices on the network behind it, a BEMS on a third subnet that
must register as a foreign device, and a controller that cannot segment holding 1,000 objects.
Every device is plain bacpypes3 (`connectors/simulator/fieldnet.py`); the other stack is in
test_interop.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from devtools import netns

pytestmark = pytest.mark.bacnet

WHY = netns.available()
if WHY:
    pytest.skip(f"field-network tests need network namespaces: {WHY}", allow_module_level=True)

SPEC = {
    "devices": [
        {"instance": 1011, "address": "10.20.0.11/24:47808", "objects": 300},
        {"instance": 1012, "address": "10.20.0.12/24:47808", "objects": 1000,
         "segmentation": "no-segmentation", "max_apdu": 480},
    ],
    "bbmds": [
        {"address": "10.10.0.254/24:47808", "peers": ["10.20.0.254:47808"], "instance": 3001},
        {"address": "10.20.0.254/24:47808", "peers": ["10.10.0.254:47808"], "instance": 3002},
    ],
    "routers": [
        {"address": "10.20.0.250/24:47808", "ip_network": 1, "network": 2001, "instance": 2000,
         "devices": [{"mac": 5, "instance": 2005, "objects": 40},
                     {"mac": 6, "instance": 2006, "objects": 40}]},
    ],
}
FIELD = {1011, 1012, 2005, 2006}  # the controllers (BBMDs and the router are devices too)

SITE = """
[site]
name = "Field test"
timezone = "Asia/Ho_Chi_Minh"

[bacnet]
interface = "10.10.0.5/24"
instance = 599100

[[devices]]
id = "vrf5"
address = "2001:5"
instance = 2005
timeout_s = 2

[[devices]]
id = "ctl12"
address = "10.20.0.12:47808"
instance = 1012
timeout_s = 2

[[points]]
id = "vrf5.temp"
device = "vrf5"
object = "analog-input,1"
kind = "temperature"

[[points]]
id = "vrf5.sp"
device = "vrf5"
object = "analog-value,1"
kind = "setpoint"
writable = true
min = 24
max = 30

[[points]]
id = "vrf5.ac"
device = "vrf5"
object = "binary-output,1"
kind = "status"
writable = true

[[points]]
id = "vrf5.lights"
device = "vrf5"
object = "binary-lighting-output,1"
kind = "lighting"
writable = true

[[points]]
id = "ctl12.temp"
device = "ctl12"
object = "analog-input,240"
kind = "temperature"

[[points]]
id = "ctl12.gone"  # the controller has no such object: this point is bad, nothing else
device = "ctl12"
object = "analog-input,999"
kind = "temperature"
"""


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    spec = tmp_path_factory.mktemp("field") / "spec.json"
    spec.write_text(json.dumps(SPEC))
    subnets = {"sa": ["10.10.0.5/24", "10.10.0.6/24", "10.10.0.254/24"],
               "sb": ["10.20.0.11/24", "10.20.0.12/24", "10.20.0.250/24", "10.20.0.254/24"],
               "sc": ["10.30.0.5/24"]}  # a third subnet with no BBMD of its own
    with netns.Namespace(subnets) as ns:
        log = tmp_path_factory.mktemp("field") / "fieldnet.log"
        proc = subprocess.Popen(ns.command(sys.executable, "-m", "connectors.simulator.fieldnet",
                                           str(spec)),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=log.open("w"), text=True)
        try:
            line = proc.stdout.readline().strip()
            assert line == "ready", (line, log.read_text()[-3000:])
            ns.proc = proc
            yield ns
        finally:
            netns.end(proc)


def command(ns, line: str) -> None:
    """A line to the field network's stdin, and its answer."""
    ns.proc.stdin.write(line + "\n")
    ns.proc.stdin.flush()
    while True:
        out = ns.proc.stdout.readline()
        assert out, "the field network stopped"
        if out.strip().endswith(line):
            assert out.startswith("ok"), out
            return


def bems(ns, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(ns.command(sys.executable, "-m", "bems", *args), capture_output=True,
                          text=True, timeout=timeout)


def discover_json(ns, *args: str) -> dict:
    r = bems(ns, "discover", "--json", *args)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def test_broadcast_discovery_finds_every_device_across_the_bbmds_and_behind_the_router(field):
    out = discover_json(field, "--interface", "10.10.0.5/24")
    assert out["routers"] == {"10.20.0.250:47808": [2001]}  # Who-Is-Router-To-Network
    by_instance = {d["instance"]: d for d in out["devices"]}
    assert FIELD <= set(by_instance), sorted(by_instance)
    # routed devices are named by network and MAC; the others by IP address and port
    assert by_instance[2005]["address"] == "2001:5" and by_instance[2005]["network"] == 2001
    assert by_instance[2006]["address"] == "2001:6"
    assert by_instance[1011]["address"] == "10.20.0.11:47808"
    # the controller without segmentation: all 1,000 objects, read entry by entry, named
    small = by_instance[1012]
    assert (small["max_apdu"], small["segmentation"]) == (480, "no-segmentation")
    assert small["object_list"] == "by index"
    assert len(small["objects"]) == 1000
    assert all(o["name"] for o in small["objects"]), [o for o in small["objects"]
                                                      if not o["name"]][:3]
    big = by_instance[1011]
    assert big["object_list"] == "whole" and len(big["objects"]) == 300
    # commandability is recorded: the setpoints have a priority array, the offsets none
    sp = next(o for o in big["objects"] if o["name"] == "Room 1 Cooling Setpoint")
    off = next(o for o in big["objects"] if o["name"] == "Room 1 Offset Adjust")
    assert sp["commandable"] is True and off["commandable"] is False


def test_ranged_who_is_and_who_is_to_one_network(field):
    ranged = discover_json(field, "--interface", "10.10.0.5/24", "--range", "2005-2006",
                           "--wait", "2")
    assert {d["instance"] for d in ranged["devices"]} == {2005, 2006}
    one_net = discover_json(field, "--interface", "10.10.0.5/24", "--network", "2001",
                            "--wait", "2")
    assert {d["instance"] for d in one_net["devices"]} == {2005, 2006}


def test_a_bems_on_a_subnet_without_bbmd_finds_them_as_a_foreign_device(field):
    alone = bems(field, "discover", "--json", "--interface", "10.30.0.5/24", "--wait", "2")
    assert alone.returncode != 0 and "no device answered" in alone.stderr  # nothing local
    out = discover_json(field, "--interface", "10.30.0.5/24", "--bbmd", "10.20.0.254:47808",
                        "--wait", "2")
    assert FIELD <= {d["instance"] for d in out["devices"]}
    # a BBMD address where nothing answers: said plainly, not a silent empty list
    nobody = bems(field, "discover", "--interface", "10.30.0.5/24", "--bbmd",
                  "10.20.0.99:47808", "--wait", "1")
    assert nobody.returncode != 0
    assert "did not accept BEMS as a foreign device" in nobody.stderr, nobody.stderr


def test_the_draft_site_file_names_routed_devices_and_marks_every_guess(field, tmp_path):
    r = bems(field, "discover", "--site-section", "--interface", "10.10.0.5/24",
             "--range", "2005-2005", "--wait", "2")
    assert r.returncode == 0, r.stderr[-2000:]
    draft = r.stdout
    assert 'address = "2001:5"' in draft
    assert draft.count("[[points]]") == 40 and draft.count("# REVIEW") >= 40
    assert "# writable = true" in draft and "\nwritable = true" not in draft  # a person opts in
    assert "# commandable = false" in draft  # the offsets have no priority array
    # kinds come from names and units: temperatures, setpoints, power
    assert 'name = "Room 1 Temperature"\nunit = "degC"' in draft
    assert 'kind = "setpoint"\nname = "Room 1 Cooling Setpoint"' in draft
    assert 'kind = "power"\nname = "Panel 1 Power"' in draft
    # the draft checks as written, with the network BEMS searched from
    path = tmp_path / "draft.toml"
    path.write_text(draft)
    r = subprocess.run([sys.executable, "-m", "bems", "check-config", str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'interface = "10.10.0.5/24"' in draft


def test_routed_points_are_polled_written_read_back_and_released(field, tmp_path):
    from bems.config import parse_site
    from bems.control import Writer
    from bems.intents import WriteIntent
    from bems.storage import Store
    from connectors.bacnet.fieldbus import BacnetFieldBus

    site = parse_site(SITE, "field.toml")
    bus = BacnetFieldBus(site)
    with field.inside():  # BEMS's sockets are made on the building's subnet A
        bus.start()
    try:
        result = bus.poll()
        assert {p: q for p, (_, q) in result.values.items()} == {
            "vrf5.temp": "good", "vrf5.sp": "good", "vrf5.ac": "good", "vrf5.lights": "good",
            "ctl12.temp": "good",
            "ctl12.gone": "bad"}
        with Store(tmp_path / "b.sqlite", site.timezone) as store:
            w = Writer(site, bus, store)
            r = w.apply(WriteIntent("vrf5.sp", 27.0, "test: routed write"))
            assert r.outcome == "done", r
            assert bus.priority_array("2001:5", "analog-value,1") == {12: 27.0}
            assert w.apply(WriteIntent("vrf5.ac", 1, "test")).outcome == "done"
            assert bus.read("2001:5", "binary-output,1") == 1.0
            assert w.apply(WriteIntent("vrf5.lights", 1, "test: lights on")).outcome == "done"
            assert bus.priority_array("2001:5", "binary-lighting-output,1") == {12: 1.0}
            assert bus.read("2001:5", "binary-lighting-output,1") == 1.0  # "on"
            released = w.release_all("shutdown", "test over")
            assert {x.outcome for x in released} == {"released"}
            assert bus.priority_array("2001:5", "analog-value,1") == {}
            assert bus.read("2001:5", "binary-output,1") == 0.0
            assert bus.priority_array("2001:5", "binary-lighting-output,1") == {}
            assert bus.read("2001:5", "binary-lighting-output,1") == 0.0  # "off" again
            assert store.held_writes() == []
    finally:
        bus.stop()


def test_cov_subscriptions_come_back_after_a_controller_restarts(field):
    from bems.config import parse_site
    from connectors.bacnet.fieldbus import BacnetFieldBus

    site = parse_site(SITE.replace('kind = "temperature"\n', 'kind = "temperature"\ncov = true\n',
                                   1), "field.toml")
    got: list[tuple[str, float]] = []
    bus = BacnetFieldBus(site, cov_lifetime_s=60)
    with field.inside():
        bus.start()
    try:
        assert bus.subscribe(lambda pid, v, when: got.append((pid, v))) == 1

        def wait_for(value: float, within: float = 15) -> bool:
            deadline = time.monotonic() + within
            while time.monotonic() < deadline:
                if ("vrf5.temp", value) in got:
                    return True
                time.sleep(0.1)
            return False

        command(field, "set 2005 analog-input,1 25.5")
        assert wait_for(25.5), got
        # the controller reboots, forgets every subscription it held, and says I-Am
        command(field, "restart 2005")
        command(field, "set 2005 analog-input,1 26.5")
        assert wait_for(26.5), got
        assert bus.cov.renewals >= 1
    finally:
        bus.stop()
