"""Discovery benchmark: a new site's BACnet network found and drafted, and a routed device
polled, BEMS vs BAC0.

    python bench/discover.py                  # 20 controllers x 500 objects (root: netns)
    python bench/discover.py --objects 200 --cycles 5

The network is real: a network namespace this benchmark makes, one IP subnet (a Linux bridge
with an address per controller), real UDP broadcast. On it: 19 BACnet/IP controllers (one
with a 480-byte APDU and no segmentation), a BACnet router to network 3001 with one
controller behind it (20 controllers), each holding `--objects` objects; all plain bacpypes3
(connectors/simulator/fieldnet.py, a separate process).

discover_s: from BEMS's client starting to the draft site file written — Who-Is-Router-To-
Network, a global Who-Is (`--wait` seconds listening for I-Ams), every object list (whole, or
entry by entry where it cannot segment), every object's name, units and commandability.
routed_points_per_s: the present values of every point object of the routed controller, one
full poll cycle after another (median cycle), BEMS's poller vs BAC0's `readMultiple` on the
same objects through the same router (a subprocess on another address of the subnet).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROUTED = "3001:7"
POINT_TYPES = ("analog-input", "analog-value", "binary-output", "binary-input",
               "multi-state-value", "binary-lighting-output")


def spec(objects: int) -> dict:
    devices = [{"instance": 1100 + i, "address": f"10.40.0.{11 + i}/24:47808",
                "objects": objects} for i in range(19)]
    devices[11].update(segmentation="no-segmentation", max_apdu=480)
    return {"devices": devices,
            "routers": [{"address": "10.40.0.250/24:47808", "ip_network": 1, "network": 3001,
                         "instance": 3000, "devices": [{"mac": 7, "instance": 3007,
                                                        "objects": objects}]}]}


def routed_objects(objects: int) -> list[str]:
    from connectors.simulator.fieldnet import objects_for

    out = []
    for o in objects_for(objects):
        otype, inst = o.objectIdentifier
        if str(otype) in POINT_TYPES:
            out.append(f"{otype},{inst}")
    return out


def bems_side(ns, objects: int, wait: float, cycles: int, out_dir: Path) -> dict:
    from bems.site import Building, Device, Point, Site
    from connectors.bacnet.discovery import site_section, survey
    from connectors.bacnet.fieldbus import BacnetFieldBus
    from connectors.bacnet.gateway import BacnetGateway

    gw = BacnetGateway(host="10.40.0.5", prefix=24, port=47808, instance=599001)
    t0 = time.perf_counter()
    with ns.inside():
        gw.start()
    try:
        result = survey(gw, broadcast=True, wait_s=wait)
        nets, found = result["routers"], result["devices"]
        draft = out_dir / "draft-site.toml"
        draft.write_text(site_section(found), encoding="utf-8")
        discover_s = time.perf_counter() - t0
    finally:
        gw.stop()
    controllers = [d for d in found if d["objects"]]
    objs = sum(len(d["objects"]) for d in controllers)
    complete = sum(1 for d in controllers if len(d["objects"]) == objects)

    dev = Device(id="routed", name="routed", host="", port=0, instance=3007, network=3001,
                 mac="7", timeout_s=3.0, retries=0)
    pts = tuple(Point(id=f"routed.{o}", device="routed", object=o, kind="other")
                for o in routed_objects(objects))
    site = Site(name="discover bench", timezone="Asia/Ho_Chi_Minh", latitude=20.86,
                longitude=106.68, buildings=(Building("B", "B", 1, 1000.0),), zones=(),
                devices=(dev,), points=pts, meters=(), schedules=(), tariffs=())
    bus = BacnetFieldBus(site, gateway=BacnetGateway(host="10.40.0.5", prefix=24, port=47808,
                                                     instance=599002))
    with ns.inside():
        bus.start()
    try:
        bus.poll()  # warm-up: route and device information learned
        walls, cpus, good = [], [], 0
        for _ in range(cycles):
            c0 = time.process_time()
            r = bus.poll()
            cpus.append(time.process_time() - c0)
            walls.append(r.duration_s)
            good = sum(1 for _, q in r.values.values() if q == "good")
    finally:
        bus.stop()
    return {"routers": nets, "devices_found": len(found), "controllers": len(controllers),
            "objects": objs, "complete_lists": complete,
            "by_index": [d["instance"] for d in controllers if d["object_list"] == "by index"],
            "discover_s": discover_s, "points": len(pts), "good": good,
            "cycle_s": statistics.median(walls), "cpu_s": statistics.median(cpus),
            "walls": walls}


def bac0_client(objects: int, cycles: int) -> None:
    """BAC0 reads the routed controller's point objects; prints one JSON line."""
    import logging

    import BAC0

    BAC0.log_level("silence")
    logging.disable(logging.CRITICAL)
    request = {"address": ROUTED,
               "objects": {f"{_camel(o.split(',')[0])}:{o.split(',')[1]}": ["presentValue"]
                           for o in routed_objects(objects)}}

    async def main() -> dict:
        async with BAC0.start(ip="10.40.0.6/24", port=47808) as bacnet:
            async def cycle() -> int:
                res = await bacnet.readMultiple("", request_dict=request, timeout=10)
                return len(res) if isinstance(res, (list, dict)) else 0
            n = await cycle()  # warm-up
            walls = []
            for _ in range(cycles):
                t0 = time.perf_counter()
                n = await cycle()
                walls.append(time.perf_counter() - t0)
            return {"values": n, "walls": walls}

    print(json.dumps(asyncio.run(main())), flush=True)


