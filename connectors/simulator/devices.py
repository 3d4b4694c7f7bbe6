"""The virtual centre's BACnet/IP devices (bacpypes3), built from the site file.

One application per device, each on its own UDP port (bacpypes3 treats unicast to its own
port on 127.x as self-addressed, so devices never share one). Commandable objects have a
priority array and a relinquish default; the relinquish default of AC and lighting follows the
controller's local time clock, which is what the building does when nobody commands it.
Writes outside a point's limits are refused with property / value-out-of-range.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Callable

from bacpypes3.app import Application
from bacpypes3.errors import PropertyError
from bacpypes3.local.analog import AnalogInputObject, AnalogOutputObject, AnalogValueObject, AnalogValueObjectCmd
from bacpypes3.local.binary import BinaryInputObject, BinaryOutputObject, BinaryValueObject, BinaryValueObjectCmd
from bacpypes3.local.cmd import Commandable
from bacpypes3.local.device import DeviceObject
from bacpypes3.local.multistate import MultiStateInputObject, MultiStateValueObject
from bacpypes3.local.networkport import NetworkPortObject
from bacpypes3.apdu import ReadRangeACK
from bacpypes3.basetypes import (
    CalendarEntry, DailySchedule, DateRange, DateTime, LogRecord, LogRecordLogDatum,
    ResultFlags, SpecialEvent,
)
from bacpypes3.constructeddata import Any as AnyValue, ArrayOf, ListOf
from bacpypes3.local.object import Object as LocalObject
from bacpypes3.local.schedule import ScheduleObject
from bacpypes3.object import CalendarObject, TrendLogObject
from bacpypes3.primitivedata import Date, Null, Real, Time

from bems.errors import BemsError
from connectors.bacnet.common import plain, port_free, port_holder
from connectors.simulator.modbus import VirtualModbus
from bems.site import Point, Site

UNITS = {"degc": "degreesCelsius", "kw": "kilowatts", "kwh": "kilowattHours",
         "percent": "percent", "%": "percent", "": "noUnits"}
VENDOR_ID = 999  # "unassigned/test" range; these are simulated devices


class SimulatorError(BemsError):
    """The virtual centre cannot start or run."""


class _Limited:
    """Refuse writes outside [min, max] the way a real controller does."""

    _bems_min: float | None = None
    _bems_max: float | None = None

    async def write_property(self, attr: Any, value: Any, index: Any = None,
                             priority: Any = None) -> None:
        if attr in ("presentValue", 85) and not isinstance(value, Null):
            try:
                v = float(value)
            except (TypeError, ValueError):
                v = None
            if v is not None and ((self._bems_min is not None and v < self._bems_min)
                                  or (self._bems_max is not None and v > self._bems_max)):
                raise PropertyError("valueOutOfRange")
        await super().write_property(attr, value, index, priority)  # type: ignore[misc]


class LimitedAnalogValue(_Limited, AnalogValueObjectCmd):
    pass


class LimitedAnalogOutput(_Limited, AnalogOutputObject):
    pass


class LimitedMultiStateValue(_Limited, Commandable, MultiStateValueObject):
    pass


class SimDevice(DeviceObject):
    """A device whose local date and time are the simulation's, not the host's."""

    _sim_clock: Callable[[], dt.datetime] | None = None
    _clock_offset: dt.timedelta = dt.timedelta()  # a controller clock that is wrong (a fault)

    def local_now(self) -> dt.datetime:
        now = self._sim_clock() if self._sim_clock else dt.datetime.now()
        return now + self._clock_offset

    @property
    def localDate(self) -> Date:  # type: ignore[override]
        return Date(self.local_now().strftime("%Y-%m-%d"))

    @localDate.setter
    def localDate(self, value: Any) -> None:
        pass

    @property
    def localTime(self) -> Time:  # type: ignore[override]
        return Time(self.local_now().strftime("%H:%M:%S.00"))

    @localTime.setter
    def localTime(self, value: Any) -> None:
        pass


class SimCalendar(LocalObject, CalendarObject):
    async def _post_init(self) -> None:  # no notification class on a calendar
        pass


class SimTrendLog(LocalObject, TrendLogObject):
    """A trend log whose records live in a Python ring buffer, served by ReadRange."""

    async def _post_init(self) -> None:
        pass

    def log(self, when: dt.datetime, value: float) -> None:
        recs = self._records
        self._seq += 1
        recs.append((self._seq, when, float(value)))
        if len(recs) > self._size:
            del recs[: len(recs) - self._size]


RANGE_MAX_ITEMS = 40  # log records per ReadRange answer: fits an unsegmented 1024-byte APDU


class FaultyApplication(Application):
    """An application that can be told to stop answering or to answer slowly, and serves
    ReadRange on its trend logs (bacpypes3 0.0.110 does not)."""

    offline: bool = False
    delay_s: float = 0.0

    async def do_TimeSynchronizationRequest(self, apdu) -> None:  # type: ignore[override]
        """Set the device's clock (local time), as a controller does."""
        d, t = apdu.time.date, apdu.time.time
        wanted = dt.datetime(d[0] + 1900, d[1], d[2], t[0], t[1], t[2])
        dev = self.device_object
        dev._clock_offset = dt.timedelta()
        dev._clock_offset = wanted - dev.local_now()

    async def do_ReadRangeRequest(self, apdu) -> None:  # type: ignore[override]
        obj = self.get_object_id(apdu.objectIdentifier)
        if not isinstance(obj, SimTrendLog):
            raise PropertyError("propertyIsNotAList")
        recs = obj._records
        rng = apdu.range
        if rng is None or rng.byTime is not None:
            if rng is None:
                idx, count = 0, len(recs)
            else:
                ref = _to_datetime(rng.byTime.referenceTime)
                count = rng.byTime.count
                after = [i for i, r in enumerate(recs) if r[1] > ref] if count > 0 else \
                        [i for i, r in enumerate(recs) if r[1] < ref]
                idx = (after[0] if count > 0 else after[-1]) if after else None
        elif rng.bySequenceNumber is not None:
            ref, count = rng.bySequenceNumber.referenceSequenceNumber, rng.bySequenceNumber.count
            idx = next((i for i, r in enumerate(recs) if r[0] == ref), None)
        else:
            ref, count = rng.byPosition.referenceIndex, rng.byPosition.count
            idx = ref - 1 if 1 <= ref <= len(recs) else None
        if idx is None or count == 0:
            sel = []
        elif count > 0:
            sel = recs[idx: idx + count]
        else:
            sel = recs[max(0, idx + count + 1): idx + 1]
        more = len(sel) > RANGE_MAX_ITEMS
        sel = sel[:RANGE_MAX_ITEMS] if count >= 0 else sel[-RANGE_MAX_ITEMS:]
        resp = ReadRangeACK(context=apdu)
        resp.objectIdentifier = apdu.objectIdentifier
        resp.propertyIdentifier = apdu.propertyIdentifier
        resp.resultFlags = ResultFlags([1 if sel and sel[0] is recs[0] else 0,
                                        1 if sel and sel[-1] is recs[-1] else 0,
                                        1 if more else 0])
        resp.itemCount = len(sel)
        resp.itemData = AnyValue(ListOf(LogRecord)([
            LogRecord(timestamp=DateTime(date=Date(when.strftime("%Y-%m-%d")),
                                         time=Time(when.strftime("%H:%M:%S.00"))),
                      logDatum=LogRecordLogDatum(realValue=v)) for _, when, v in sel]))
        if sel:
            resp.firstSequenceNumber = sel[0][0]
        await self.response(resp)

    async def indication(self, apdu) -> None:  # type: ignore[override]
        if self.offline:
            return
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
            if self.offline:
                return
        await super().indication(apdu)


