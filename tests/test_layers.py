"""Dependencies point inward: the core (`bems/`) imports no connector, model or UI code except
in the composition roots, the simulator does not use the BACnet client, the planner stays pure,
and a production install runs without EnergyPlus."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPOSITION_ROOTS = {"bems/runtime.py", "bems/demo.py", "bems/__main__.py"} | {
    f"bems/cli/{m}.py" for m in ("__init__", "common", "site", "field", "data", "users",
                                 "modbus")}


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _offenders(folder: str, forbidden: tuple[str, ...], allowed=(), skip=()) -> dict:
    found = {}
    for f in _files(folder):
        rel = f.relative_to(ROOT).as_posix()
        if rel in skip:
            continue
        bad = sorted(m for m in _imports(f)
                     if m.startswith(forbidden) and not m.startswith(tuple(allowed)))
        if bad:
            found[rel] = bad
    return found


def test_the_checker_sees_imports_inside_functions(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from connectors.bacnet.gateway import BacnetGateway\n")
    assert "connectors.bacnet.gateway" in _imports(f)


def test_core_imports_no_connector_model_or_ui():
    forbidden = ("connectors", "models", "webui", "city")
    assert _offenders("bems", forbidden, skip=COMPOSITION_ROOTS) == {}


def test_the_simulator_does_not_import_the_bacnet_client():
    # what client and simulated devices share (value conversion, the port check) is allowed
    assert _offenders("connectors/simulator", ("connectors.bacnet",),
                      allowed=("connectors.bacnet.common",)) == {}


def test_the_planner_is_pure():
    for f in ("bems/strategies/plan.py", "bems/strategies/params.py", "bems/intents.py",
              "bems/validate.py"):
        mods = _imports(ROOT / f)
        assert not {m for m in mods if m.startswith(("bems.storage", "bems.control",
                                                     "bems.runtime", "sqlite"))}, f


def test_without_energyplus_the_simulator_says_how_to_install_it(tmp_path):
    # a production install has no EnergyPlus: BEMS works, the simulator says what to install
    code = ("import sys; sys.modules['pyenergyplus'] = None\n"
            "from bems.cli import main\n"
            "import bems.runtime, bems.decision, webui\n"
            "main(['simulator'])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert "needs EnergyPlus" in r.stderr + r.stdout and "[sim]" in r.stderr + r.stdout
    assert "Traceback" not in r.stderr


def test_the_centre_web_ui_does_not_know_the_city():
    # the city's screens (city/web.py) build on the web UI's shell, never the other way round
    assert _offenders("webui", ("city", "psycopg", "dask", "distributed")) == {}
    assert _offenders("connectors", ("city", "webui")) == {}


def test_each_protocol_keeps_to_its_folder():
    # the Modbus connector uses no BACnet code and the BACnet connector no Modbus code
    assert _offenders("connectors/modbus", ("connectors.bacnet", "bacpypes3")) == {}
    assert _offenders("connectors/bacnet", ("connectors.modbus", "pymodbus")) == {}


def test_no_core_module_is_longer_than_600_lines():
    long = {f.relative_to(ROOT).as_posix(): n for f in _files("bems")
            if (n := len(f.read_text(encoding="utf-8").splitlines())) > 600}
    assert long == {}, long


def test_a_centre_install_has_none_of_the_city_and_still_runs(tmp_path):
    # a district centre installs `pip install -c constraints.txt -e .`: no PostgreSQL driver, no
    # Dask; the site's program, its web UI and its CLI work, and the city's door says what to add
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    core = " ".join(project["dependencies"]).lower()
    assert not any(name in core for name in ("psycopg", "dask", "distributed"))
    code = ("import sys\n"
            "for m in ('psycopg', 'psycopg_pool', 'dask', 'distributed'): sys.modules[m] = None\n"
            "import bems.runtime, bems.decision\n"
            "from webui import create_app\n"
            "from bems.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "main(['portfolio', 'status'])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    out = r.stdout + r.stderr
    assert "Traceback" not in out, out
    assert "demo" in r.stdout and "run" in r.stdout  # the help listed the commands
    assert r.returncode == 1 and "needs the city extra" in r.stderr and "[city]" in r.stderr, out
