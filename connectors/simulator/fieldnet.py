"""A building's BACnet network, for discovery and interoperability tests and benchmarks.

The virtual centre serves *our* site's points; this serves what a new site looks like before
anyone wrote a site file: many controllers, each with hundreds of objects, some that cannot
segment, BBMDs joining IP subnets, and a BACnet router with devices on a network behind it (an
MS/TP trunk or a VRF gateway's virtual network, here a bacpypes3 virtual LAN). Everything is
plain bacpypes3 and comes from a JSON spec:

    {"devices": [{"instance": 1001, "address": "10.20.0.11/24:47808", "objects": 500,
                  "segmentation": "no-segmentation", "max_apdu": 480}],
     "bbmds":   [{"address": "10.20.0.254/24:47808", "peers": ["10.10.0.254:47808"]}],
     "routers": [{"address": "10.20.0.250/24:47808", "ip_network": 1, "network": 2001,
                  "instance": 2000, "devices": [{"mac": 5, "instance": 2005, "objects": 40}]}]}

Run it as ``python -m connectors.simulator.fieldnet SPEC.json``: it prints ``ready`` once every
socket is bound, then obeys lines on stdin (``set INSTANCE OBJECT VALUE``, ``restart
INSTANCE``) and stops at end of input or SIGTERM. Inside a network namespace the addresses are
real interfaces with real broadcast; on loopback, unicast only.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from typing import Any

from bacpypes3.app import Application
from bacpypes3.basetypes import BDTEntry, IPMode
from bacpypes3.local.analog import AnalogInputObject, AnalogValueObject, AnalogValueObjectCmd
from bacpypes3.local.binary import BinaryInputObject, BinaryOutputObject
from bacpypes3.local.cmd import Commandable
from bacpypes3.local.device import DeviceObject
from bacpypes3.local.multistate import MultiStateValueObject
from bacpypes3.local.networkport import NetworkPortObject
from bacpypes3.local.object import Object as LocalObject
from bacpypes3.object import BinaryLightingOutputObject
from bacpypes3.vlan import VirtualNetwork

from connectors.bacnet.common import port_free

VENDOR_ID = 999

# what a controller of an administrative centre holds, cycled: (type, name, units)
_KINDS = (
    ("analog-input", "Room {n} Temperature", "degreesCelsius"),
    ("analog-value", "Room {n} Cooling Setpoint", "degreesCelsius"),
    ("binary-output", "Room {n} AC Start Stop", None),
    ("binary-input", "Room {n} Occupancy", None),
    ("analog-input", "Panel {n} Power", "kilowatts"),
    ("analog-value", "Room {n} Offset Adjust", "deltaDegreesFahrenheit"),  # not commandable
    ("multi-state-value", "Room {n} Fan Mode", None),
    ("binary-lighting-output", "Room {n} Lights", None),  # DALI/KNX gateways
)


class BinaryLightingOutput(Commandable, LocalObject, BinaryLightingOutputObject):
    """Commandable binary lighting output (bacpypes3 has the class, not a local one)."""


def objects_for(count: int) -> list[Any]:
    """`count` objects of the kinds above, numbered per type from 1."""
    out: list[Any] = []
    per_type: dict[str, int] = {}
    for i in range(count):
        otype, name, units = _KINDS[i % len(_KINDS)]
        n = i // len(_KINDS) + 1
        inst = per_type[otype] = per_type.get(otype, 0) + 1
        common = {"objectIdentifier": (otype, inst), "objectName": name.format(n=n)}
        if otype == "analog-input":
            obj = AnalogInputObject(**common, presentValue=24.0 + (i % 10) / 10, units=units,
                                    statusFlags=[0, 0, 0, 0], eventState="normal",
                                    outOfService=False, covIncrement=0.1)
        elif otype == "analog-value" and "Setpoint" in name:
            obj = AnalogValueObjectCmd(**common, presentValue=26.0, relinquishDefault=26.0,
                                       units=units, statusFlags=[0, 0, 0, 0],
                                       eventState="normal", outOfService=False,
                                       covIncrement=0.1)
        elif otype == "analog-value":
            obj = AnalogValueObject(**common, presentValue=0.0, units=units,
                                    statusFlags=[0, 0, 0, 0], eventState="normal",
                                    outOfService=False)
        elif otype == "binary-output":
            obj = BinaryOutputObject(**common, presentValue="inactive",
                                     relinquishDefault="inactive", statusFlags=[0, 0, 0, 0],
                                     eventState="normal", outOfService=False,
                                     polarity="normal")
        elif otype == "binary-input":
            obj = BinaryInputObject(**common, presentValue="inactive", statusFlags=[0, 0, 0, 0],
                                    eventState="normal", outOfService=False, polarity="normal")
        elif otype == "binary-lighting-output":
            obj = BinaryLightingOutput(**common, presentValue="off", relinquishDefault="off",
                                       statusFlags=[0, 0, 0, 0], outOfService=False,
                                       blinkWarnEnable=False, egressTime=0,
                                       egressActive=False)
        else:
            obj = MultiStateValueObject(**common, presentValue=1, numberOfStates=3,
                                        statusFlags=[0, 0, 0, 0], eventState="normal",
                                        outOfService=False)
        out.append(obj)
    return out


def _device(spec: dict, default_name: str) -> DeviceObject:
    return DeviceObject(objectIdentifier=("device", spec["instance"]),
                        objectName=spec.get("name", default_name),
                        vendorIdentifier=VENDOR_ID, vendorName="BEMS field network",
                        modelName="field-controller",
                        maxApduLengthAccepted=spec.get("max_apdu", 1476),
                        segmentationSupported=spec.get("segmentation", "segmented-both"))


def _virtual_port(network: int, mac: int, vlan: str, number: int = 1) -> NetworkPortObject:
    return NetworkPortObject(objectIdentifier=("network-port", number),
                             objectName=f"port-{number}",
                             networkType="virtual", protocolLevel="bacnet-application",
                             macAddress=bytes([mac]), networkNumber=network,
                             networkNumberQuality="configured", networkInterfaceName=vlan,
                             statusFlags=[0, 0, 0, 0], reliability="no-fault-detected",
                             outOfService=False, changesPending=False, linkSpeed=0.0)


def _ip_of(address: str) -> tuple[str, int]:
    host = address.split("/")[0].split(":")[0]
    return host, int(address.rsplit(":", 1)[1])


class FieldNetwork:
    """Every application of the spec, in one asyncio loop."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.apps: dict[int, Application] = {}  # device instance → application
        self.builders: dict[int, Any] = {}  # device instance → how to build it again
        self.bound: list[tuple[str, int]] = []

    async def start(self) -> None:
        for dev in self.spec.get("devices", []):
            self._ip_device(dev)
        for b in self.spec.get("bbmds", []):
            self._bbmd(b)
        for r in self.spec.get("routers", []):
            self._router(r)
        await self.wait_bound()

    async def wait_bound(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        for host, port in self.bound:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                try:
                    s.bind((host, 0))
                except OSError as err:
                    raise RuntimeError(f"{host} is not an address of this host or namespace: "
                                       f"{err}") from None
            while port_free(host, port):
                if loop.time() > deadline:
                    raise RuntimeError(f"could not bind {host}:{port}")
                await asyncio.sleep(0.01)

    def _ip_device(self, dev: dict) -> None:
        def build() -> Application:
            port = NetworkPortObject(dev["address"], objectIdentifier=("network-port", 1),
                                     objectName="port-1")
            return Application.from_object_list(
                [_device(dev, f"Controller {dev['instance']}"), port,
                 *objects_for(dev.get("objects", 20))])
        self.builders[dev["instance"]] = build
        self.apps[dev["instance"]] = build()
        self.bound.append(_ip_of(dev["address"]))

    def _bbmd(self, b: dict) -> None:
        host, port = _ip_of(b["address"])
        npo = NetworkPortObject(b["address"], objectIdentifier=("network-port", 1),
                                objectName="bbmd-port")
        npo.bacnetIPMode = IPMode.bbmd
        npo.bbmdAcceptFDRegistrations = True
        npo.bbmdForeignDeviceTable = []
        npo.bbmdBroadcastDistributionTable = [BDTEntry(f"{host}:{port}")] + [
            BDTEntry(p) for p in b.get("peers", [])]
        inst = b.get("instance", 3000 + len(self.apps))
        self.apps[inst] = Application.from_object_list([
            DeviceObject(objectIdentifier=("device", inst), objectName=f"BBMD {host}",
                         vendorIdentifier=VENDOR_ID), npo])
        self.bound.append((host, port))

    def _router(self, r: dict) -> None:
        vlan = f"vlan-{r['network']}"
        VirtualNetwork(vlan)
        ip = NetworkPortObject(r["address"], objectIdentifier=("network-port", 1),
                               objectName="ip-port", networkNumber=r.get("ip_network", 1),
                               networkNumberQuality="configured")
        self.apps[r["instance"]] = Application.from_object_list([
            _device(r, f"Router {r['network']}"), ip,
            _virtual_port(r["network"], r.get("mac", 1), vlan, 2)])
        self.bound.append(_ip_of(r["address"]))
        for dev in r.get("devices", []):
            def build(dev: dict = dev) -> Application:
                return Application.from_object_list(
                    [_device(dev, f"Routed {r['network']}:{dev['mac']}"),
                     _virtual_port(r["network"], dev["mac"], vlan),
                     *objects_for(dev.get("objects", 20))])
            self.builders[dev["instance"]] = build
            self.apps[dev["instance"]] = build()

    def set_value(self, instance: int, obj: str, value: str) -> None:
        otype, inst = obj.split(",")
        from bacpypes3.primitivedata import ObjectIdentifier

        target = self.apps[instance].get_object_id(ObjectIdentifier(f"{otype},{inst}"))
        target.presentValue = (value if otype.startswith("binary") else
                               int(value) if otype.startswith("multi") else float(value))

    async def restart(self, instance: int) -> None:
        """A controller reboots: its application (and every COV subscription it held) goes,
        a new one comes up on the same address."""
        self.apps.pop(instance).close()
        await asyncio.sleep(0.3)
        self.apps[instance] = self.builders[instance]()
        await self.wait_bound()
        await asyncio.sleep(0.2)
        self.apps[instance].i_am()  # as controllers do at power-up (a global broadcast)

    def close(self) -> None:
        for app in self.apps.values():
            app.close()
        self.apps.clear()


async def serve(spec: dict) -> None:
    net = FieldNetwork(spec)
    await net.start()
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def commands() -> None:
        while True:
            line = (await reader.readline()).decode()
            if not line:
                done.set()
                return
            words = line.split()
            try:
                if words[:1] == ["set"]:
                    net.set_value(int(words[1]), words[2], words[3])
                elif words[:1] == ["restart"]:
                    await net.restart(int(words[1]))
                print("ok", line.strip(), flush=True)
            except Exception as err:  # noqa: BLE001 - a test's typo must not stop the network
                print("error", line.strip(), repr(err), flush=True)

    task = asyncio.ensure_future(commands())
    await done.wait()
    task.cancel()
    net.close()
    await asyncio.sleep(0.1)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0], encoding="utf-8") as f:
        spec = json.load(f)
    asyncio.run(serve(spec))


if __name__ == "__main__":
    main()
