"""Shared fixtures: site, store, runner; the `slow` mark is skipped unless --runslow."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bems.config import load_site
from bems.storage import Store


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def site():
    return load_site()


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
