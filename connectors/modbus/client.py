"""Reading and writing Modbus TCP devices with pymodbus (async): one connection per device
address, a device's requests one after the other on it (few: see codec.coalesce), devices side
by side, each within its own time budget. Whatever a device answers, a point ends up with a
value or with why it has none: an exception code, a short answer, a timeout, a reset
connection, NaN in a float register; never a crash, never an old value passed off as new.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field

from connectors.modbus.codec import TABLES, Block, MapError, Register, coalesce, encode, split

log = logging.getLogger(__name__)

for _name in ("pymodbus", "pymodbus.logging"):  # its own log lines say what ours say better
    logging.getLogger(_name).setLevel(logging.CRITICAL)


class ModbusError(Exception):
    """A device that could not be read or written, in one line."""


@dataclass(frozen=True)
class ModbusDevice:
    id: str
    host: str
    port: int = 502
    unit: int = 1
    timeout_s: float = 2.0
    retries: int = 1
    registers: tuple[Register, ...] = ()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class DeviceRead:
    """One device's cycle: values by point (None: no value, see `bad`), and how it went."""

    device: str
    values: dict[str, float | None] = field(default_factory=dict)
    bad: dict[str, str] = field(default_factory=dict)  # point → why it has no value
    error: str = ""  # the device as a whole (no connection, out of time)
    requests: int = 0
    seconds: float = 0.0


def parse_host_port(text: str, default_port: int = 502) -> tuple[str, int]:
    host, sep, port = str(text).strip().rpartition(":")
    if not sep:
        host, port = str(text).strip(), str(default_port)
    from bems.registers import host_ok

    if not host_ok(host) or not (port.isascii() and port.isdigit()) or len(port) > 5 or \
            not 1 <= int(port) <= 65535:
        raise ModbusError(f"{str(text)[:80]!r} is not HOST:PORT (port 1-65535)")
    return host, int(port)


def _why(response) -> str:
    code = getattr(response, "exception_code", None)
    names = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
             4: "device failure", 6: "device busy", 10: "gateway path unavailable",
             11: "gateway target did not respond"}
    return f"exception {code} ({names.get(code, 'unknown')})" if code else str(response)


async def _read_block(client, unit: int, block: Block):
    fc = TABLES[block.table][0]
    call = {1: client.read_coils, 2: client.read_discrete_inputs,
            3: client.read_holding_registers, 4: client.read_input_registers}[fc]
    rr = await call(block.start, count=block.count, device_id=unit)
    if rr.isError():
        raise ModbusError(_why(rr))
    if getattr(rr, "dev_id", unit) not in (unit, 0):
        raise ModbusError(f"answer from unit {rr.dev_id}, asked unit {unit}")
    bits = TABLES[block.table][1]
    values = list(rr.bits if bits else rr.registers)
    # registers: exactly as many as asked; bits: padded to whole bytes, no more
    expected = -(-block.count // 8) * 8 if bits else block.count
    if not block.count <= len(values) <= expected:
        raise ModbusError(f"answer of {len(values)} {'bits' if bits else 'registers'} "
                          f"for {block.count} asked")
    return values[:block.count]


def _client(device: ModbusDevice):
    from pymodbus.client import AsyncModbusTcpClient

    return AsyncModbusTcpClient(device.host, port=device.port, timeout=device.timeout_s,
                                retries=device.retries, reconnect_delay=0)


async def read_device(device: ModbusDevice, blocks: list[Block] | None = None,
                      client=None, budget_s: float | None = None) -> DeviceRead:
    """Read every point of one device. `client`: an open connection to reuse (else one is
    opened and closed here); `budget_s`: the most the whole device may take."""
    out = DeviceRead(device.id)
    blocks = blocks if blocks is not None else coalesce(list(device.registers))
    t0 = time.monotonic()
    own = client is None
    client = client or _client(device)

    async def body() -> None:
        if not client.connected and not await client.connect():
            raise ModbusError(f"no connection to {device.address}")
        for block in blocks:
            out.requests += 1
            try:
                values = await _read_block(client, device.unit, block)
                for pid, v in split(block, values).items():
                    out.values[pid] = v
                    if v is None:
                        out.bad[pid] = "not a number (NaN or infinity)"
            except (ModbusError, MapError) as err:
                for reg in block.members:
                    out.values[reg.id] = None
                    out.bad[reg.id] = str(err)

    try:
        # the device's whole budget (asyncio.timeout: no task of its own per device and cycle)
        async with asyncio.timeout(budget_s or device.timeout_s * (device.retries + 1)
                                   * max(1, len(blocks)) + 1):
            await body()
    except TimeoutError:
        out.error = f"{device.address} unit {device.unit}: no answer in time"
    except Exception as err:  # noqa: BLE001 (pymodbus: ConnectionException, ModbusIOException…)
        out.error = f"{device.address} unit {device.unit}: {type(err).__name__}: {err}"[:300]
    finally:
        if own:
            client.close()
    if out.error:  # what this cycle did not read has no value (never the last one's)
        for reg in device.registers:
            if reg.id not in out.values:
                out.values[reg.id] = None
                out.bad[reg.id] = out.error
    out.seconds = time.monotonic() - t0
    return out


class ModbusReader:
    """A site's Modbus devices, read in cycles over connections kept open between cycles
    (one per device address; units behind one gateway share it, one request at a time)."""

    def __init__(self, devices: list[ModbusDevice], max_gap: int = 0):
        self.devices = devices
        self.blocks = {d.id: coalesce(list(d.registers), max_gap) for d in devices}
        self._clients: dict[tuple[str, int], object] = {}
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}

    async def _one(self, device: ModbusDevice) -> DeviceRead:
        key = (device.host, device.port)
        if key not in self._clients:
            self._clients[key] = _client(device)
            self._locks[key] = asyncio.Lock()
        async with self._locks[key]:
            read = await read_device(device, self.blocks[device.id], self._clients[key])
            if read.error:  # start the next cycle on a fresh connection
                self._clients.pop(key).close()
            return read

    async def cycle(self) -> list[DeviceRead]:
        return list(await asyncio.gather(*(self._one(d) for d in self.devices)))

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()


