"""An in-memory model of the site's devices behind the `FieldBus` protocol.

Each point of the site file is an object with a present value; writable points are commandable,
with a 16-slot priority array and a relinquish default, as BACnet defines them. The model also
refuses values outside a point's limits, and can be told to be offline, to refuse writes, or to
lie on read-back, so every rule of the writer and every job of the runtime can be tested in
milliseconds, without sockets or EnergyPlus. It is not a simulator of the building: tests set
sensor values with `set`.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from bems.errors import DeviceRefused, DeviceUnreachable
from bems.fieldbus import ControllerSchedule, DeviceHealth, OnValue, PollResult, Sink
from bems.site import Device, Point, Site

UTC = dt.timezone.utc


def _plain(value: Any) -> Any:
    if value is None:
        return None
    if value in ("active", "inactive", "on", "off"):
        return 1.0 if value in ("active", "on") else 0.0
    if isinstance(value, (bool, int, float)):
        return float(value)
    return value


@dataclass
class MemoryObject:
    point: Point
    relinquish_default: Any = 0.0
    slots: dict[int, Any] = field(default_factory=dict)

    @property
    def present_value(self) -> Any:
        return self.slots[min(self.slots)] if self.slots else self.relinquish_default


class MemoryBus:
    def __init__(self, site: Site, clock: Callable[[], dt.datetime] | None = None):
        self.site = site
        self.clock = clock or (lambda: dt.datetime.now(UTC))
        self.objects = {p.id: MemoryObject(p) for p in site.points}
        self._by_address = {(site.device(p.device).address, p.object): p.id
                            for p in site.points}
        self.offline: set[str] = set()  # device ids that do not answer
        self.refuse: set[str] = set()  # point ids whose writes the device refuses
        self.lie: dict[str, Any] = {}  # point id → what its priority array shows instead
        # objects without a priority array on the device, whatever the site file says (a
        # device of another make: its value is simply replaced)
        self.no_priority_array: set[str] = {p.id for p in site.points if not p.commandable}
        self.schedules: dict[str, ControllerSchedule] = {}
        self.clock_offset: dict[str, dt.timedelta] = {}  # device id → how wrong its clock is
        self.writes: list[tuple[str, Any, int | None]] = []  # (point, value, priority) in order
        self.health = {d.id: DeviceHealth(d.id) for d in site.devices}
        self._on_value: OnValue | None = None
        self.running = False

    # --- the test's hand on the building -------------------------------------------------------

    def set(self, point_id: str, value: Any) -> None:
        """What a sensor reads, or a commandable point's relinquish default."""
        self.objects[point_id].relinquish_default = _plain(value)
        self._changed(point_id)

    def value(self, point_id: str) -> Any:
        return self.objects[point_id].present_value

    def slots(self, point_id: str) -> dict[int, Any]:
        return dict(self.objects[point_id].slots)

    # --- FieldBus ---------------------------------------------------------------------------

    def start(self) -> None:
        self.running = True

    def stop(self) -> None:
        self.unsubscribe()
        self.running = False

    def _object(self, address: str, obj: str) -> MemoryObject:
        pid = self._by_address.get((address, obj))
        if pid is None:
            raise DeviceRefused(f"{address} {obj}: unknown-object")
        if self.objects[pid].point.device in self.offline:
            raise DeviceUnreachable(f"{address}: no answer")
        return self.objects[pid]

    def write(self, address: str, obj: str, value: Any, priority: int | None,
              timeout: float | None = None) -> None:
        o = self._object(address, obj)
        p = o.point
        if not p.writable or p.id in self.refuse:
            raise DeviceRefused(f"{address} {obj}: property/write-access-denied")
        prio = priority or 16
        if not 1 <= prio <= 16:
            raise DeviceRefused(f"{address} {obj}: property/parameter-out-of-range")
        v = _plain(value)
        if v is not None and (not isinstance(v, float) or v != v or
                              (p.min is not None and v < p.min) or
                              (p.max is not None and v > p.max)):
            raise DeviceRefused(f"{address} {obj}: property/value-out-of-range")
        if p.id in self.no_priority_array:  # the value is simply replaced
            if v is None:
                raise DeviceRefused(f"{address} {obj}: property/invalid-data-type (Null)")
            o.relinquish_default = v
        elif v is None:
            o.slots.pop(prio, None)
        else:
            o.slots[prio] = v
        self.writes.append((p.id, v, prio))
        self._changed(p.id)

    def read(self, address: str, obj: str, prop: str = "present-value",
             timeout: float | None = None) -> Any:
        o = self._object(address, obj)
        if prop != "present-value":
            raise DeviceRefused(f"{address} {obj}: property/unknown-property")
        return self.lie.get(o.point.id, o.present_value)

    def priority_array(self, address: str, obj: str,
                       timeout: float | None = None) -> dict[int, Any]:
        o = self._object(address, obj)
        if o.point.id in self.no_priority_array:
            raise DeviceRefused(f"{address} {obj}: property/unknown-property")
        if o.point.id in self.lie:
            return {p: self.lie[o.point.id] for p in o.slots} or {16: self.lie[o.point.id]}
        return dict(o.slots)

    def poll(self, sink: Sink | None = None) -> PollResult:
        t0 = time.perf_counter()
        now = self.clock().replace(microsecond=0)
        values: dict[str, tuple[Any, str]] = {}
        rows: list[tuple] = []
        for dev in self.site.devices:
            h = self.health[dev.id]
            if dev.id in self.offline:
                first = h.state != "stale"
                h.state, h.failures, h.last_error = "stale", h.failures + 1, "no answer"
                for p in self.site.points_of(dev.id):
                    values[p.id] = (None, "stale")
                    if first:
                        rows.append((p.id, now, None, "stale"))
                continue
            h.state, h.failures, h.last_ok, h.last_error = "ok", 0, now, ""
            for p in self.site.points_of(dev.id):
                v = self.objects[p.id].present_value
                values[p.id] = (v, "good")
                rows.append((p.id, now, v if isinstance(v, float) else None, "good"))
        if rows and sink is not None:
            sink(rows)
        return PollResult(now, values, {k: DeviceHealth(**vars(h)) for k, h in
                                        self.health.items()}, time.perf_counter() - t0)

    def subscribe(self, on_value: OnValue) -> int:
        self._on_value = on_value
        return sum(1 for p in self.site.points if p.cov)

    def unsubscribe(self) -> None:
        self._on_value = None

    def _changed(self, point_id: str) -> None:
        o = self.objects[point_id]
        if self._on_value is not None and o.point.cov and o.point.device not in self.offline:
            self._on_value(point_id, o.present_value, self.clock())

    def backfill(self, since: dt.datetime, sink: Sink) -> dict[str, int]:
        return {}  # the model keeps no trend logs

    def read_clock(self, device: Device) -> dt.datetime:
        if device.id in self.offline:
            raise DeviceUnreachable(f"{device.address}: no answer")
        local = self.clock().astimezone(self.site.tz).replace(tzinfo=None, microsecond=0)
        return local + self.clock_offset.get(device.id, dt.timedelta())

    def sync_clock(self, device: Device, local: dt.datetime) -> None:
        if device.id in self.offline:
            raise DeviceUnreachable(f"{device.address}: no answer")
        now = self.clock().astimezone(self.site.tz).replace(tzinfo=None, microsecond=0)
        self.clock_offset[device.id] = local.replace(microsecond=0) - now

    def write_schedule(self, device: Device, schedule: ControllerSchedule) -> None:
        if device.id in self.offline:
            raise DeviceUnreachable(f"{device.address}: no answer")
        self.schedules[device.id] = schedule

    def read_schedule(self, device: Device) -> ControllerSchedule:
        if device.id in self.offline:
            raise DeviceUnreachable(f"{device.address}: no answer")
        if device.id not in self.schedules:
            raise DeviceRefused(f"{device.address}: no schedule written")
        return self.schedules[device.id]
