"""Store benchmark: batch ingest of a year of 5-min readings, rollups, a one-month summary.

Compares the batch path (`Store.insert_readings`) with a plain `executemany` into an unindexed
table (the physical reference), both fed the same batches in the same run, with generation of
the rows left out of the timings.

    python bench/store.py                       # 500 points, 365 days (52.6 million readings)
    python bench/store.py --points 50 --days 30 # a quick look
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from bems.storage import Store

UTC = dt.timezone.utc


def batches(points: int, days: int, step: int, batch_minutes: int, start: int):
    ids = [f"site.zone{i // 6}.point{i}" for i in range(points)]
    per_batch = batch_minutes * 60
    for b0 in range(start, start + days * 86400, per_batch):
        yield [(pid, ts, 20.0 + ((i * 31 + ts // step) % 97) / 10.0, 0)
               for ts in range(b0, b0 + per_batch, step) for i, pid in enumerate(ids)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=500)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--step", type=int, default=300, help="seconds between readings")
    ap.add_argument("--batch-minutes", type=int, default=60, help="data per batch (minutes)")
    ap.add_argument("--dir", default=None, help="where to put the database files")
    args = ap.parse_args()
    if args.days < 31:
        ap.error("--days must be at least 31 (the query summarises a month)")

    start = int(dt.datetime(2025, 1, 1, tzinfo=UTC).timestamp()) - 7 * 3600  # local midnight
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="bems-bench-"))
    ours_path, ref_path = workdir / "store.sqlite", workdir / "reference.sqlite"
    for p in (ours_path, ref_path):
        for suffix in ("", "-wal", "-shm"):
            Path(str(p) + suffix).unlink(missing_ok=True)

    store = Store(ours_path)
    ref = sqlite3.connect(str(ref_path))
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-65536"):
        ref.execute(f"PRAGMA {pragma}")
    ref.execute("CREATE TABLE readings (point TEXT, ts INTEGER, value REAL, quality INTEGER)")

    ours_s = ref_s = 0.0
    rows = 0
    cpu0 = time.process_time()
    for batch in batches(args.points, args.days, args.step, args.batch_minutes, start):
        t = time.perf_counter()
        store.insert_readings(batch)
        ours_s += time.perf_counter() - t
        t = time.perf_counter()
        with ref:
            ref.executemany("INSERT INTO readings VALUES (?, ?, ?, ?)", batch)
        ref_s += time.perf_counter() - t
        rows += len(batch)
    ref.close()

    t = time.perf_counter()
    store.refresh_rollups()
    rollup_s = time.perf_counter() - t

    # One month (July, or January for short runs; local time) over every point.
    month = 7 if args.days >= 212 else 1
    m0 = int(dt.datetime(2025, month, 1, tzinfo=UTC).timestamp()) - 7 * 3600
    m1 = int(dt.datetime(2025, month + 1, 1, tzinfo=UTC).timestamp()) - 7 * 3600
    timings = []
    for _ in range(7):
        t = time.perf_counter()
        summary = store.summary(m0, m1)
        timings.append((time.perf_counter() - t) * 1000)
    assert len(summary) == args.points
    expected_n = args.points * 31 * 86400 // args.step
    got_n = sum(v["n"] for v in summary.values())
    store.close()
    size_mb = sum(Path(str(ours_path) + s).stat().st_size for s in ("", "-wal")
                  if Path(str(ours_path) + s).exists()) / 1e6

    result = {
        "ingest_rows_per_s": round(rows / ours_s),
        "reference_rows_per_s": round(rows / ref_s),
        "month_query_ms": round(statistics.median(timings), 2),
        "month_query_first_ms": round(timings[0], 2),
        "rollup_rows_per_s": round(rows / rollup_s),
        "readings": rows,
    }
    print(f"{'readings':<34}{rows:>16,}")
    print(f"{'points x days x step':<34}{f'{args.points} x {args.days} x {args.step}s':>16}")
    print(f"{'batch size (rows)':<34}{args.points * args.batch_minutes * 60 // args.step:>16,}")
    print(f"{'BEMS batch ingest (rows/s)':<34}{result['ingest_rows_per_s']:>16,}")
    print(f"{'reference executemany (rows/s)':<34}{result['reference_rows_per_s']:>16,}")
    print(f"{'ratio reference / BEMS':<34}{rows / ref_s / (rows / ours_s):>16.2f}")
    print(f"{'rollup refresh (rows/s)':<34}{result['rollup_rows_per_s']:>16,}")
    print(f"{'month summary, median of 7 (ms)':<34}{result['month_query_ms']:>16}")
    print(f"{'month summary, first call (ms)':<34}{result['month_query_first_ms']:>16}")
    print(f"{'month rows covered (check)':<34}{f'{got_n:,} of {expected_n:,}':>16}")
    print(f"{'database size (MB)':<34}{size_mb:>16,.0f}")
    print(f"{'total CPU (s)':<34}{time.process_time() - cpu0:>16.1f}")
    print(json.dumps({k: result[k] for k in ("ingest_rows_per_s", "reference_rows_per_s",
                                              "month_query_ms")} | {
        "rollup_rows_per_s": result["rollup_rows_per_s"], "readings": rows}))


if __name__ == "__main__":
    main()
