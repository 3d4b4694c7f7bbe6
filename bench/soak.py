"""Soak: the virtual centre and `bems run` for many simulated days, unattended, with faults.

Three processes, as on a site: the simulated centre (`bems simulator`, its BACnet devices on
loopback), BEMS (`bems run`), and the UI (`bems web`) over the same SQLite file. At seeded
random times this driver injects faults: a device offline and back, a slow device, a stuck
sensor, a meter register reset, `kill -9` of BEMS and a restart (at least three times, once
while it holds writes), and a long reader holding the SQLite file open in a transaction; it
polls the UI throughout. Then it reports:

- completeness: of the poll cycles BEMS ran, the share of (cycle, point) readings stored, for
  devices not in an injected outage (aim >= 99.5 %);
- stuck writes: BEMS values in a priority array that no running BEMS holds, one poll cycle after
  each restart and after the final stop (aim 0);
- bad writes: values written (ledger `done`) that are not finite, outside the point's limits,
  or above BEMS's priority (aim 0);
- RSS growth of the BEMS process from its first simulated day to its end (aim < 10 %);
- SQLite integrity_check, and the rollups against the raw readings;
- the UI's p95 latency during the run.

    python bench/soak.py                       # 30 simulated days at 2880x (about 15 min)
    python bench/soak.py --days 1 --speed 2880 # the short form the test suite runs

The last line is JSON: sim_days, completeness, stuck_writes, bad_writes, rss_growth_pct,
restarts, ui_p95_ms (and more).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bems.config import load_site  # noqa: E402
from bems.storage import Store  # noqa: E402
from devtools.ports import demo_site_on_free_ports, free_port  # noqa: E402

START = "2026-07-06T00:00"
UI_PASSWORD = "harbour-lights-7429"


def site_file(folder: Path) -> Path:
    """The demo site on free ports, with quick failure detection (as a fast LAN would set)."""
    path = demo_site_on_free_ports(folder / "site.toml")
    text = re.sub(r"(\[\[devices\]\]\n)", r"\1timeout_s = 1.0\nretries = 0\n",
                  path.read_text(encoding="utf-8"))
    path.write_text(text, encoding="utf-8")
    return path


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class Soak:
    def __init__(self, days: float, speed: float, seed: int, poll_s: float, folder: Path):
        self.days, self.speed, self.poll_s = days, speed, poll_s
        self.rng = random.Random(seed)
        self.folder = folder
        self.site_path = site_file(folder)
        self.site = load_site(self.site_path)
        self.db = folder / "soak.sqlite"
        self.wall_s = days * 86400 / speed
        self.outages: list[tuple[str, float, float]] = []  # (device, t0, t1) monotonic
        self.restarts: list[dict] = []
        self.stuck = 0
        self.ui_ms: list[float] = []
        self.ui_errors = 0
        self.rss: list[tuple[float, int]] = []  # (wall s since this BEMS started, kB)
        self.events: list[str] = []
        self.sim = self.bems = self.web = None

    # --- processes ------------------------------------------------------------------------------

    def start_sim(self) -> None:
        self.sim = subprocess.Popen(
            [sys.executable, "-m", "bems", "simulator", "--site", str(self.site_path),
             "--speed", str(self.speed), "--start", START],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, cwd=self.folder)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = self.sim.stdout.readline()
            if "simulator ready" in line:
                threading.Thread(target=self._drain, args=(self.sim.stdout,), daemon=True).start()
                return
            if not line:
                break
        raise RuntimeError("the simulator did not start")

    @staticmethod
    def _drain(stream) -> None:
        for _ in stream:
            pass

    def fault(self, spec: str) -> None:
        self.sim.stdin.write(spec + "\n")
        self.sim.stdin.flush()
        self.events.append(f"{time.monotonic() - self.t0:7.1f}s fault {spec}")

    def start_bems(self) -> None:
        self.bems = subprocess.Popen(
            [sys.executable, "-m", "bems", "run", "--site", str(self.site_path), "--db",
             str(self.db), "--bacnet-port", str(free_port()), "--poll-interval",
             str(self.poll_s), "--strategy-interval", str(self.poll_s)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=self.folder)
        line = self.bems.stdout.readline()
        if not line.startswith("running"):
            raise RuntimeError(f"bems run did not start: {line!r}")
        self.bems_started = time.monotonic()
        threading.Thread(target=self._drain, args=(self.bems.stdout,), daemon=True).start()

    def start_web(self) -> None:
        subprocess.run([sys.executable, "-m", "bems", "user", "add", "soak", "--role", "viewer",
                        "--db", str(self.db), "--password-stdin"], input=UI_PASSWORD + "\n",
                       text=True, check=True, capture_output=True, cwd=self.folder)
        self.web_port = free_port()
        self.web = subprocess.Popen(
            [sys.executable, "-m", "bems", "web", "--site", str(self.site_path), "--db",
             str(self.db), "--port", str(self.web_port)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=self.folder)
        self.web.stdout.readline()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the server answers
            try:
                self._http("GET", "/login")
                return
            except OSError:
                time.sleep(0.2)

    # --- what the driver watches --------------------------------------------------------------

    def _http(self, method: str, path: str, body: str = "", cookie: str = ""):
        conn = http.client.HTTPConnection("127.0.0.1", self.web_port, timeout=10)
        headers = {"Cookie": cookie} if cookie else {}
        if body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body or None, headers=headers)
        r = conn.getresponse()
        data = r.read().decode("utf-8", "replace")
        conn.close()
        return r, data

    def login(self) -> str:
        """A facility manager's session: the cookie after logging in through the form."""
        from urllib.parse import urlencode

        r, page = self._http("GET", "/login")
        cookie = (r.getheader("Set-Cookie") or "").split(";")[0]
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        r, _ = self._http("POST", "/login", urlencode(
            {"username": "soak", "password": UI_PASSWORD, "csrf_token": token}), cookie)
        if r.status != 302:
            raise RuntimeError(f"login to the UI failed: {r.status}")
        return (r.getheader("Set-Cookie") or cookie).split(";")[0]

    def poll_ui(self, stop: threading.Event) -> None:
        """The overview and the zones, as a manager keeping a tab open would see them."""
        cookie = self.login()
        pages = ("/", "/zones/", "/alarms/")
        n = 0
        while not stop.wait(1.0):
            path = pages[n % len(pages)]
            n += 1
            t = time.perf_counter()
            try:
                r, _ = self._http("GET", path, cookie=cookie)
                if r.status != 200:
                    self.ui_errors += 1
                    cookie = self.login() if r.status == 302 else cookie
                else:
                    self.ui_ms.append((time.perf_counter() - t) * 1000)
            except (OSError, RuntimeError):
                self.ui_errors += 1

    def watch_rss(self, stop: threading.Event) -> None:
        while not stop.wait(1.0):
            if self.bems is not None and self.bems.poll() is None:
                kb = rss_kb(self.bems.pid)
                if kb:
                    self.rss.append((time.monotonic() - self.bems_started, kb))

    def long_reader(self, seconds: float) -> None:
        """Another program reading the database in one long transaction."""
        conn = sqlite3.connect(str(self.db), timeout=30)
        conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM readings").fetchone()
        time.sleep(seconds)
        conn.execute("COMMIT")
        conn.close()
        self.events.append(f"{time.monotonic() - self.t0:7.1f}s long reader done ({seconds:g} s)")

    def slots_held_by_nobody(self) -> int:
        """BEMS-priority slots in the devices that the ledger does not say a BEMS holds."""
        from connectors.bacnet.gateway import BacnetGateway

        prio = self.site.control.write_priority
        with Store(self.db) as store:
            held = {(w.point, w.priority) for w in store.held_writes()}
        stuck = 0
        with BacnetGateway(port=free_port()) as gw:
            for p in self.site.points:
                if not p.writable:
                    continue
                try:
                    slots = gw.priority_array(self.site.device(p.device).address, p.object,
                                              timeout=2)
                except Exception:  # noqa: BLE001 - a device in an injected outage
                    continue
                if prio in slots and (p.id, prio) not in held:
                    stuck += 1
        return stuck

    # --- the run --------------------------------------------------------------------------------

    def plan(self) -> list[tuple[float, str]]:
        """Seeded fault times over the run (wall seconds from the start)."""
        w, r = self.wall_s, self.rng
        at = lambda lo, hi: r.uniform(lo * w, hi * w)  # noqa: E731
        plan = [(at(0.10, 0.15), "kill"), (at(0.40, 0.45), "kill"), (at(0.70, 0.75), "kill"),
                (at(0.20, 0.25), "offline"), (at(0.50, 0.55), "slow"),
                (at(0.30, 0.35), "stuck"), (at(0.60, 0.65), "reset"),
                (at(0.80, 0.85), "reader")]
        return sorted(plan)

    def run(self) -> dict:
        self.start_sim()
        self.t0 = time.monotonic()
        self.start_bems()
        self.start_web()
        stop = threading.Event()
        watchers = [threading.Thread(target=f, args=(stop,), daemon=True)
                    for f in (self.poll_ui, self.watch_rss)]
        for t in watchers:
            t.start()
        devices = [d.id for d in self.site.devices if d.id != "meters"]
        for when, what in self.plan():
            time.sleep(max(0.0, self.t0 + when - time.monotonic()))
            if what == "kill":
                self.kill_and_restart()
            elif what in ("offline", "slow"):
                dev = self.rng.choice(devices)
                span = max(3 * self.poll_s, 0.03 * self.wall_s)
                self.fault(f"{dev}:offline" if what == "offline" else f"{dev}:slow=3")
                t1 = time.monotonic()
                time.sleep(span)
                self.fault(f"{dev}:online" if what == "offline" else f"{dev}:slow=0")
                self.outages.append((dev, t1 - self.poll_s, time.monotonic() + 2 * self.poll_s))
            elif what == "stuck":
                self.fault("f1.core.temp:stuck=30")
                time.sleep(0.03 * self.wall_s)
                self.fault("f1.core.temp:unstuck")
            elif what == "reset":
                self.fault("main:reset")
            elif what == "reader":
                threading.Thread(target=self.long_reader, args=(max(5.0, 0.02 * self.wall_s),),
                                 daemon=True).start()
        time.sleep(max(0.0, self.t0 + self.wall_s - time.monotonic()))
        # a clean stop releases everything
        self.bems.send_signal(signal.SIGTERM)
        self.bems.wait(60)
        time.sleep(self.poll_s)
        final_stuck = self.slots_held_by_nobody()
        stop.set()
        for t in watchers:
            t.join(5)
        self.web.send_signal(signal.SIGTERM)
        self.web.wait(30)
        self.sim.stdin.write("stop\n")
        self.sim.stdin.flush()
        self.sim.wait(60)
        return self.report(final_stuck)

    def kill_and_restart(self) -> None:
        with Store(self.db) as store:
            holding = len({w.point for w in store.held_writes()})  # points commanded
        os.kill(self.bems.pid, signal.SIGKILL)
        self.bems.wait(30)
        down = time.monotonic()
        self.events.append(f"{down - self.t0:7.1f}s kill -9 of bems run (holding {holding})")
        time.sleep(self.poll_s)
        self.start_bems()
        time.sleep(1.5 * self.poll_s)  # one cycle after the restart
        stuck = self.slots_held_by_nobody()
        self.stuck += stuck
        self.restarts.append({"held_at_kill": holding, "stuck_after": stuck,
                              "down_s": round(time.monotonic() - down, 1)})
        self.outages += [(d.id, down - self.poll_s, self.bems_started + self.poll_s)
                         for d in self.site.devices]

    def report(self, final_stuck: int) -> dict:
        store = Store(self.db)
        conn = store.db.conn
        keys = dict(conn.execute("SELECT id, key FROM point_keys"))
        # poll cycles are the times of readings of points without COV (COV values arrive at
        # their own times); completeness is counted over those points
        devices_of = {keys[p.id]: p.device for p in self.site.points
                      if p.id in keys and not p.cov}
        marks = ",".join(str(k) for k in devices_of)
        cycles = [ts for (ts,) in conn.execute(
            f"SELECT ts FROM readings WHERE point IN ({marks}) GROUP BY ts ORDER BY ts")]
        # map wall-clock outages onto cycle times: cycles are stamped with wall time here
        wall0 = time.time() - (time.monotonic() - self.t0)
        out = [(dev, wall0 + (a - self.t0), wall0 + (b - self.t0)) for dev, a, b in self.outages]
        got = expected = 0
        missing: dict[str, int] = {}
        per_cycle = {ts: {k for (k,) in conn.execute(
            "SELECT point FROM readings WHERE ts = ? AND quality < 2", [ts])} for ts in cycles}
        for ts, present in per_cycle.items():
            for key, dev in devices_of.items():
                if any(d == dev and a <= ts <= b for d, a, b in out):
                    continue
                expected += 1
                got += key in present
                if key not in present:
                    missing[f"{dev}@{int(ts - wall0)}s"] = missing.get(
                        f"{dev}@{int(ts - wall0)}s", 0) + 1
        bad = 0
        points = {p.id: p for p in self.site.points}
        prio = self.site.control.write_priority
        for w in store.writes(action="write", outcomes=["done"], limit=10**7):
            p = points.get(w.point)
            try:
                v = float(w.value)
            except (TypeError, ValueError):
                bad += 1
                continue
            if not math.isfinite(v) or (w.priority or 99) < prio or p is None or \
                    (p.min is not None and v < p.min) or (p.max is not None and v > p.max):
                bad += 1
        integrity = store.integrity_check()
        store.refresh_rollups()
        raw_n, raw_sum = conn.execute("SELECT count(*), total(value) FROM readings WHERE "
                                      "value IS NOT NULL AND quality < 2").fetchone()
        roll_n, roll_sum = conn.execute("SELECT total(n), total(sum) FROM rollup_day").fetchone()
        store.close()
        growth = None
        day_s = 86400 / self.speed
        seg = [(t, kb) for t, kb in self.rss if t >= day_s]
        if len(seg) >= 2:
            base = statistics.median(kb for t, kb in seg[:5])
            end = statistics.median(kb for t, kb in seg[-5:])
            growth = round(100 * (end - base) / base, 1)
        ui = sorted(self.ui_ms)
        return {
            "sim_days": self.days, "speed": self.speed,
            "completeness": round(got / expected, 5) if expected else None,
            "cycles": len(cycles), "stuck_writes": self.stuck + final_stuck,
            "bad_writes": bad, "rss_growth_pct": growth, "restarts": len(self.restarts),
            "held_at_kills": [r["held_at_kill"] for r in self.restarts],
            "ui_p95_ms": round(ui[int(0.95 * (len(ui) - 1))], 1) if ui else None,
            "ui_errors": self.ui_errors, "integrity": integrity,
            "missing": dict(sorted(missing.items())[:20]),
            "rollups_equal_raw": int(raw_n) == int(roll_n) and
            math.isclose(raw_sum, roll_sum, rel_tol=1e-9, abs_tol=1e-6),
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=30.0, help="simulated days")
    ap.add_argument("--speed", type=float, default=2880.0, help="simulated seconds per second")
    ap.add_argument("--poll", type=float, default=2.0, help="BEMS poll interval (wall s)")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        soak = Soak(args.days, args.speed, args.seed, args.poll, Path(tmp))
        try:
            r = soak.run()
        finally:
            for p in (soak.bems, soak.web, soak.sim):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.wait()
    for e in soak.events:
        print(e)
    rows = [("simulated days", r["sim_days"]), ("speed", f"{r['speed']:g}x"),
            ("poll cycles", r["cycles"]),
            ("completeness outside outages", f"{100 * (r['completeness'] or 0):.2f} % "
                                             "(aim >= 99.5 %)"),
            ("stuck writes after restarts/stop", f"{r['stuck_writes']} (aim 0)"),
            ("bad writes", f"{r['bad_writes']} (aim 0)"),
            ("RSS growth after day 1", f"{r['rss_growth_pct']} % (aim < 10 %)"),
            ("kill -9 and restart", f"{r['restarts']} (points held at each: "
                                    f"{r['held_at_kills']})"),
            ("UI p95 during the run", f"{r['ui_p95_ms']} ms ({r['ui_errors']} errors)"),
            ("integrity_check", r["integrity"]), ("rollups equal raw", r["rollups_equal_raw"])]
    for k, v in rows:
        print(f"{k:<34} {v}")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
