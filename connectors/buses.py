"""A site's field bus: the combination of its devices' protocols (BACnet/IP, Modbus TCP).

`field_bus(site)` gives the one bus the runtime and the Writer use: a protocol's own bus when
the site has one protocol, else a `MixedBus` that sends each call to the bus of the device it
names (by address) and merges the polls. A third protocol is a folder under `connectors/`
and a line in `_BUSES`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from bems.fieldbus import ControllerSchedule, FieldBus, OnValue, PollResult, Sink
from bems.site import Device, Site


def _bacnet(site: Site, bacnet_port: int | None, interface: str | None) -> FieldBus:
    from connectors.bacnet.fieldbus import BacnetFieldBus

    return BacnetFieldBus(site, port=bacnet_port, interface=interface)


def _modbus(site: Site, bacnet_port: int | None, interface: str | None) -> FieldBus:
    from connectors.modbus.fieldbus import ModbusFieldBus

    return ModbusFieldBus(site)


_BUSES = {"bacnet": _bacnet, "modbus": _modbus}


def field_bus(site: Site, bacnet_port: int | None = None,
              interface: str | None = None) -> FieldBus:
    protocols = site.protocols() or ["bacnet"]
    buses = {p: _BUSES[p](site, bacnet_port, interface) for p in protocols}
    return buses[protocols[0]] if len(buses) == 1 else MixedBus(site, buses)


class MixedBus:
    """Several protocols' buses as one `FieldBus`."""

    def __init__(self, site: Site, buses: dict[str, FieldBus]):
        self.site = site
        self.buses = buses
        self._protocol = {d.address: d.protocol for d in site.devices}

    def _by_address(self, address: str) -> FieldBus:
        return self.buses[self._protocol.get(address, "bacnet")]

    def _by_device(self, device: Device) -> FieldBus:
        return self.buses[device.protocol]

    def start(self) -> None:
        for bus in self.buses.values():
            bus.start()

    def stop(self) -> None:
        for bus in self.buses.values():
            bus.stop()

    def write(self, address: str, obj: str, value: Any, priority: int | None,
              timeout: float | None = None) -> None:
        self._by_address(address).write(address, obj, value, priority, timeout=timeout)

    def priority_array(self, address: str, obj: str,
                       timeout: float | None = None) -> dict[int, Any]:
        return self._by_address(address).priority_array(address, obj, timeout=timeout)

    def read(self, address: str, obj: str, prop: str = "present-value",
             timeout: float | None = None) -> Any:
        return self._by_address(address).read(address, obj, prop, timeout=timeout)

    def read_clock(self, device: Device) -> dt.datetime:
        return self._by_device(device).read_clock(device)

    def sync_clock(self, device: Device, local: dt.datetime) -> None:
        self._by_device(device).sync_clock(device, local)

    def write_schedule(self, device: Device, schedule: ControllerSchedule) -> None:
        self._by_device(device).write_schedule(device, schedule)

    def read_schedule(self, device: Device) -> ControllerSchedule:
        return self._by_device(device).read_schedule(device)

    def poll(self, sink: Sink | None = None) -> PollResult:
        results = [bus.poll(sink) for bus in self.buses.values()]
        first = results[0]
        return replace(first, values={k: v for r in results for k, v in r.values.items()},
                       devices={k: v for r in results for k, v in r.devices.items()},
                       duration_s=sum(r.duration_s for r in results),
                       skipped=tuple(s for r in results for s in r.skipped))

    def subscribe(self, on_value: OnValue) -> int:
        return sum(bus.subscribe(on_value) for bus in self.buses.values())

    def unsubscribe(self) -> None:
        for bus in self.buses.values():
            bus.unsubscribe()

    def backfill(self, since: dt.datetime, sink: Sink) -> dict[str, int]:
        out: dict[str, int] = {}
        for bus in self.buses.values():
            out.update(bus.backfill(since, sink))
        return out