def _to_datetime(value: DateTime) -> dt.datetime:
    d, t = value.date, value.time
    return dt.datetime(d[0] + 1900, d[1], d[2], t[0], t[1], t[2])


def _trend_log(point: Point) -> SimTrendLog:
    tl = SimTrendLog(objectIdentifier=tuple(point.trend_log.split(",")),
                     objectName=f"{point.name or point.id} - trend", enable=True,
                     stopWhenFull=False, bufferSize=2880, recordCount=0, totalRecordCount=0,
                     logInterval=90000, eventState="normal", statusFlags=[0, 0, 0, 0],
                     logBuffer=ListOf(LogRecord)([]))
    tl._records, tl._seq, tl._size = [], 0, 2880  # 30 days at 15 minutes
    return tl


def _schedule_objects(device) -> list:
    out: list = []
    if device.schedule_object:
        out.append(ScheduleObject(
            objectIdentifier=tuple(device.schedule_object.split(",")),
            objectName=f"{device.id} occupancy schedule", presentValue=Real(0.0),
            effectivePeriod=DateRange(startDate=Date("2000-01-01"), endDate=Date("2099-12-31")),
            scheduleDefault=Real(0.0), listOfObjectPropertyReferences=[], priorityForWriting=16,
            weeklySchedule=ArrayOf(DailySchedule, _length=7)(
                [DailySchedule(daySchedule=[]) for _ in range(7)]),
            exceptionSchedule=ArrayOf(SpecialEvent)([])))
    if device.calendar_object:
        out.append(SimCalendar(objectIdentifier=tuple(device.calendar_object.split(",")),
                               objectName=f"{device.id} holidays", presentValue=False,
                               dateList=ListOf(CalendarEntry)([])))
    return out


