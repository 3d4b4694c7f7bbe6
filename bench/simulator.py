"""Simulator benchmark: unpaced speed of the whole virtual centre, and CPU when paced.

    python bench/simulator.py                  # 14 days unpaced; 60 s paced at 1x and 30 s at 60x
    python bench/simulator.py --paced-seconds 20

The unpaced figure is the history path: EnergyPlus plus mapping every 15-min step to point
readings, with and without writing them to a SQLite store. The paced figure is the CPU time of a
`bems simulator` process (EnergyPlus, four BACnet devices) over a window after it is ready,
divided by the window's wall time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bems.config import load_site
from bems.storage import Store
from connectors.simulator.centre import VirtualCentre


def unpaced(days: int, with_store: bool) -> float:
    site = load_site()
    centre = VirtualCentre(site)
    end = dt.datetime(2026, 7, 20, 0, 0)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.sqlite") if with_store else None
        t = time.perf_counter()
        centre.history(end, days, store.insert_readings if store else (lambda rows: None))
        wall = time.perf_counter() - t
        if store:
            store.close()
    return days / wall


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def paced(speed: float, seconds: float) -> float:
    proc = subprocess.Popen([sys.executable, "-m", "bems", "simulator", "--speed", str(speed)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if "simulator ready" in line:
                break
        time.sleep(3)  # let it catch up from midnight to now, unpaced
        c0, t0 = _cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        c1, t1 = _cpu_seconds(proc.pid), time.monotonic()
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return (c1 - c0) / (t1 - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--paced-seconds", type=float, default=60.0)
    args = ap.parse_args()

    bare = unpaced(args.days, with_store=False)
    stored = unpaced(args.days, with_store=True)
    cpu1 = paced(1.0, args.paced_seconds)
    cpu60 = paced(60.0, args.paced_seconds / 2)
    print(f"{'unpaced, physics + mapping (sim days/s)':<46}{bare:>10.2f}")
    print(f"{'unpaced, into a SQLite store (sim days/s)':<46}{stored:>10.2f}")
    print(f"{'paced 1x: CPU seconds per wall second':<46}{cpu1:>10.4f}")
    print(f"{'paced 60x: CPU seconds per wall second':<46}{cpu60:>10.4f}")
    site = load_site()
    print(f"({args.days} days of the whole centre: {len(site.zones)} zones, "
          f"{len(site.devices)} devices, {len(site.points)} points; "
          f"paced windows {args.paced_seconds:g} s and {args.paced_seconds / 2:g} s)")
    print(json.dumps({"sim_days_per_s": round(bare, 2), "paced_cpu_fraction": round(cpu1, 4),
                      "sim_days_per_s_with_store": round(stored, 2),
                      "paced_cpu_fraction_60x": round(cpu60, 4)}))


if __name__ == "__main__":
    main()
