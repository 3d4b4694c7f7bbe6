"""The virtual centre's Modbus TCP meters: pymodbus's server on each Modbus address of the site
file (a meter's own port, or a gateway with several unit ids), answering from a register image
that the simulation keeps up to date (`publish`), the way a real meter's registers follow its
measurements. Writes from a client land in the image. A device taken offline answers nothing
(its client times out), as a meter whose cable is out.
"""

from __future__ import annotations

import asyncio
import functools
import logging

import socket

from bems.registers import TABLES, Register
from bems.site import Site
from connectors.modbus.codec import encode

_TABLE_OF = {1: "coil", 5: "coil", 15: "coil", 2: "discrete", 3: "holding", 6: "holding",
             16: "holding", 23: "holding", 4: "input"}


def _tcp_free(host: str, port: int) -> bool:
    """No listening socket on host:port. With SO_REUSEADDR, as asyncio's servers bind: the
    connections a closed server leaves in TIME_WAIT (a minute) do not count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


class VirtualModbus:
    def __init__(self, site: Site):
        self.site = site.for_protocol("modbus")
        self.registers: dict[str, tuple[str, int, Register]] = {}  # point → (address, unit, map)
        for d in self.site.devices:
            for p in self.site.points_of(d.id):
                self.registers[p.id] = (f"{d.host}:{d.port}", d.unit or 1, p.modbus())
        # (host:port, unit, table) → {register address: word}
        self.image: dict[tuple[str, int, str], dict[int, int]] = {}
        self.offline: set[str] = set()  # device ids that answer nothing
        self._unit_device = {(f"{d.host}:{d.port}", d.unit or 1): d.id for d in self.site.devices}
        self.devices = set(self._unit_device.values())
        self.servers: list = []

    async def start(self) -> None:
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        by_address: dict[str, list[int]] = {}
        for d in self.site.devices:
            by_address.setdefault(f"{d.host}:{d.port}", []).append(d.unit or 1)
        for address, units in by_address.items():
            host, port = address.rsplit(":", 1)
            if not _tcp_free(host, int(port)):
                raise OSError(f"TCP {address} is already in use; is another simulator running?")
            devices = []
            for unit in units:
                size = {t: 1 + max((r.address + r.width for a, u, r in self.registers.values()
                                    if (a, u) == (address, unit) and r.table == t), default=0)
                        for t in TABLES}

                def block(table: str, bits: bool) -> list:
                    return [SimData(0, count=size[table], values=False if bits else 0,
                                    datatype=DataType.BITS if bits else DataType.REGISTERS)]
                devices.append(SimDevice(
                    id=unit, simdata=(block("coil", True), block("discrete", True),
                                      block("holding", False), block("input", False)),
                    action=functools.partial(self._action, address, unit)))
            server = ModbusTcpServer(devices, address=(host, int(port)))
            await server.serve_forever(background=True)
            self.servers.append(server)

    async def _action(self, address: str, unit: int, function_code: int, start_address: int,
                      req_address: int, count: int, current_registers: list,
                      set_values: list | None):
        if self._unit_device.get((address, unit)) in self.offline:
            await asyncio.sleep(3600)  # no answer: the client's timeout says so
        table = _TABLE_OF.get(function_code)
        if table is None:
            return None
        image = self.image.setdefault((address, unit, table), {})
        offset = req_address - start_address
        if set_values is not None:
            for i, v in enumerate(set_values):
                image[req_address + i] = int(v)
            return None
        for i in range(count):
            if 0 <= offset + i < len(current_registers):
                v = image.get(req_address + i, 0)
                current_registers[offset + i] = bool(v) if TABLES[table][1] else v
        return None

    def publish(self, values: dict[str, float | None]) -> None:
        """Set the registers of the Modbus points among `values` (BEMS units)."""
        for pid, value in values.items():
            where = self.registers.get(pid)
            if where is None or value is None:
                continue
            address, unit, reg = where
            image = self.image.setdefault((address, unit, reg.table), {})
            for i, w in enumerate(encode(reg, float(value))):
                image[reg.address + i] = w

    def close(self) -> None:
        for server in self.servers:
            if not server.serving.done():
                server.serving.set_result(True)
            server.close()
        self.servers.clear()
