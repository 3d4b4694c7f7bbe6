"""The Modbus TCP field bus (`bems.fieldbus.FieldBus` for a site's Modbus devices).

One thread owns an asyncio loop and the connections (one per gateway or meter address, kept
between cycles). A poll reads every due device side by side (connectors/modbus/client.py); a
device that fails is stale (one `stale` reading per outage) and retried with the same back-off
as BACnet's; a point the device answered badly is `bad` for that cycle. Modbus has no priority
array, no clock and no schedule objects: writes are direct (the Writer treats every Modbus
point as non-commandable: it keeps and restores the value it replaced), the rest is refused.
Addresses are `HOST:PORT/UNIT`, objects `table,address` (bems.registers).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from dataclasses import replace
from typing import Any

from bems.errors import DeviceError
from bems.fieldbus import (ControllerSchedule, DeviceHealth, OnValue, PollResult, Sink,
                          mark_stale)
from bems.site import Device, Site
from connectors.modbus.client import ModbusDevice, ModbusError, ModbusReader, read_device, \
    write_point
from connectors.modbus.codec import coalesce

UTC = dt.timezone.utc


class ModbusBusError(DeviceError):
    pass


class ModbusFieldBus:
    def __init__(self, site: Site, backoff_base_s: float = 5.0, backoff_max_s: float = 60.0):
        self.site = site.for_protocol("modbus")
        self.devices = {d.id: self._device(d) for d in self.site.devices}
        self.by_address = {d.address: d.id for d in self.site.devices}
        self.health = {d.id: DeviceHealth(d.id) for d in self.site.devices}
        self.backoff_base_s, self.backoff_max_s = backoff_base_s, backoff_max_s
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._reader: ModbusReader | None = None

    def _device(self, d: Device) -> ModbusDevice:
        return ModbusDevice(d.id, d.host, d.port, d.unit or 1, d.timeout_s, d.retries,
                            tuple(p.modbus() for p in self.site.points_of(d.id)))

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                        name="modbus")
        self._thread.start()

    def stop(self) -> None:
        if self.loop is None:
            return
        if self._reader is not None:
            self.loop.call_soon_threadsafe(self._reader.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
        self.loop, self._thread, self._reader = None, None, None

    def _call(self, coro, timeout: float):
        if self.loop is None:
            coro.close()
            raise ModbusBusError("the Modbus bus is not started")
        try:
            return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)
        except TimeoutError:
            raise ModbusBusError(f"no answer within {timeout:g} s") from None

    # --- what the writer needs ---------------------------------------------------------------

    def _point(self, address: str, obj: str):
        dev_id = self.by_address.get(address)
        if dev_id is None:
            raise ModbusBusError(f"no Modbus device at {address}")
        for p in self.site.points_of(dev_id):
            if p.object == obj:
                return self.devices[dev_id], p.modbus()
        raise ModbusBusError(f"{address}: no point at {obj} in the site file")

    def write(self, address: str, obj: str, value: Any, priority: int | None,
              timeout: float | None = None) -> None:
        if priority is not None:
            raise ModbusBusError("Modbus has no priority array: write without a priority")
        if value is None:
            raise ModbusBusError("Modbus cannot relinquish: write the value to restore")
        dev, reg = self._point(address, obj)
        try:
            self._call(write_point(dev, reg, float(value)),
                       timeout or dev.timeout_s * (dev.retries + 1) * 3 + 1)
        except ModbusError as err:
            raise ModbusBusError(str(err)) from None

    def priority_array(self, address: str, obj: str,
                       timeout: float | None = None) -> dict[int, Any]:
        raise ModbusBusError("Modbus registers have no priority array")

    def read(self, address: str, obj: str, prop: str = "present-value",
             timeout: float | None = None) -> Any:
        if prop != "present-value":
            raise ModbusBusError(f"Modbus registers have no property {prop}")
        dev, reg = self._point(address, obj)
        r = self._call(read_device(dev, coalesce([reg])),
                       timeout or dev.timeout_s * (dev.retries + 1) + 2)
        if r.error or reg.id in r.bad:
            raise ModbusBusError(r.error or r.bad[reg.id])
        return r.values[reg.id]

    def read_clock(self, device: Device) -> dt.datetime:
        raise ModbusBusError(f"{device.id}: a Modbus device has no clock BEMS can read")

    def sync_clock(self, device: Device, local: dt.datetime) -> None:
        raise ModbusBusError(f"{device.id}: a Modbus device has no clock BEMS can set")

    def write_schedule(self, device: Device, schedule: ControllerSchedule) -> None:
        raise ModbusBusError(f"{device.id}: a Modbus device holds no schedule")

    def read_schedule(self, device: Device) -> ControllerSchedule:
        raise ModbusBusError(f"{device.id}: a Modbus device holds no schedule")

    # --- what the runtime needs --------------------------------------------------------------

    def poll(self, sink: Sink | None = None) -> PollResult:
        budget = max((d.timeout_s * (d.retries + 1) * max(1, len(coalesce(list(d.registers))))
                      for d in self.devices.values()), default=1) + 10
        return self._call(self._poll(sink), budget)

    async def _poll(self, sink: Sink | None) -> PollResult:
        t0 = time.perf_counter()
        now = dt.datetime.now(UTC).replace(microsecond=0)
        mono = time.monotonic()
        due = [d for d in self.site.devices if self.health[d.id].due(mono)]
        skipped = tuple(d.id for d in self.site.devices if d not in due)
        if self._reader is None:
            self._reader = ModbusReader(list(self.devices.values()))
        reader = self._reader
        reader.devices = [self.devices[d.id] for d in due]
        reads = await reader.cycle()
        values: dict[str, tuple[Any, str]] = {}
        rows: list[tuple] = []
        for dev, r in zip(due, reads):
            h = self.health[dev.id]
            h.last_duration_s = r.seconds
            if not r.error or any(v is not None for v in r.values.values()):
                h.answered(now, r.error)
                for pid, v in r.values.items():
                    q = "good" if v is not None else "bad"
                    values[pid] = (v, q)
                    rows.append((pid, now, v, q))
            else:
                first = h.failed(r.error, time.monotonic(), self.backoff_base_s,
                                 self.backoff_max_s)
                mark_stale(values, rows, self.site.points_of(dev.id), now, first)
        for dev_id in skipped:
            mark_stale(values, rows, self.site.points_of(dev_id), now, False)
        if rows and sink is not None:
            sink(rows)
        return PollResult(now, values, {k: replace(v) for k, v in self.health.items()},
                          time.perf_counter() - t0, skipped)

    def subscribe(self, on_value: OnValue) -> int:
        return 0  # Modbus has no change notification: polling only

    def unsubscribe(self) -> None:
        pass

    def backfill(self, since: dt.datetime, sink: Sink) -> dict[str, int]:
        return {}  # a meter's own log is vendor-specific: not read
