"""The BACnet gateway: one event-loop thread owns the bacpypes3 application.

It is the only bridge between asyncio and the synchronous rest of BEMS: every public method is
a plain function that runs a coroutine on that loop and waits, with a timeout. bacpypes3 both
raises `ErrorRejectAbortNack` (a BaseException) and returns error values; both are turned into
our own exceptions here, in one place.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import datetime as dt
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Callable, Coroutine, Iterable, Sequence

from bacpypes3.apdu import ErrorRejectAbortNack
from bacpypes3.app import Application
from bacpypes3.basetypes import ErrorType, PropertyIdentifier, PropertyReference
from bacpypes3.local.device import DeviceObject
from bacpypes3.local.networkport import NetworkPortObject
from bacpypes3.pdu import Address
from bacpypes3.primitivedata import Null, ObjectIdentifier

from bems.control import REAL_MAX
from bems.errors import BemsError, DeviceRefused, DeviceUnreachable
from bems.site import canonical_device_address
from connectors.bacnet.common import plain, port_free, port_holder  # noqa: F401 (part of this API)


class BacnetError(BemsError):
    """A BACnet operation failed."""


class DeviceTimeout(BacnetError, DeviceUnreachable):
    """The device did not answer within its timeout."""


class BacnetRefused(BacnetError, DeviceRefused):
    """The device answered with an error, reject or abort."""

    def __init__(self, message: str, error_class: str = "", error_code: str = ""):
        super().__init__(message, error_code)
        self.error_class, self.error_code = error_class, error_code


@dataclass(frozen=True)
class DeviceInfo:
    instance: int
    address: str
    name: str = ""
    vendor: str = ""
    max_apdu: int = 1476
    segmentation: str = "no-segmentation"

    @property
    def segments(self) -> bool:
        return self.segmentation in ("segmented-both", "segmented-transmit")


@dataclass(frozen=True, order=True)
class IAm:
    """What a device says of itself in its I-Am."""
    instance: int
    address: str
    max_apdu: int = 1476
    segmentation: str = "no-segmentation"
    vendor_id: int = 0


class _Client(Application):
    """bacpypes3's application, telling BEMS of every I-Am it hears: a controller that
    restarts announces itself, and its COV subscriptions are gone."""

    on_i_am: list = []

    async def do_IAmRequest(self, apdu) -> None:  # type: ignore[override]
        await super().do_IAmRequest(apdu)
        addr = canonical_device_address(str(apdu.pduSource)) or str(apdu.pduSource)
        for listener in self.on_i_am:
            try:
                listener(addr)
            except Exception:  # noqa: BLE001 - a listener's bug must not stop the client
                logging.getLogger(__name__).exception("I-Am listener failed")


def _refused(err: Any, what: str) -> BacnetRefused:
    cls = str(getattr(err, "errorClass", "") or "")
    code = str(getattr(err, "errorCode", "") or getattr(err, "apduAbortRejectReason", "") or "")
    if not code and hasattr(err, "reason"):
        code = str(err.reason)
    kind = type(err).__name__.replace("PDU", "").lower() or "error"
    detail = "/".join(x for x in (cls, code) if x) or kind
    return BacnetRefused(f"{what}: {kind} {detail}", cls, code)


class BacnetGateway:
    """A BACnet/IP client on host:port, run in its own thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 47808, instance: int = 599999,
                 name: str = "BEMS", request_timeout_s: float = 3.0, prefix: int = 8,
                 bbmd: str | None = None, bbmd_ttl: int = 300):
        self.host, self.port, self.instance, self.name = host, port, instance, name
        self.prefix, self.bbmd, self.bbmd_ttl = prefix, bbmd, bbmd_ttl
        self.request_timeout_s = request_timeout_s
        self.loop: asyncio.AbstractEventLoop | None = None
        self.app: Application | None = None
        self._thread: threading.Thread | None = None
        self._info: dict[str, DeviceInfo] = {}
        self._iam: dict[str, IAm] = {}
        self.object_list_read: dict[str, str] = {}  # address → "whole" | "by index"
        self.registered: bool | None = None  # with a BBMD: did it accept the registration?
        # called on the loop with the address of every device that announces itself
        self.on_i_am: list[Callable[[str], None]] = []
        self._rpm_params: dict[tuple, list] = {}

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> "BacnetGateway":
        if self._thread is not None:
            return self
        if not port_free(self.host, self.port):
            holder = port_holder(self.port)
            raise BacnetError(f"cannot start the BACnet client: UDP {self.host}:{self.port} is "
                              "already in use" + (f" by {holder}" if holder else "")
                              + " (another BEMS, BAC0 or simulator?); choose another port")
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), name="bacnet",
                                        daemon=True)
        self._thread.start()
        started.wait(10)
        try:
            self.call(self._build(), timeout=10)
        except BaseException:
            self.stop()
            raise
        return self

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        started.set()
        self.loop.run_forever()

    async def _build(self) -> None:
        # the Application must be built inside the running loop
        device = DeviceObject(objectIdentifier=("device", self.instance), objectName=self.name,
                              vendorIdentifier=999, vendorName="BEMS")
        port = NetworkPortObject(f"{self.host}/{self.prefix}:{self.port}",
                                 objectIdentifier=("network-port", 1), objectName="port-1")
        if self.bbmd:  # a foreign device: broadcasts go through the BBMD on the other subnet
            from bacpypes3.basetypes import HostNPort, IPMode

            port.bacnetIPMode = IPMode.foreign
            port.fdBBMDAddress = HostNPort(self.bbmd)
            port.fdSubscriptionLifetime = self.bbmd_ttl
        self.app = _Client.from_object_list([device, port])
        self.app.on_i_am = self.on_i_am
        for _ in range(500):  # binding happens in a task; wait for it so errors show now
            if not port_free(self.host, self.port):
                break
            await asyncio.sleep(0.01)
        else:
            raise BacnetError(f"could not bind UDP {self.host}:{self.port}")
        if self.bbmd:
            await self._registered(5.0)

    async def _registered(self, within_s: float) -> None:
        """Wait for the BBMD to accept BEMS as a foreign device; warn (bacpypes3 keeps
        trying) if it does not, since broadcasts then reach this subnet only."""
        link = next(iter(self.app.link_layers.values()))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while loop.time() < deadline:
            if getattr(link, "bbmdRegistrationStatus", None) == 0:
                self.registered = True
                return
            await asyncio.sleep(0.05)
        self.registered = False
        logging.getLogger(__name__).warning(
            "BBMD %s has not accepted BEMS as a foreign device within %.0f s (status %s): "
            "broadcasts reach this subnet only until it does", self.bbmd, within_s,
            getattr(link, "bbmdRegistrationStatus", "?"))

    def stop(self) -> None:
        if self.loop is None:
            return
        if self.app is not None:
            try:
                self.call(self._close(), timeout=5)
            except BemsError:
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self.loop.close()
        self.loop, self.app, self._thread = None, None, None

    async def _close(self) -> None:
        self.app.close()
        for _ in range(100):  # transports close on a later loop turn: wait for the port
            await asyncio.sleep(0.01)
            if port_free(self.host, self.port):
                return

    def __enter__(self) -> "BacnetGateway":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def call(self, coro: Coroutine, timeout: float | None = None) -> Any:
        """Run a coroutine on the gateway's loop from any other thread and wait for it."""
        if self.loop is None:
            coro.close()
            raise BacnetError("the BACnet gateway is not started")
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except FutureTimeout:
            fut.cancel()
            raise DeviceTimeout(f"no answer within {timeout:g} s") from None

    # --- async primitives (run on the loop) -------------------------------------------------

    async def _request(self, coro: Coroutine, what: str, timeout: float | None) -> Any:
        try:
            result = await asyncio.wait_for(coro, timeout or self.request_timeout_s)
        except asyncio.TimeoutError:
            raise DeviceTimeout(f"{what}: no answer within {timeout or self.request_timeout_s:g} s") from None
        except ErrorRejectAbortNack as err:
            raise _refused(err, what) from None
        except (AttributeError, TypeError, ValueError, KeyError, IndexError) as err:
            # bacpypes3 failing to decode an answer (an object type it has no class for, a
            # malformed value): this request fails, nothing else does
            raise BacnetError(f"{what}: undecodable answer ({type(err).__name__})") from None
        if isinstance(result, str) and result.startswith("-no "):  # "-no object class-"
            raise BacnetError(f"{what}: undecodable answer ({result.strip('-')})")
        if isinstance(result, ErrorRejectAbortNack):
            raise _refused(result, what)
        if isinstance(result, ErrorType):
            raise _refused(result, what)
        return result

    async def aread(self, address: str, obj: str, prop: str = "present-value",
                    index: int | None = None, timeout: float | None = None) -> Any:
        if not known_type(obj.split(",")[0]) or prop.isdigit():
            return await self.aread_raw(address, obj, prop, None, index, timeout)
        return await self._request(
            self.app.read_property(Address(address), ObjectIdentifier(obj), prop, index),
            f"read {address} {obj} {prop}", timeout)

    async def aread_multiple(self, address: str, specs: Sequence[tuple[str, Sequence[str]]],
                             timeout: float | None = None) -> list[tuple[str, str, Any]]:
        """ReadPropertyMultiple; per-property errors come back inline as BacnetRefused values.
        Objects of types the client library cannot decode are read one by one (raw)."""
        def raw(o: str, p: str) -> bool:  # read alone, decoded by its own tags
            return not known_type(o.split(",")[0]) or p.isdigit()

        odd = [(o, p) for o, props in specs for p in props if known_property(p) and raw(o, p)]
        bad = [(o, p) for o, props in specs for p in props if not known_property(p)]
        if odd or bad:
            ok = [(o, [p for p in props if known_property(p) and not raw(o, p)])
                  for o, props in specs]
            ok = [(o, props) for o, props in ok if props]
            out = await self.aread_multiple(address, ok, timeout) if ok else []
            out += [(o, p, BacnetRefused(f"{o} {p}: no such property", "property",
                                         "unknown-property")) for o, p in bad]
            for o, prop in odd:
                try:
                    out.append((o, prop, await self.aread_raw(address, o, prop, None,
                                                              timeout=timeout)))
                except DeviceTimeout:
                    raise
                except BacnetRefused as err:
                    out.append((o, prop, err))
                except BacnetError as err:  # a value the client cannot decode
                    out.append((o, prop, BacnetRefused(str(err), "", "undecodable")))
            return out
        key = tuple((obj, tuple(props)) for obj, props in specs)
        params = self._rpm_params.get(key)
        if params is None:  # parsed once per batch, not once per cycle
            params = []
            for obj, props in specs:
                params += [ObjectIdentifier(obj),
                           [PropertyReference(propertyIdentifier=PropertyIdentifier(p))
                            for p in props]]
            self._rpm_params[key] = params
        result = await self._request(self.app.read_property_multiple(Address(address), params),
                                     f"read-multiple {address} ({len(specs)} objects)", timeout)
        if result is None:
            raise BacnetError(f"read-multiple {address}: invalid response")
        out = []
        for objid, propid, _index, value in result:
            obj = f"{objid[0]},{objid[1]}"
            if isinstance(value, ErrorType):
                value = _refused(value, f"{obj} {propid}")
            out.append((obj, str(propid), value))
        return out

    async def awrite(self, address: str, obj: str, value: Any, priority: int | None,
                     prop: str = "present-value", timeout: float | None = None) -> None:
        if isinstance(value, float) and not abs(value) <= REAL_MAX:  # NaN, inf, 1e308
            raise BacnetRefused(f"write {address} {obj}: {value:g} does not fit a BACnet Real",
                                "property", "value-out-of-range")
        v = Null(()) if value is None else value
        await self._request(self.app.write_property(Address(address), ObjectIdentifier(obj), prop,
                                                    v, None, priority),
                            f"write {address} {obj} {prop}={value} @{priority}", timeout)

    async def awho_is(self, target: str | None = None, low: int | None = None,
                      high: int | None = None, wait_s: float = 3.0) -> list[IAm]:
        """Who-Is and every I-Am that comes back within `wait_s`: `target` None is a global
        broadcast (every network, through routers and BBMDs), '*' this network only,
        'NET:*' one remote network, an address one device; `low`..`high` limits the device
        instances that answer. The I-Ams' APDU size and segmentation are remembered."""
        from bacpypes3.pdu import GlobalBroadcast

        dest = GlobalBroadcast() if target in (None, "*:*") else Address(target)
        iams = await self.app.who_is(low, high, dest, timeout=wait_s)
        found: dict[tuple[int, str], IAm] = {}
        for i in iams or []:
            addr = canonical_device_address(str(i.pduSource)) or str(i.pduSource)
            iam = IAm(int(i.iAmDeviceIdentifier[1]), addr, int(i.maxAPDULengthAccepted),
                      str(i.segmentationSupported), int(i.vendorID))
            found[(iam.instance, addr)] = iam
            self._iam[addr] = iam
        return sorted(found.values())

    async def arouters(self, wait_s: float = 2.0) -> dict[str, list[int]]:
        """Who-Is-Router-To-Network: {router address: [networks it reaches]}."""
        fut = self.app.nse.who_is_router_to_network()
        try:
            result = await asyncio.wait_for(fut, wait_s + 2)
        except asyncio.TimeoutError:
            return {}
        out: dict[str, list[int]] = {}
        for _adapter, iartn in result or []:
            src = canonical_device_address(str(iartn.pduSource)) or str(iartn.pduSource)
            out.setdefault(src, [])
            out[src] = sorted(set(out[src]) | {int(n) for n in iartn.iartnNetworkList})
        return out

    async def aread_raw(self, address: str, obj: str, prop: str, datatype: Any,
                        index: int | None = None, timeout: float | None = None) -> Any:
        """ReadProperty decoded as `datatype`, whatever the object's type: for objects the
        client library has no class for (proprietary types, newer standard ones), whose
        standard properties (object-name, present-value of a known datatype) still read."""
        from bacpypes3.apdu import ReadPropertyRequest

        otype, _, inst = obj.partition(",")
        req = ReadPropertyRequest(
            objectIdentifier=ObjectIdentifier((int(otype) if otype.isdigit() else otype,
                                               int(inst))),
            propertyIdentifier=PropertyIdentifier(prop), destination=Address(address))
        if index is not None:
            req.propertyArrayIndex = index
        ack = await self._request(self.app.request(req), f"read {address} {obj} {prop}",
                                  timeout)
        if datatype is not None:
            return ack.propertyValue.cast_out(datatype)
        # no datatype known: one application-tagged primitive decodes by its own tag
        tags = list(ack.propertyValue.tagList)
        if len(tags) >= 2 and tags[0].tag_class == 2 and tags[-1].tag_class == 3:
            tags = tags[1:-1]  # the property-value's own opening and closing tags
        if len(tags) != 1 or tags[0].tag_class != 0:
            raise BacnetError(f"read {address} {obj} {prop}: a constructed value of an object "
                              "type the client does not know")
        return tags[0].app_to_object()

    async def adevice_info(self, address: str, timeout: float | None = None) -> DeviceInfo:
        """The device's instance, name, vendor, APDU size and segmentation: from its I-Am
        (a unicast Who-Is unless a broadcast already heard it) and its device object."""
        if address in self._info:
            return self._info[address]
        iam = self._iam.get(address)
        if iam is None:
            iams = await self._request(self.app.who_is(None, None, Address(address)),
                                       f"who-is {address}", timeout)
            if not iams:
                raise DeviceTimeout(f"who-is {address}: no I-Am")
            i = iams[0]
            iam = IAm(int(i.iAmDeviceIdentifier[1]), address, int(i.maxAPDULengthAccepted),
                      str(i.segmentationSupported), int(i.vendorID))
        dev = f"device,{iam.instance}"

        async def prop(name: str) -> Any:
            try:
                return await self.aread(address, dev, name, timeout=timeout)
            except BacnetRefused:
                return None
        name, vendor = await asyncio.gather(prop("object-name"), prop("vendor-name"))
        info = DeviceInfo(instance=iam.instance, address=address, name=str(name or ""),
                          vendor=str(vendor or ""), max_apdu=iam.max_apdu or 480,
                          segmentation=iam.segmentation or "no-segmentation")
        self._info[address] = info
        return info

    async def aread_range_after(self, address: str, obj: str, after: dt.datetime,
                                count: int = 40, timeout: float | None = None
                                ) -> list[tuple[dt.datetime, Any]]:
        """Log records strictly after a device-local time (ReadRange by time)."""
        result = await self._request(
            self.app.read_range(Address(address), ObjectIdentifier(obj), "log-buffer", None,
                                ("t", 0, after.strftime("%Y-%m-%d"),
                                 after.strftime("%H:%M:%S"), count)),
            f"read-range {address} {obj}", timeout)
        out = []
        for rec in result or []:
            d, t = rec.timestamp.date, rec.timestamp.time
            when = dt.datetime(d[0] + 1900, d[1], d[2], t[0], t[1], t[2])
            datum = rec.logDatum
            value = getattr(datum, datum._choice) if datum._choice else None
            out.append((when, plain(value)))
        return out

    def forget(self, address: str) -> None:
        self._info.pop(address, None)
        self._iam.pop(address, None)

    # --- synchronous API ---------------------------------------------------------------------

    def read(self, address: str, obj: str, prop: str = "present-value",
             index: int | None = None, timeout: float | None = None) -> Any:
        t = timeout or self.request_timeout_s
        return self.call(self.aread(address, obj, prop, index, t), t + 2)

    def write(self, address: str, obj: str, value: Any, priority: int | None,
              timeout: float | None = None) -> None:
        t = timeout or self.request_timeout_s
        self.call(self.awrite(address, obj, value, priority, timeout=t), t + 2)

    def priority_array(self, address: str, obj: str, timeout: float | None = None
                       ) -> dict[int, Any]:
        """The commanded slots of an object: {priority: value}."""
        pa = self.read(address, obj, "priority-array", timeout=timeout)
        out = {}
        for i, slot in enumerate(pa):
            if slot.null is None:
                out[i + 1] = plain(getattr(slot, slot._choice))
        return out

    async def aobject_list(self, address: str, timeout: float) -> list[str]:
        """The device's object list: whole if it fits (or the device segments), else one
        entry at a time by array index — what a small controller without segmentation
        needs for a list of hundreds of objects."""
        info = await self.adevice_info(address, timeout)
        dev = f"device,{info.instance}"
        self.object_list_read[address] = "whole"
        try:
            objs = await self.aread(address, dev, "object-list", timeout=timeout)
        except BacnetRefused as err:
            if err.error_code not in _TOO_BIG:
                raise
            objs = await self._object_list_by_index(address, dev, timeout)
        except DeviceTimeout:
            if info.segments:
                raise
            # some controllers stay silent instead of aborting an answer too big to send
            objs = await self._object_list_by_index(address, dev, timeout)
        return [f"{o[0]},{o[1]}" for o in objs]

    async def _object_list_by_index(self, address: str, dev: str, timeout: float) -> list:
        self.object_list_read[address] = "by index"
        count = int(await self.aread(address, dev, "object-list", 0, timeout=timeout))
        gate = asyncio.Semaphore(4)  # a few requests in flight: small controllers queue few

        async def one(i: int) -> Any:
            async with gate:
                return await self.aread(address, dev, "object-list", i, timeout=timeout)
        return list(await asyncio.gather(*(one(i) for i in range(1, count + 1))))


