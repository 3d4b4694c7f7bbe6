"""Modbus TCP: BEMS's read cycle against a point-by-point reader on plain pymodbus.

50 meters × 40 registers each (float32, int16/uint16, uint64/float64, uint32, in holding and
input registers, with gaps between the blocks), ten meters (unit ids 1-10) per loopback server,
five pymodbus servers in a process of their own. BEMS reads every meter with
connectors.modbus.client.ModbusReader (coalesced requests, connections kept, devices side by
side); the peer reads each point with its own request on plain pymodbus's client, one thread
per server (its best: the servers side by side too). Both check every value they read.

    python bench/modbus.py [--cycles N]

Prints a table, then one JSON line:
{"meters": 50, "registers": N, "cycle_s": x, "naive_cycle_s": y, ...}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connectors.modbus.client import ModbusDevice, ModbusReader  # noqa: E402
from connectors.modbus.codec import encode, register  # noqa: E402

SERVERS, PER_SERVER = 5, 10


def meter_map(m: int) -> list:
    """40 registers in four blocks with gaps: what a power meter's map looks like."""
    regs = [register(f"m{m}.v{i}", "input", 2 * i, "float32", unit="V") for i in range(5)]
    regs += [register(f"m{m}.s{i}", "holding", 20 + i, "int16" if i % 2 else "uint16")
             for i in range(10)]
    regs += [register(f"m{m}.e{i}", "holding", 100 + 4 * i,
                      "uint64" if i % 2 else "float64", unit="Wh") for i in range(4)]
    regs += [register(f"m{m}.p{i}", "input", 200 + 2 * i, "uint32", word_order="little",
                      unit="W") for i in range(2)]
    return regs


def expected(reg, m: int) -> float:
    i = int(reg.id.rsplit(".", 1)[1][1:])
    return {"v": 230.0 + m + i / 4, "s": (-1) ** i * (m + i), "e": 1000.0 * (m + 1) + i,
            "p": 10.0 + m + i}[reg.id.rsplit(".", 1)[1][0]]


def units_of(server: int) -> dict:
    units = {}
    for u in range(1, PER_SERVER + 1):
        m = server * PER_SERVER + u - 1
        tables: dict = {"holding": {}, "input": {}}
        for reg in meter_map(m):
            for k, w in enumerate(encode(reg, expected(reg, m))):
                tables[reg.table][reg.address + k] = w
        units[u] = tables
    return units


_SERVE = """
import sys, json
sys.path.insert(0, sys.argv[1])
from devtools.modbus import ModbusServer
sys.path.insert(0, sys.argv[1] + "/bench")
from modbus import units_of, SERVERS
servers = [ModbusServer(units_of(s)).start() for s in range(SERVERS)]
print(json.dumps([s.port for s in servers]), flush=True)
sys.stdin.read()
for s in servers:
    s.stop()
"""


def devices(ports: list[int]) -> list[ModbusDevice]:
    out = []
    for s, port in enumerate(ports):
        for u in range(1, PER_SERVER + 1):
            m = s * PER_SERVER + u - 1
            out.append(ModbusDevice(f"m{m}", "127.0.0.1", port, u, 2.0, 1,
                                    tuple(meter_map(m))))
    return out


def check(values: dict, devs: list[ModbusDevice]) -> int:
    wrong = 0
    for d in devs:
        m = int(d.id[1:])
        for reg in d.registers:
            v = values.get(reg.id)
            if v is None or abs(v - expected(reg, m)) > 1e-3 * max(1, abs(expected(reg, m))):
                wrong += 1
    return wrong


def naive_cycle(ports: list[int], devs: list[ModbusDevice]) -> tuple[float, dict, int]:
    """Each point its own request, plain pymodbus (sync), one thread per server."""
    from pymodbus.client import ModbusTcpClient

    values, requests = {}, [0]
    lock = threading.Lock()

    def one(port: int) -> None:
        c = ModbusTcpClient("127.0.0.1", port=port, timeout=2)
        c.connect()
        try:
            for d in devs:
                if d.port != port:
                    continue
                for reg in d.registers:
                    call = c.read_holding_registers if reg.table == "holding" \
                        else c.read_input_registers
                    rr = call(reg.address, count=reg.width, device_id=d.unit)
                    v = c.convert_from_registers(
                        rr.registers, getattr(c.DATATYPE, reg.type.upper()),
                        word_order=reg.word_order)
                    from connectors.modbus.codec import UNITS

                    with lock:
                        values[reg.id] = float(v) * reg.scale * UNITS[reg.unit][1]
                        requests[0] += 1
        finally:
            c.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=one, args=(p,)) for p in ports]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, values, requests[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=10)
    args = ap.parse_args()
    root = str(Path(__file__).resolve().parent.parent)
    proc = subprocess.Popen([sys.executable, "-c", _SERVE, root], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        ports = json.loads(proc.stdout.readline())
        devs = devices(ports)
        registers = sum(r.width for d in devs for r in d.registers)
        points = sum(len(d.registers) for d in devs)

        async def ours() -> tuple[list[float], dict, int]:
            reader = ModbusReader(devs)
            times, values, requests = [], {}, 0
            try:
                await reader.cycle()  # connect
                for _ in range(args.cycles):
                    t0 = time.perf_counter()
                    reads = await reader.cycle()
                    times.append(time.perf_counter() - t0)
                    values = {k: v for r in reads for k, v in r.values.items()}
                    requests = sum(r.requests for r in reads)
            finally:
                reader.close()
            return times, values, requests

        times, values, requests = asyncio.run(ours())
        wrong = check(values, devs)
        naive = []
        for _ in range(max(3, args.cycles // 3)):
            t, nvalues, nrequests = naive_cycle(ports, devs)
            naive.append(t)
        nwrong = check(nvalues, devs)
    finally:
        proc.stdin.close()
        proc.wait(30)
    cycle, ncycle = statistics.median(times), statistics.median(naive)
    print(f"{len(devs)} meters, {points} points, {registers} registers, "
          f"{len(ports)} servers (pymodbus {__import__('pymodbus').__version__})")
    print(f"{'reader':<34}{'requests':>10}{'cycle s (median)':>18}{'wrong values':>14}")
    print(f"{'BEMS (coalesced, side by side)':<34}{requests:>10}{cycle:>18.3f}{wrong:>14}")
    print(f"{'pymodbus point by point (threads)':<34}{nrequests:>10}{ncycle:>18.3f}{nwrong:>14}")
    print(f"speed-up {ncycle / cycle:.1f}×")
    print(json.dumps({"meters": len(devs), "registers": registers, "points": points,
                      "cycle_s": round(cycle, 4), "naive_cycle_s": round(ncycle, 4),
                      "speedup": round(ncycle / cycle, 2), "requests": requests,
                      "naive_requests": nrequests, "wrong": wrong, "naive_wrong": nwrong}))


if __name__ == "__main__":
    main()
