"""The CLI: help with an example on every command, clean errors, the store commands."""

from __future__ import annotations

import click
import pytest

from bems.cli import main


def _commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        yield prefix + (name,), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, prefix + (name,))


ALL = list(_commands(main))


@pytest.mark.parametrize("path", [p for p, _ in ALL] + [()], ids=lambda p: " ".join(p) or "bems")
def test_every_command_has_help_with_an_example(runner, path):
    result = runner.invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output
    assert "bems " in result.output.split("Example:")[1]


def test_check_config_ok_and_broken(runner, tmp_path):
    from bems.config import demo_site_path

    ok = runner.invoke(main, ["check-config", str(demo_site_path())])
    assert ok.exit_code == 0
    assert "15 zones" in ok.output
    bad = tmp_path / "bad.toml"
    bad.write_text('[site]\nname = 3\n\n[[buildings]]\nid = "A"\nfloor_area_m2 = -5\n')
    res = runner.invoke(main, ["check-config", str(bad)])
    assert res.exit_code == 1
    assert f"{bad}:2: site.name: must be text" in res.output
    assert f"{bad}:6: buildings[0].floor_area_m2: must be greater than 0" in res.output
    assert "Traceback" not in res.output


def test_missing_file_is_one_clear_line(runner, tmp_path):
    res = runner.invoke(main, ["check-config", str(tmp_path / "nope.toml")])
    assert res.exit_code == 1
    assert "cannot read" in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_db_upgrade_and_stats(runner, tmp_path):
    db = tmp_path / "x.sqlite"
    assert runner.invoke(main, ["db", "upgrade", "--db", str(db)]).exit_code == 0
    res = runner.invoke(main, ["db", "stats", "--db", str(db)])
    assert res.exit_code == 0
    assert "0002_operations" in res.output


def test_corrupt_database_is_a_clear_error(runner, tmp_path):
    db = tmp_path / "bad.sqlite"
    db.write_bytes(b"garbage" * 1000)
    res = runner.invoke(main, ["db", "stats", "--db", str(db)])
    assert res.exit_code == 1
    assert "cannot open the database" in res.output


@pytest.mark.parametrize("args, hint", [
    (["--range", "1e300"], "--range"), (["--range", "9-2"], "--range"),
    (["--range", "0-99999999"], "--range"), (["--network", "0"], "--network"),
    (["--network", "65535"], "--network"), (["--scan", "127.0.0.1:1-65535"], "--scan"),
    (["--scan", "127.0.0.1:x"], "--scan"), (["--bbmd", "nan"], "--bbmd"),
    (["--address", "2001:999"], "--address"), (["--address", "ü" * 5000], "--address"),
    (["--wait", "inf"], "--wait"), (["--wait", "1e300"], "--wait"),
])
def test_discover_refuses_absurd_options_before_touching_the_network(runner, args, hint):
    r = runner.invoke(main, ["discover", *args])
    assert r.exit_code == 2 and hint in r.output, r.output
    assert len(r.output) < 2000  # a huge value is not echoed back whole


def test_a_reader_that_stops_early_gets_no_error_line():
    """`bems modbus templates | head -1`: the pipe closes before BEMS has written everything;
    that is the reader's choice, not an error (exit 141 as a shell reports SIGPIPE, nothing on
    stderr). The read end is closed before the program has started writing."""
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-m", "bems", "modbus", "templates"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()
    try:
        _, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert err.decode() == "" and p.returncode == 141, (p.returncode, err[-300:])


@pytest.mark.parametrize("outside", [None, "2"])
def test_the_program_runs_numpy_on_one_openblas_thread_unless_told(outside):
    """The room models' fit took twice as long with OpenBLAS's threads (bems/cli): the
    program sets one before numpy loads; a value set outside is kept."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if outside:
        env["OPENBLAS_NUM_THREADS"] = outside
    code = ("import bems.cli, sys, os; assert 'numpy' in sys.modules; "
            "print(os.environ['OPENBLAS_NUM_THREADS'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout.strip()
    assert out == (outside or "1")
