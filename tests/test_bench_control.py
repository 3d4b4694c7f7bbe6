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


# what a 14-day run gives, per setting: (HVAC kWh, peak kW, operative discomfort K·h/zone)
FAKE = {("baseline", None): (100.0, 200.0, 1.3), ("rules", "26"): (78.8, 168.0, 35.72),
        ("rules", "25.5"): (80.3, 176.0, 16.26), ("rules", "25"): (82.9, 170.0, 6.27),
        ("rules", "zoned"): (80.3, 170.0, 19.47), ("predictive", "35"): (80.4, 159.0, 7.02),
        ("predictive", "35 seed 2"): (80.3, 160.0, 7.34), ("predictive", "20"): (82.9, 180.0, 13.5),
        ("predictive", "50"): (82.2, 158.0, 6.0), ("predictive", "80"): (83.0, 150.0, 4.8)}


def _fake_simulate(cmd, capture_output, text):
    strategy = cmd[cmd.index("--strategy") + 1]
    params = dict(cmd[i + 1].split("=") for i, c in enumerate(cmd) if c == "--param")
    setting = "zoned" if "--site" in cmd else params.get(
        "comfort_weight", params.get("occupied_setpoint"))
    if cmd[cmd.index("--seed") + 1] == "2":
        setting += " seed 2"
    hvac, peak, tdis = FAKE[(strategy, setting)]
    kpis = {"hvac_kwh": hvac, "peak_kw": peak, "tdis_operative_kh_per_zone": tdis,
            "policy_violations": 0, "decision_cpu_p95_s": 0.1 + hvac / 1000,
            **{k: 1.0 for k in ("ener_tot", "tdis_tot", "tdis_air_tot", "tdis_person_tot",
                                "pele_tot", "cost_tot", "cost_tou_tot", "time_rat")}}
    return subprocess.CompletedProcess(cmd, 0, json.dumps(kpis), "")


def test_the_benchmark_scores_the_default_against_the_rules_curve(control, tmp_path,
                                                                  monkeypatch, capsys):
    monkeypatch.setattr(control.subprocess, "run", _fake_simulate)
    monkeypatch.setattr(control, "code_version", lambda: "test")
    monkeypatch.setattr(control, "OUT", tmp_path)
    monkeypatch.setattr(sys, "argv", ["control.py", "--windows", "hot=2026-07-06", "--no-300",
                                      "--no-options", "--runs", str(tmp_path / "runs")])
    control.main()
    out = capsys.readouterr().out
    hot = json.loads(out.strip().splitlines()[-1])["windows"]["hot"]
    # 0.804 against the rules between 25 °C (6.27, 0.829) and 25.5 °C (16.26, 0.803) at 7.02
    assert hot["delta_e_at_d_points"] == round((0.804 - (0.829 - 0.026 * 0.75 / 9.99)) * 100, 2)
    assert hot["delta_e_at_d_points"] == -2.3 and hot["delta_e_at_d_points_seed2"] == -2.32
    assert [r["setting"] for r in hot["rules"]] == ["rules 26", "rules 25.5", "rules 25",
                                                     "rules per zone"]
    assert hot["predictive_default"]["peak_ratio"] == 0.795
    # slider 50 (6.0 K·h/zone at 0.822) is more comfortable than rules 25 °C and uses less, so
    # not dominated; slider 80 is the most comfortable; slider 20 (under 35) is not checked
    assert hot["dominated_by_rules"] == {}
    assert hot["delta_e_at_d_points_allowance"] is None
    assert "predictive 35 (default)" in out and "-2.30 points" in out
    assert len(list((tmp_path / "runs").glob("*.json"))) == 10
    assert (tmp_path / "control-hot.png").stat().st_size > 10_000
    monkeypatch.setattr(control, "plot", lambda result: None)  # once is enough
    # again: every run kept
    control.main()
    assert "(10 runs kept from an earlier start" in capsys.readouterr().out
    # a dominated setting is named (--fresh: run again, keep nothing)
    FAKE[("predictive", "80")] = (83.0, 150.0, 40.0)
    sys.argv.append("--fresh")
    try:
        control.main()
    finally:
        FAKE[("predictive", "80")] = (83.0, 150.0, 4.8)
    hot = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["windows"]["hot"]
    assert hot["dominated_by_rules"] == {"predictive 80": ["rules 26", "rules 25.5", "rules 25",
                                                           "rules per zone"]}