def _object_for(point: Point) -> Any:
    otype, inst = point.object_type, point.object_instance
    common: dict[str, Any] = {"objectIdentifier": (otype, inst),
                              "objectName": point.name or point.id,
                              "description": point.id}
    units = UNITS.get(point.unit.lower(), "noUnits")
    if otype == "analog-input":
        return AnalogInputObject(**common, presentValue=0.0, units=units, covIncrement=0.1)
    if otype in ("analog-value", "analog-output"):
        default = point.min if point.min is not None and point.kind != "setpoint" else 24.0
        if point.kind == "dimming":
            default = 100.0
        if not point.writable and otype == "analog-value":
            return AnalogValueObject(**common, presentValue=float(default), units=units)
        cls = LimitedAnalogValue if otype == "analog-value" else LimitedAnalogOutput
        kw = {}
        if point.min is not None:
            kw["minPresValue"] = float(point.min)
        if point.max is not None:
            kw["maxPresValue"] = float(point.max)
        obj = cls(**common, presentValue=float(default), relinquishDefault=float(default),
                  units=units, covIncrement=0.1, **kw)
        obj._bems_min, obj._bems_max = point.min, point.max
        return obj
    if otype == "binary-input":
        return BinaryInputObject(**common, presentValue="inactive")
    if otype == "binary-output":
        return BinaryOutputObject(**common, presentValue="inactive", relinquishDefault="inactive")
    if otype == "binary-value":
        cls = BinaryValueObjectCmd if point.writable else BinaryValueObject
        return cls(**common, presentValue="inactive")
    if otype == "multi-state-input":
        return MultiStateInputObject(**common, presentValue=1, numberOfStates=int(point.max or 3))
    if otype == "multi-state-value":
        states = int(point.max or 3)
        if point.writable:
            obj = LimitedMultiStateValue(**common, presentValue=1, relinquishDefault=1,
                                         numberOfStates=states)
            obj._bems_min, obj._bems_max = 1, states
            return obj
        return MultiStateValueObject(**common, presentValue=1, numberOfStates=states)
    raise SimulatorError(f"point {point.id}: object type {otype} is not simulated")


