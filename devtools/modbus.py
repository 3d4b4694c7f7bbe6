"""A Modbus TCP server for tests and benchmarks: pymodbus's own server (another
implementation than our client) in a thread of its own, on a free loopback port, with units
whose registers the caller sets; `stop()` ends it. `turnaround_s`: how long the device takes
to answer each request (a real meter or gateway takes milliseconds; 0: as fast as this
process can)."""

from __future__ import annotations

import asyncio
import logging
import threading
import warnings

from devtools.ports import free_port


def _answer_after(store, seconds: float) -> None:
    """Every read and write of the server's datastore answered after `seconds` (asleep: the
    server's thread is free meanwhile, as with a device busy on its own)."""
    for name in ("async_getValues", "async_setValues"):
        inner = getattr(store, name)

        async def slow(*args, _inner=inner, **kwargs):
            await asyncio.sleep(seconds)
            return await _inner(*args, **kwargs)

        setattr(store, name, slow)


class ModbusServer:
    def __init__(self, units: dict[int, dict[str, dict[int, int]]], port: int | None = None,
                 turnaround_s: float = 0.0):
        """`units`: unit id → table ("coil", "discrete", "holding", "input") → {address: value}."""
        self.port = port or free_port()
        self.units = units
        self.turnaround_s = turnaround_s
        self._loop = asyncio.new_event_loop()
        self._server = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="modbus-server")

    def _context(self):
        from pymodbus.datastore import (ModbusDeviceContext, ModbusSequentialDataBlock,
                                        ModbusServerContext)

        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        devices = {}
        for unit, tables in self.units.items():
            blocks = {}
            for table, key in (("coil", "co"), ("discrete", "di"), ("holding", "hr"),
                               ("input", "ir")):
                given = tables.get(table, {})
                # the given addresses and a little beyond; past that, "illegal data address"
                values = [0] * (max(given, default=0) + 128)
                for addr, v in given.items():
                    values[addr] = v
                # the datastore is 1-based inside (address 0 of the wire is its 1)
                blocks[key] = ModbusSequentialDataBlock(1, values)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                devices[unit] = ModbusDeviceContext(**blocks)
        return ModbusServerContext(devices=devices, single=False)

    def _run(self) -> None:
        from pymodbus.server import ModbusTcpServer

        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            try:
                self._server = ModbusTcpServer(self._context(), address=("127.0.0.1", self.port))
                if self.turnaround_s:
                    _answer_after(self._server.context, self.turnaround_s)
                await self._server.serve_forever(background=True)
            finally:
                self._ready.set()
            while True:
                await asyncio.sleep(3600)

        self._task = self._loop.create_task(main())
        try:
            self._loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass

    def start(self) -> "ModbusServer":
        self._thread.start()
        if not self._ready.wait(10) or self._server is None:
            raise RuntimeError(f"the Modbus server did not start on port {self.port}")
        return self

    def stop(self) -> None:
        async def end() -> None:
            await self._server.shutdown()
            for task in asyncio.all_tasks():  # answers still on their way (a turnaround)
                if task is not asyncio.current_task():
                    task.cancel()
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(end(), self._loop)
            self._thread.join(10)

    def __enter__(self) -> "ModbusServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
