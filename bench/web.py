"""Web benchmark: median and 95th-percentile response time of the overview, trends (one point;
four points over 30 days, the page with its chart's data) and floor-plan pages, and of the read
API (a week of raw readings of one point; a 30-day 15-minute series of 10 points, ten calls),
over HTTP to the real server, with a year of 5-minute readings from 500 points in the store.

    python bench/web.py
    python bench/web.py --days 30 --requests 20
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import re
import statistics
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from bems.config import load_site
from bems.storage import Store


def fill(db: Path, site, days: int, points: int) -> tuple[int, dt.datetime]:
    """The demo site's points plus padding points, every 5 minutes, through the batch path."""
    ids = [p.id for p in site.points][:points]
    ids += [f"extra.{i}" for i in range(points - len(ids))]
    end = dt.datetime.now(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
    start = end - dt.timedelta(days=days)
    t0 = int(start.timestamp())
    n = 0
    with Store(db, site.timezone) as store:
        for hour in range(days * 24):
            rows = []
            for m in range(12):
                ts = t0 + hour * 3600 + m * 300
                local_h = (ts // 3600 + 7) % 24
                busy = 8 <= local_h < 17
                for i, pid in enumerate(ids):
                    base = 26.0 if pid.endswith(".temp") else (150.0 if busy else 40.0) \
                        if pid.endswith(".kw") else float(i % 5)
                    rows.append((pid, ts, base + (i % 3) * 0.1))
            n += store.insert_readings(rows)
        store.refresh_rollups()
    return n, end


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--points", type=int, default=500)
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--port", type=int, default=8799)
    args = ap.parse_args()
    import logging

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request

    from webui import create_app
    from bems.users import hash_password

    site = load_site()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "web.sqlite"
        t = time.perf_counter()
        n, end = fill(db, site, args.days, args.points)
        fill_s = time.perf_counter() - t
        with Store(db) as s:
            s.add_user("bench", "viewer", hash_password("bench-password"), "en")
            from bems import tokens

            api_token = tokens.create(s, "bench", "read", end)
        app = create_app(site, db, test_config={"SESSION_COOKIE_SECURE": False},
                         clock=lambda: end)
        server = make_server("127.0.0.1", args.port, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)
            conn.request("GET", "/login")
            r = conn.getresponse()
            cookie = r.getheader("Set-Cookie").split(";")[0]
            token = re.search(rb'name="csrf_token" value="([^"]+)"', r.read()).group(1).decode()
            body = urllib.parse.urlencode({"username": "bench", "password": "bench-password",
                                           "csrf_token": token})
            conn.request("POST", "/login", body, {"Cookie": cookie, "Content-Type":
                                                  "application/x-www-form-urlencoded"})
            r = conn.getresponse()
            r.read()
            cookie = r.getheader("Set-Cookie").split(";")[0]
            results = {}
            four = "&".join(f"point={p}" for p in ("f1.core.temp", "f1.core.sp",
                                                   "f1.core.ac", "meter.main.kw"))

            def span(days: int) -> str:
                return urllib.parse.urlencode({"from": (end - dt.timedelta(days=days)).isoformat(),
                                               "to": end.isoformat()})
            ten = [p.id for p in site.points if p.kind in ("temperature", "setpoint")][:10]
            api = {"Authorization": f"Bearer {api_token}"}
            for name, paths in (
                    ("overview", ("/",)),
                    ("trends", ("/trends/?point=f1.core.temp&days=1",)),
                    ("trends_30d", ("/trends/?point=meter.main.kw&days=30",)),
                    # the page carries its chart's data: one request is the whole view
                    ("trends_4series_30d", (f"/trends/?{four}&days=30",)),
                    ("floorplan", ("/zones/",)),
                    ("api_readings_7d", (f"/api/v1/readings?point=f1.core.temp&{span(7)}",)),
                    ("api_15m_10points_30d", tuple(f"/api/v1/readings?point={p}&res=15m&"
                                                   f"{span(30)}" for p in ten))):
                times = []
                headers = api if name.startswith("api") else {"Cookie": cookie}
                for _ in range(args.requests):
                    t = time.perf_counter()
                    for path in paths:
                        conn.request("GET", path, headers=headers)
                        resp = conn.getresponse()
                        resp.read()
                        assert resp.status == 200, (path, resp.status)
                    times.append((time.perf_counter() - t) * 1000)
                times.sort()
                results[name] = (statistics.median(times),
                                 times[min(len(times) - 1, int(0.95 * len(times)))])
        finally:
            server.shutdown()
    print(f"{'readings in the store':<34}{n:>14,}  ({args.points} points x {args.days} days x 5 min;"
          f" filled in {fill_s:.0f} s)")
    print(f"{'page':<34}{'median ms':>14}{'p95 ms':>10}")
    for name, (med, p95) in results.items():
        print(f"{name:<34}{med:>14.1f}{p95:>10.1f}")
    print("aim: p95 under 300 ms")
    print(json.dumps({"overview_p95_ms": round(results["overview"][1], 1),
                      "trends_p95_ms": round(results["trends"][1], 1),
                      "trends_30d_p95_ms": round(results["trends_30d"][1], 1),
                      "trends_4series_30d_p95_ms": round(results["trends_4series_30d"][1], 1),
                      "floorplan_p95_ms": round(results["floorplan"][1], 1),
                      "api_readings_7d_p95_ms": round(results["api_readings_7d"][1], 1),
                      "api_15m_10points_30d_p95_ms":
                          round(results["api_15m_10points_30d"][1], 1)}))


if __name__ == "__main__":
    main()
