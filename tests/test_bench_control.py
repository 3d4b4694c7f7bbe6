"""bench/control.py keeps each finished run so a benchmark stopped part way goes on; a run is
reused only with the same arguments, the same site file and the same code."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def control():
    spec = importlib.util.spec_from_file_location("bench_control", ROOT / "bench" / "control.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_finished_run_is_kept_and_reused_only_with_the_same_code(control, tmp_path,
                                                                   monkeypatch):
    calls = []

    def fake_run(cmd, capture_output, text):
        calls.append(cmd)
        if "--seed" in cmd and cmd[cmd.index("--seed") + 1] == "9":
            return subprocess.CompletedProcess(cmd, 1, "", "error: boom")
        return subprocess.CompletedProcess(cmd, 0, "log\n" + json.dumps({"hvac_kwh": len(calls)}),
                                           "")

    monkeypatch.setattr(control.subprocess, "run", fake_run)
    args = ["--start", "2026-07-06", "--strategy", "rules", "--seed", "1"]
    site = tmp_path / "site.toml"
    site.write_text("a = 1\n", encoding="utf-8")
    runs = control.Runs(tmp_path / "runs", "v1")
    assert runs.run(args, None) == {"hvac_kwh": 1}
    assert calls[0][:3] == [sys.executable, "-m", "bems"]
    # the same run again: kept, not run
    assert runs.run(args, None) == {"hvac_kwh": 1} and len(calls) == 1 and runs.reused == 1
    # other arguments, a site file, another site text: each runs
    assert runs.run(args[:-1] + ["2"], None) == {"hvac_kwh": 2}
    assert runs.run(args, site) == {"hvac_kwh": 3} and calls[-1][-2:] == ["--site", str(site)]
    assert runs.run(args, site) == {"hvac_kwh": 3} and len(calls) == 3
    site.write_text("a = 2\n", encoding="utf-8")
    assert runs.run(args, site) == {"hvac_kwh": 4}
    # other code: runs again; no version (a dirty checkout, --fresh): nothing kept
    assert control.Runs(tmp_path / "runs", "v2").run(args, None) == {"hvac_kwh": 5}
    bare = control.Runs(tmp_path / "runs", None)
    assert bare.run(args, None) == {"hvac_kwh": 6} and bare.run(args, None) == {"hvac_kwh": 7}
    # a failed run raises with its error and keeps nothing; a damaged file is run again
    with pytest.raises(RuntimeError, match="boom"):
        runs.run(args[:-1] + ["9"], None)
    assert len(list((tmp_path / "runs").glob("*.json"))) == 5
    runs.path(args, None).write_text("{not json", encoding="utf-8")
    assert runs.run(args, None) == {"hvac_kwh": 9} and runs.reused == 2
    assert runs.run(args, None) == {"hvac_kwh": 9}


def test_the_code_version_follows_the_code_trees(control, tmp_path, monkeypatch):
    if subprocess.run(["git", "status", "--porcelain", "--", "bems", "connectors", "models"],
                      cwd=ROOT, capture_output=True, text=True).stdout.strip():
        pytest.skip("this checkout's code has changes: the benchmark keeps nothing")
    v = control.code_version()
    assert v is not None and len(v) == 16 and v == control.code_version()
    monkeypatch.setattr(control, "ROOT", tmp_path)  # not a git checkout
    assert control.code_version() is None
