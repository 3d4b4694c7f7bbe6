"""The short form of bench/soak.py: one simulated day with every fault, three kill -9 restarts
(writes held each time), the UI polled, then the same aims as the 30-day soak."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.bacnet, pytest.mark.energyplus]


def test_one_simulated_day_unattended_with_faults_and_kills():
    bench = Path(__file__).resolve().parent.parent / "bench" / "soak.py"
    out = subprocess.run([sys.executable, str(bench), "--days", "1", "--speed", "2880"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["restarts"] >= 3 and any(n > 0 for n in r["held_at_kills"])
    assert r["completeness"] >= 0.995
    assert r["stuck_writes"] == 0 and r["bad_writes"] == 0
    assert r["integrity"] == "ok" and r["rollups_equal_raw"]
    assert r["ui_errors"] == 0 and r["ui_p95_ms"] is not None
