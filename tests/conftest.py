"""Shared fixtures: site, store, runner; the `slow` mark is skipped unless --runslow."""

from __future__ import annotations

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    # before anything imports numpy: one BLAS thread per xdist worker (two workers with two
    # threads each on a 2-core machine made the model fits take twice as long)
    for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, "1")

import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from bems.config import load_site  # noqa: E402
from bems.storage import Store  # noqa: E402

pytest_plugins = ["tests.timetravel"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


INTEGRATION = ("bacnet", "energyplus", "browser")
# modules whose tests meet "now" (the demo, the runtime, reports, the UI's "last month",
# "today", "keep cooled until"): CI runs them again with the wall clock moved (--fake-now)
CLOCK_MODULES = ("test_browser", "test_webui", "test_reports", "test_runtime")


def require_energyplus() -> None:
    """For modules that need the virtual centre: skipped where the `sim` extra is missing
    (a production install), but never in CI, where a missing EnergyPlus is a failure."""
    if not os.environ.get("CI"):
        pytest.importorskip("pyenergyplus", reason="the sim extra is not installed")


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    # the tiers: a test that uses real UDP, EnergyPlus or Chromium is an integration test;
    # the rest is the fast tier: pytest -m "not slow and not integration"
    for item in items:
        if any(m in item.keywords for m in INTEGRATION):
            item.add_marker(pytest.mark.integration)
        if item.module.__name__.rpartition(".")[2] in CLOCK_MODULES:
            item.add_marker(pytest.mark.clock)
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _synthetic_stores_once(tmp_path_factory):
    """tests/synthetic.py makes each synthetic store once per run, in the run's own folder
    (under xdist, one for all workers)."""
    from tests import synthetic

    base = tmp_path_factory.getbasetemp()
    synthetic.CACHE = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    yield
    synthetic.CACHE = None


@pytest.fixture(scope="session")
def site_file(tmp_path_factory):
    """The demo site file with its devices on free ports (so suites can run side by side)."""
    from devtools.ports import demo_site_on_free_ports

    return demo_site_on_free_ports(tmp_path_factory.mktemp("site") / "site.toml")


@pytest.fixture(scope="session")
def site(site_file):
    return load_site(site_file)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "bems.sqlite")
    yield s
    s.close()


def simulated_db(path, site, end_local, days: int):
    """A store holding `days` of the virtual centre's history up to `end_local`."""
    from connectors.simulator.centre import VirtualCentre

    with Store(path) as store:
        VirtualCentre(site).history(end_local, days, store.insert_readings)
        store.refresh_rollups()
    return path


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture(scope="session")
def synthetic_model(site, _synthetic_stores_once):
    """The demo site's zones run by a known model for ten days (tests/test_predictive.py),
    and the zone models BEMS fits from those readings: fitted once for the whole run, under
    xdist once for every worker (tests/synthetic.py `made_once`)."""
    import datetime as dt
    import json

    from bems.predictive.model import BuildingModel, fit
    from tests.synthetic import made_once
    from tests.test_predictive import synthetic_history

    h = synthetic_history(site)
    made = made_once("synthetic_model.json", lambda new: new.write_text(json.dumps(
        fit(site, h, dt.datetime(2026, 7, 6, tzinfo=dt.timezone.utc)).to_json())))
    return h, BuildingModel.from_json(json.loads(made.read_text()))
