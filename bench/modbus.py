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
turnaround = float(sys.argv[2])
servers = [ModbusServer(units_of(s), turnaround_s=turnaround).start() for s in range(SERVERS)]
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


def naive_cycle(ports: list[int], devs: list[ModbusDevice]) -> tuple[float, dict, int, float]:
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

    t0, cpu = time.perf_counter(), time.process_time()
    threads = [threading.Thread(target=one, args=(p,)) for p in ports]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, values, requests[0], time.process_time() - cpu


def measure(root: str, turnaround_s: float, cycles: int) -> dict:
    """Both readers against one set of simulated devices answering after `turnaround_s`."""
    proc = subprocess.Popen([sys.executable, "-c", _SERVE, root, str(turnaround_s)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ports = json.loads(proc.stdout.readline())
        devs = devices(ports)

        async def ours() -> tuple[list[float], list[float], dict, int]:
            reader = ModbusReader(devs)
            times, cpus, values, requests = [], [], {}, 0
            try:
                await reader.cycle()  # connect
                for _ in range(cycles):
                    t0, cpu = time.perf_counter(), time.process_time()
                    reads = await reader.cycle()
                    times.append(time.perf_counter() - t0)
                    cpus.append(time.process_time() - cpu)
                    values = {k: v for r in reads for k, v in r.values.items()}
                    requests = sum(r.requests for r in reads)
            finally:
                reader.close()
            return times, cpus, values, requests

        times, cpus, values, requests = asyncio.run(ours())
        naive, ncpus = [], []
        for _ in range(max(3, cycles // 3)):
            t, nvalues, nrequests, ncpu = naive_cycle(ports, devs)
            naive.append(t)
            ncpus.append(ncpu)
    finally:
        proc.stdin.close()
        proc.wait(30)
    cycle, ncycle = statistics.median(times), statistics.median(naive)
    return {"turnaround_ms": round(turnaround_s * 1000, 1), "cycle_s": round(cycle, 4),
            "naive_cycle_s": round(ncycle, 4), "speedup": round(ncycle / cycle, 2),
            "requests": requests, "naive_requests": nrequests,
            "cpu_s": round(statistics.median(cpus), 4),
            "naive_cpu_s": round(statistics.median(ncpus), 4),
            "wrong": check(values, devs), "naive_wrong": check(nvalues, devs)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=10)
    ap.add_argument("--turnaround-ms", type=float, default=8.0,
                    help="how long each simulated device takes to answer a request")
    args = ap.parse_args()
    if not 0 <= args.turnaround_ms <= 1000:
        ap.error("--turnaround-ms: 0 to 1000")
    root = str(Path(__file__).resolve().parent.parent)
    runs = [measure(root, t / 1000, args.cycles)
            for t in sorted({0.0, args.turnaround_ms})]
    maps = [meter_map(m) for m in range(SERVERS * PER_SERVER)]
    registers = sum(r.width for regs in maps for r in regs)
    points = sum(len(regs) for regs in maps)
    print(f"{len(maps)} meters, {points} points, {registers} registers, "
          f"{SERVERS} servers (pymodbus {__import__('pymodbus').__version__})")
    print(f"{'device answers in':<19}{'reader':<36}{'requests':>9}{'cycle s (median)':>18}"
          f"{'own CPU s':>11}{'wrong':>7}{'speed-up':>10}")
    for r in runs:
        when = f"{r['turnaround_ms']:g} ms"
        print(f"{when:<19}{'BEMS (coalesced, side by side)':<36}{r['requests']:>9}"
              f"{r['cycle_s']:>18.3f}{r['cpu_s']:>11.3f}{r['wrong']:>7}"
              f"{r['speedup']:>9.1f}×")
        print(f"{'':<19}{'pymodbus point by point (threads)':<36}{r['naive_requests']:>9}"
              f"{r['naive_cycle_s']:>18.3f}{r['naive_cpu_s']:>11.3f}{r['naive_wrong']:>7}")
    head = runs[-1]
    print(json.dumps({"meters": len(maps), "registers": registers, "points": points, **head,
                      "at_0ms": {k: runs[0][k] for k in ("cycle_s", "naive_cycle_s", "speedup",
                                                          "cpu_s", "naive_cpu_s")}}))


if __name__ == "__main__":
    main()