def _camel(otype: str) -> str:
    a, *rest = otype.split("-")
    return a + "".join(w.capitalize() for w in rest)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=500, help="objects per controller")
    ap.add_argument("--wait", type=float, default=2.0, help="seconds listening for I-Ams")
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--no-bac0", action="store_true", help="skip the BAC0 comparison")
    ap.add_argument("--bac0", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bac0:
        return bac0_client(args.objects, args.cycles)

    from devtools import netns

    why = netns.available()
    if why:
        sys.exit(f"bench/discover.py needs a network namespace: {why}")
    subnet = {"bn": ["10.40.0.5/24", "10.40.0.6/24", "10.40.0.250/24"]
              + [f"10.40.0.{11 + i}/24" for i in range(19)]}
    out_dir = ROOT / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    with netns.Namespace(subnet) as ns, tempfile.TemporaryDirectory() as tmp:
        spec_file = Path(tmp) / "spec.json"
        spec_file.write_text(json.dumps(spec(args.objects)))
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        field = subprocess.Popen(ns.command(sys.executable, "-m",
                                            "connectors.simulator.fieldnet", str(spec_file)),
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                 cwd=ROOT, env=env)
        try:
            t0 = time.perf_counter()
            assert field.stdout.readline().strip() == "ready", "the field network did not start"
            print(f"field network up in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            bems = bems_side(ns, args.objects, args.wait, args.cycles, out_dir)
            bac0 = None
            if not args.no_bac0:
                try:
                    r = subprocess.run(ns.command(sys.executable, __file__, "--bac0",
                                                  "--objects", str(args.objects),
                                                  "--cycles", str(args.cycles)),
                                       capture_output=True, text=True, timeout=600, cwd=ROOT,
                                       env=env)
                    lines = [x for x in r.stdout.splitlines() if x.startswith("{")]
                    bac0 = json.loads(lines[-1]) if lines else None
                    if bac0 is None:
                        print("BAC0 run failed:", (r.stderr or r.stdout)[-600:], file=sys.stderr)
                except (OSError, subprocess.TimeoutExpired) as err:
                    print(f"BAC0 run failed: {err}", file=sys.stderr)
        finally:
            netns.end(field, 20)

    pps = bems["points"] / bems["cycle_s"] if bems["cycle_s"] else None
    bac0_ok = bac0 and bac0["values"] >= bems["points"]
    bac0_pps = bems["points"] / statistics.median(bac0["walls"]) if bac0_ok else None
    print(f"{'controllers found / expected':<44}{bems['controllers']:>10} / 20")
    print(f"{'routers (Who-Is-Router-To-Network)':<44}{json.dumps(bems['routers']):>20}")
    print(f"{'objects listed':<44}{bems['objects']:>10,}")
    print(f"{'complete object lists':<44}{bems['complete_lists']:>10} / {bems['controllers']}")
    print(f"{'read entry by entry (no segmentation)':<44}{str(bems['by_index']):>10}")
    print(f"{'discovery to draft site file (s)':<44}{bems['discover_s']:>10.2f}")
    print(f"{'routed poll: points, good':<44}{bems['points']:>10}{bems['good']:>8}")
    print(f"{'':<44}{'BEMS':>10}{'BAC0':>12}")
    print(f"{'routed poll cycle, median (s)':<44}{bems['cycle_s']:>10.3f}"
          f"{statistics.median(bac0['walls']) if bac0_ok else float('nan'):>12.3f}")
    print(f"{'BEMS client CPU per cycle (s)':<44}{bems['cpu_s']:>10.3f}")
    print(f"{'BEMS cycles, fastest / slowest (s)':<44}{min(bems['walls']):>10.3f}"
          f"{max(bems['walls']):>12.3f}")
    print(f"{'routed points per second':<44}{pps:>10,.0f}"
          f"{bac0_pps if bac0_pps else float('nan'):>12,.0f}")
    if bac0 and not bac0_ok:
        print(f"BAC0 returned {bac0['values']} of {bems['points']} values", file=sys.stderr)
    print(json.dumps({"devices": bems["controllers"], "objects": bems["objects"],
                      "discover_s": round(bems["discover_s"], 2),
                      "routed_points_per_s": round(pps) if pps else None,
                      "bac0_routed_points_per_s": round(bac0_pps) if bac0_pps else None}))


if __name__ == "__main__":
    main()
