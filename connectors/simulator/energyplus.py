"""EnergyPlus for the virtual centre, from the optional `sim` extra (PyPI `pyenergyplus-lbnl`).

A production install talks to a real building and does not need it; anything that runs the
virtual centre without it gets one clear sentence instead of an import trace.
"""

from __future__ import annotations

from bems.errors import BemsError


class SimulatorUnavailable(BemsError):
    """The virtual centre was asked for, but EnergyPlus is not installed."""


try:
    from pyenergyplus.api import EnergyPlusAPI
    from pyenergyplus.dataset import ashrae_models, weather_files
except ImportError as err:  # pragma: no cover - exercised by a test in a subprocess
    raise SimulatorUnavailable(
        "the virtual centre needs EnergyPlus, which this install does not have: "
        "pip install -e '.[sim]' (or: pip install pyenergyplus-lbnl)") from err

__all__ = ["EnergyPlusAPI", "ashrae_models", "weather_files", "SimulatorUnavailable"]
