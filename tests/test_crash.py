"""A writer killed with SIGKILL mid-batch leaves a sound database with every committed batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from bems.storage import Store

WRITER = textwrap.dedent("""
    import sys
    from bems.storage import Store
    store = Store(sys.argv[1])
    batch_no = 0
    while True:
        rows = [(f"p{i}", 1_800_000_000 + batch_no * 300 + j, float(batch_no), "good")
                for i in range(200) for j in range(50)]
        store.insert_readings(rows)
        print(batch_no, flush=True)   # only after the commit returned
        batch_no += 1
""")


def test_sigkill_during_batch_insert_loses_nothing_committed(tmp_path):
    path = tmp_path / "crash.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE,
                            text=True)
    committed = []
    try:
        deadline = time.monotonic() + 60
        while len(committed) < 15 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            committed.append(int(line))
        assert len(committed) >= 15, "writer did not get going"
        os.kill(proc.pid, signal.SIGKILL)  # while it is inside the next batch
    finally:
        proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
    with Store(path) as store:
        assert store.integrity_check() == "ok"
        n = store.count_readings()
        assert n >= len(committed) * 10_000
        assert n % 10_000 == 0, "a batch was stored in part"
        values = {v for (v,) in store.db.execute("SELECT DISTINCT value FROM readings")}
        assert {float(b) for b in committed} <= values
        store.refresh_rollups()
        assert store.db.execute("SELECT sum(n) FROM rollup_day").fetchone()[0] == n