@dataclass
class VirtualDevices:
    """All the site's devices, served on loopback from one asyncio loop."""

    site: Site
    clock: Callable[[], dt.datetime] | None = None
    apps: dict[str, FaultyApplication] = field(default_factory=dict)
    objects: dict[str, Any] = field(default_factory=dict)  # point id → local object
    stuck: dict[str, float] = field(default_factory=dict)  # point id → value it is stuck at
    trend_logs: dict[str, SimTrendLog] = field(default_factory=dict)  # point id → its log
    modbus: VirtualModbus | None = None  # the site's Modbus meters (connectors/simulator/modbus)

    async def start(self) -> None:
        """Bind every device; raises SimulatorError at once if a port is taken."""
        if any(d.protocol == "modbus" for d in self.site.devices):
            self.modbus = VirtualModbus(self.site)
            try:
                await self.modbus.start()
            except OSError as err:
                self.modbus.close()
                raise SimulatorError(str(err)) from None
        self.site = self.site.for_protocol("bacnet")
        for dev in self.site.devices:
            device = SimDevice(objectIdentifier=("device", dev.instance),
                               objectName=dev.name or dev.id, vendorIdentifier=VENDOR_ID,
                               vendorName="BEMS virtual centre", modelName="virtual-" + dev.id,
                               description=f"simulated controller {dev.id}")
            device._sim_clock = self.clock
            port = NetworkPortObject(f"{dev.host}/8:{dev.port}",
                                     objectIdentifier=("network-port", 1), objectName="port-1")
            objs = _schedule_objects(dev)
            for point in self.site.points_of(dev.id):
                obj = _object_for(point)
                self.objects[point.id] = obj
                objs.append(obj)
                if point.trend_log:
                    self.trend_logs[point.id] = _trend_log(point)
                    objs.append(self.trend_logs[point.id])
            _check_port_free(dev.host, dev.port)
            self.apps[dev.id] = FaultyApplication.from_object_list([device, port, *objs])
        # bacpypes3 binds in a background task (and retries forever on failure): wait until
        # every socket is really bound, so "ready" means ready.
        deadline = asyncio.get_running_loop().time() + 5
        for dev in self.site.devices:
            while port_free(dev.host, dev.port):
                if asyncio.get_running_loop().time() > deadline:
                    self.close()
                    raise SimulatorError(f"device {dev.id}: could not bind {dev.address}")
                await asyncio.sleep(0.01)

    def close(self) -> None:
        for app in self.apps.values():
            app.close()
        self.apps.clear()
        if self.modbus is not None:
            self.modbus.close()

    # --- values ---------------------------------------------------------------------------

    def publish(self, values: dict[str, float], when: dt.datetime | None = None) -> None:
        """Set sensor present values (analog / binary / multi-state inputs); points with a
        trend log get a record stamped `when` (the devices' local time)."""
        if self.modbus is not None:
            self.modbus.publish({k: self.stuck.get(k, v) for k, v in values.items()})
        for pid, value in values.items():
            if when is not None and pid in self.trend_logs and value is not None:
                self.trend_logs[pid].log(when, self.stuck.get(pid, value))
            obj = self.objects.get(pid)
            if obj is None:
                continue
            if pid in self.stuck:
                value = self.stuck[pid]
            otype = obj.objectIdentifier[0].__str__()
            if otype.startswith("binary"):
                obj.presentValue = "active" if value else "inactive"
            elif otype.startswith("multi-state"):
                obj.presentValue = int(value)
            else:
                obj.presentValue = float(value)

    def set_relinquish_defaults(self, values: dict[str, float]) -> None:
        """The local controller's own value, used when no priority slot is commanded."""
        for pid, value in values.items():
            obj = self.objects.get(pid)
            if obj is None or not isinstance(obj, Commandable):
                continue
            otype = str(obj.objectIdentifier[0])
            new: Any = ("active" if value else "inactive") if otype.startswith("binary") else (
                int(value) if otype.startswith("multi-state") else float(value))
            if plain(obj.relinquishDefault) != plain(new):
                obj.relinquishDefault = new
                obj.recalculating()

    def present_values(self, points: list[str] | None = None) -> dict[str, Any]:
        ids = points if points is not None else list(self.objects)
        return {pid: plain(self.objects[pid].presentValue) for pid in ids if pid in self.objects}

    def priority_array(self, point: str) -> dict[int, Any]:
        """Commanded slots of a point: {priority: value}."""
        obj = self.objects[point]
        out = {}
        for i, pv in enumerate(obj.priorityArray):
            if pv.null is None:
                out[i + 1] = plain(getattr(pv, pv._choice))
        return out

    # --- faults ---------------------------------------------------------------------------

    def set_offline(self, device: str, offline: bool = True) -> None:
        if self.modbus is not None and device in self.modbus.devices:
            (self.modbus.offline.add if offline else self.modbus.offline.discard)(device)
            return
        self.apps[device].offline = offline

    def set_delay(self, device: str, seconds: float) -> None:
        self.apps[device].delay_s = seconds

    def set_clock_offset(self, device: str, seconds: float) -> None:
        """Make a controller's clock wrong by `seconds` (a fault)."""
        self.apps[device].device_object._clock_offset = dt.timedelta(seconds=seconds)

    def stick(self, point: str, value: float | None) -> None:
        """Freeze a sensor at a value (None: unstick)."""
        if value is None:
            self.stuck.pop(point, None)
        else:
            self.stuck[point] = value
            self.publish({point: value})


def _check_port_free(host: str, port: int) -> None:
    """bacpypes3 binds with SO_REUSEPORT and would share a taken port silently: check first."""
    if not port_free(host, port):
        # a socket of an application this process closed but has not yet collected (a cycle
        # of bacpypes3 objects) still holds the port until the collector runs
        import gc

        gc.collect()
        if port_free(host, port):
            return
        holder = port_holder(port)
        raise SimulatorError(f"UDP {host}:{port} is already in use"
                             + (f" by {holder}" if holder else "")
                             + "; is another simulator or BACnet application running?")