async def write_point(device: ModbusDevice, reg: Register, value: float) -> float | None:
    """Write one holding register set (or coil) and read it back; the read-back value."""
    if not TABLES[reg.table][2]:
        raise ModbusError(f"{reg.id}: a {reg.table} cannot be written")
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ModbusError(f"{reg.id}: {value!r} is not a finite number")
    words = encode(reg, float(value))
    client = _client(device)
    try:
        if not await client.connect():
            raise ModbusError(f"no connection to {device.address}")
        if reg.table == "coil":
            rr = await client.write_coil(reg.address, bool(words[0]), device_id=device.unit)
        else:
            rr = await client.write_registers(reg.address, words, device_id=device.unit)
        if rr.isError():
            raise ModbusError(f"{reg.id}: {_why(rr)}")
        back = await read_device(device, coalesce([reg]), client)
        if back.error or reg.id in back.bad:
            raise ModbusError(f"{reg.id}: written, read-back failed: "
                              f"{back.error or back.bad[reg.id]}")
        return back.values[reg.id]
    except ModbusError:
        raise
    except Exception as err:  # noqa: BLE001
        raise ModbusError(f"{device.address}: {type(err).__name__}: {err}"[:300]) from None
    finally:
        client.close()


async def scan(host: str, port: int, units: range, timeout_s: float = 0.5) -> list[int]:
    """The unit ids that answer at host:port (a read of holding register 0 each)."""
    from pymodbus.client import AsyncModbusTcpClient

    found = []
    client = AsyncModbusTcpClient(host, port=port, timeout=timeout_s, retries=0,
                                  reconnect_delay=0)
    try:
        if not await client.connect():
            raise ModbusError(f"no connection to {host}:{port}")
        for unit in units:
            try:
                rr = await client.read_holding_registers(0, count=1, device_id=unit)
                # a unit is there when it answers, or refuses the request itself (illegal
                # function, address or value; busy); a gateway says a unit is not there with
                # exception 10 or 11, and some servers with 4 (device failure)
                if getattr(rr, "exception_code", 0) in (0, 1, 2, 3, 6):
                    found.append(unit)
            except Exception:  # noqa: BLE001 (no answer: no such unit)
                if not client.connected:
                    await client.connect()
    finally:
        client.close()
    return found