# error codes / abort reasons that mean "the answer is too big for one APDU"
_TOO_BIG = ("segmentation-not-supported", "buffer-overflow", "apdu-too-long",
            "abort-apdu-too-long")


def known_type(name: str) -> bool:
    """An object type the client library can decode (not a number, not proprietary)."""
    from bacpypes3.primitivedata import ObjectType
    from bacpypes3.vendor import ASHRAE_vendor_info

    if name.isdigit():
        return False
    try:
        return ASHRAE_vendor_info.get_object_class(int(ObjectType(name))) is not None
    except (ValueError, TypeError, KeyError):
        return False


def known_property(name: str) -> bool:
    """A property identifier the client can name: a standard one, or a number."""
    if name.isdigit():
        return int(name) < 4194304
    try:
        PropertyIdentifier(name)
        return True
    except (ValueError, TypeError, KeyError):
        return False


def parse_address(text: str) -> str:
    """'HOST:PORT' or 'HOST' (port 47808), or 'NETWORK:MAC' behind a router → the canonical
    spelling the site file uses too (`localhost` is 127.0.0.1)."""
    from bems.site import address_problem

    addr = canonical_device_address(text)
    if addr is None:
        raise BacnetError(address_problem(text))
    return addr


def chunked(items: Sequence, size: int) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def resolve_interface(interface: str) -> tuple[str, int]:
    """'192.168.10.5/24' → ('192.168.10.5', 24); an interface name ('eth0') → its IPv4
    address and prefix on this machine."""
    from bems.config import interface_ok

    problem = interface_ok(interface)
    if problem:
        raise BacnetError(f"interface {problem}"[:200])
    if "/" in interface:
        host, _, prefix = interface.partition("/")
        return host, int(prefix)
    import fcntl
    import ipaddress
    import struct

    if interface not in {name for _, name in socket.if_nameindex()}:
        raise BacnetError(f"no network interface {interface!r} on this machine (one of "
                          f"{', '.join(n for _, n in socket.if_nameindex())})")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("256s", interface.encode()[:15])
        try:
            addr = socket.inet_ntoa(fcntl.ioctl(s.fileno(), 0x8915, req)[20:24])  # SIOCGIFADDR
            mask = socket.inet_ntoa(fcntl.ioctl(s.fileno(), 0x891B, req)[20:24])  # ..NETMASK
        except OSError:
            raise BacnetError(f"interface {interface!r} has no IPv4 address") from None
    return addr, ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen


def gateway_for(bacnet, port: int | None = None, interface: str | None = None,
                **kw: Any) -> BacnetGateway:
    """The client as the site file's [bacnet] table (and command-line options) say."""
    host, prefix = resolve_interface(bacnet.interface if interface is None else interface)
    return BacnetGateway(host=host, port=port or bacnet.port, instance=bacnet.instance,
                         name=bacnet.name, prefix=prefix, bbmd=bacnet.bbmd,
                         bbmd_ttl=bacnet.bbmd_ttl, **kw)
