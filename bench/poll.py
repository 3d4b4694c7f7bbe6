"""Polling benchmark: a full cycle over 50 devices / 5,000 points on loopback, BEMS vs BAC0.

    python bench/poll.py                      # 50 devices x 100 points, 5 cycles each
    python bench/poll.py --devices 10 --points-per-device 50

Three processes share the machine: the devices (bacpypes3 applications, one UDP port each,
served by our simulator code), the BEMS poller (this process) and a BAC0 client (a subprocess
with its own port). Client CPU is the polling process's own CPU time (all its threads) over the
measured cycles. BAC0 is given its natural best: one `readMultiple` per device, all devices at
once (asyncio.gather). Then one device is taken offline and a BEMS cycle is timed again
(device timeout 1 s, no retries): the extra time is what a dead device costs the cycle.
Needs BAC0 (`pip install BAC0`); without it the BAC0 columns are null.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time

from bems.site import Building, Device, Point, Site

BASE_PORT = 48100


def synthetic_site(devices: int, per_device: int) -> Site:
    # 3 s (the site-file default) for every device, 1 s for d7, the one that dies: its budget
    devs = tuple(Device(id=f"d{i}", name=f"controller {i}", host="127.0.0.1",
                        port=BASE_PORT + i, instance=2000 + i,
                        timeout_s=1.0 if i == 7 else 3.0, retries=0)
                 for i in range(devices))
    points = tuple(Point(id=f"d{i}.ai{k}", device=f"d{i}", object=f"analog-input,{k}",
                         kind="temperature", name=f"d{i} sensor {k}", unit="degC")
                   for i in range(devices) for k in range(1, per_device + 1))
    return Site(name="poll bench", timezone="Asia/Ho_Chi_Minh", latitude=20.86,
                longitude=106.68, buildings=(Building("B", "B", 1, 1000.0),), zones=(),
                devices=devs, points=points, meters=(), schedules=(), tariffs=())


def serve(devices: int, per_device: int) -> None:
    """The devices, in their own process; stdin: 'offline dN', 'online dN', 'stop'."""
    from connectors.simulator.devices import VirtualDevices

    site = synthetic_site(devices, per_device)

    async def main() -> None:
        vd = VirtualDevices(site)
        await vd.start()
        vd.publish({p.id: 20.0 + (i % 97) / 10 for i, p in enumerate(site.points)})
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        while True:
            line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
            if not line or line[0] == "stop":
                break
            vd.set_offline(line[1], line[0] == "offline")
            print("ok", flush=True)
        vd.close()

    asyncio.run(main())


def bac0_client(devices: int, per_device: int, cycles: int) -> None:
    """BAC0 polls the same points; prints one JSON line with its cycle times and CPU."""
    import logging

    import BAC0

    BAC0.log_level("silence")
    logging.disable(logging.CRITICAL)
    site = synthetic_site(devices, per_device)
    requests = [{"address": dev.address,
                 "objects": {f"analogInput:{p.object_instance}": ["presentValue"]
                             for p in site.points_of(dev.id)}}
                for dev in site.devices]  # BAC0's documented form for many objects

    async def main() -> dict:
        async with BAC0.start(ip="127.0.0.1/8", port=48090) as bacnet:
            async def cycle() -> int:
                res = await asyncio.gather(*(bacnet.readMultiple("", request_dict=r, timeout=5)
                                             for r in requests))
                return sum(len(r) for r in res if isinstance(r, (list, dict)))
            n = await cycle()  # warm-up: device info caches
            walls, cpus = [], []
            for _ in range(cycles):
                c0, t0 = time.process_time(), time.perf_counter()
                n = await cycle()
                walls.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
            return {"values": n, "walls": walls, "cpus": cpus}

    print(json.dumps(asyncio.run(main())), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--points-per-device", type=int, default=100)
    ap.add_argument("--cycles", type=int, default=5)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--bac0", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-bac0", action="store_true", help="skip the BAC0 comparison")
    args = ap.parse_args()
    if args.serve:
        return serve(args.devices, args.points_per_device)
    if args.bac0:
        return bac0_client(args.devices, args.points_per_device, args.cycles)

    from connectors.bacnet.gateway import BacnetGateway
    from connectors.bacnet.poller import Poller

    site = synthetic_site(args.devices, args.points_per_device)
    n_points = len(site.points)
    me = [sys.executable, __file__, "--devices", str(args.devices), "--points-per-device",
          str(args.points_per_device), "--cycles", str(args.cycles)]
    server = subprocess.Popen(me + ["--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        gw = BacnetGateway(port=48091).start()
        poller = Poller(site, gw, backoff_base_s=3600)
        first = poller.poll()
        good = sum(1 for v, q in first.values.values() if q == "good")
        walls, cpus, complete = [], [], []
        for _ in range(args.cycles):
            c0 = time.process_time()
            r = poller.poll()
            cpus.append(time.process_time() - c0)
            walls.append(r.duration_s)
            # a cycle only counts if it read every point (a device that timed out is skipped
            # afterwards, which would make later cycles look faster than they are)
            complete.append(sum(1 for v, q in r.values.values() if q == "good"))
        good = min([good, *complete])
        cycle_s = statistics.median(walls)
        cpu_ms = statistics.median(cpus) * 1000 / n_points

        bac0 = None
        try:
            if args.no_bac0:
                raise OSError("skipped (--no-bac0)")
            out = subprocess.run(me + ["--bac0"], capture_output=True, text=True, timeout=600)
            line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
            bac0 = json.loads(line[-1]) if line else None
            if bac0 is None:
                print("BAC0 run failed:", (out.stderr or out.stdout)[-500:], file=sys.stderr)
        except (subprocess.TimeoutExpired, OSError) as err:
            print(f"BAC0 run failed: {err}", file=sys.stderr)

        # one dead device: its own timeout budget (1 s), and nothing more
        server.stdin.write("offline d7\n")
        server.stdin.flush()
        server.stdout.readline()
        dead = poller.poll()
        dead_extra = dead.duration_s - cycle_s
        stale = sum(1 for v, q in dead.values.values() if q == "stale")
        gw.stop()
    finally:
        if server.poll() is None:
            server.stdin.write("stop\n")
            server.stdin.flush()
            server.wait(30)

    bems_pps = n_points / cycle_s
    bac0_cycle = statistics.median(bac0["walls"]) if bac0 else None
    bac0_pps = n_points / bac0_cycle if bac0_cycle else None
    bac0_cpu = statistics.median(bac0["cpus"]) * 1000 / n_points if bac0 else None
    print(f"{'devices x points':<40}{args.devices} x {args.points_per_device} = {n_points}")
    print(f"{'':<40}{'BEMS':>12}{'BAC0':>12}")
    print(f"{'full cycle, median (s)':<40}{cycle_s:>12.3f}"
          f"{bac0_cycle if bac0_cycle is not None else float('nan'):>12.3f}")
    print(f"{'points per second':<40}{bems_pps:>12,.0f}"
          f"{bac0_pps if bac0_pps is not None else float('nan'):>12,.0f}")
    print(f"{'client CPU per point (ms)':<40}{cpu_ms:>12.3f}"
          f"{bac0_cpu if bac0_cpu is not None else float('nan'):>12.3f}")
    print(f"{'values read per cycle':<40}{good:>12}{bac0['values'] if bac0 else '-':>12}")
    print(f"{'cycle with device d7 dead (s)':<40}{dead.duration_s:>12.3f}")
    print(f"{'  extra over a healthy cycle (s)':<40}{dead_extra:>12.3f}   "
          f"(timeout budget 1 s; {stale} points marked stale)")
    if bac0_pps:
        print(f"{'BEMS / BAC0 points per second':<40}{bems_pps / bac0_pps:>12.2f}")
    print(json.dumps({"devices": args.devices, "points": n_points,
                      "bems_points_per_s": round(bems_pps),
                      "bac0_points_per_s": round(bac0_pps) if bac0_pps else None,
                      "cycle_s": round(cycle_s, 3),
                      "client_cpu_ms_per_point": round(cpu_ms, 4),
                      "dead_device_extra_s": round(dead_extra, 3)}))


if __name__ == "__main__":
    main()
