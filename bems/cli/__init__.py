"""The `bems` program: a thin skin over the library, split by task like sqlite-utils' CLI:
`site` (the site program: run, demo, web, strategies, overrides, reports, faults), `field`
(discovery, read/write/release, the simulated centre and the closed loop), `data` (forecasts,
the store), `users`; `bems portfolio` is the city's program (`city.cli`, with the `city`
extra), kept here as a door to it. Errors become one clear line (`common.ErrorGroup`)."""

from __future__ import annotations

import importlib.util
import os

# before anything imports numpy: one OpenBLAS thread. BEMS's matrices are small (the room
# models' fit, the plan); OpenBLAS's threads spinning beside the polls made the nightly fit of
# 15 rooms take 6.1 s instead of 3.0 on an idle 2-core machine, 12 s instead of 3.5 s with a
# core busy. OPENBLAS_NUM_THREADS set outside still wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import click  # noqa: E402

from bems import __version__
from bems.cli.common import ErrorGroup
from bems.errors import BemsError


def entry() -> None:
    """The `bems` program: what it creates (the store, reports, backups, secrets) is its
    user's alone (files 0600, folders 0700), whatever the shell's umask."""
    os.umask(0o077)
    main()


@click.group(cls=ErrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bems")
def main() -> None:
    """BEMS: building energy management for government administrative centres.

    Example:

    \b
        bems demo
        bems check-config my-site.toml
    """


CITY_EXTRA = ("psycopg", "psycopg_pool", "dask", "distributed")


class CityDoor(click.Group):
    """`bems portfolio …` is `bems-city …`: the city's program, installed with the `city`
    extra (PostgreSQL's driver, Dask); without it, it says how to install it."""

    def _city(self) -> click.Group | None:
        if any(importlib.util.find_spec(m) is None for m in CITY_EXTRA):
            return None
        from city.cli import main as city

        return city

    def list_commands(self, ctx: click.Context) -> list[str]:
        city = self._city()
        return city.list_commands(ctx) if city is not None else []

    def get_command(self, ctx: click.Context, name: str):
        city = self._city()
        if city is None:
            missing = ", ".join(m for m in CITY_EXTRA if importlib.util.find_spec(m) is None)
            raise BemsError(f"the city's program needs the city extra ({missing} missing): "
                            "pip install -c constraints.txt -e '.[city]'")
        return city.get_command(ctx, name)


@main.group(cls=CityDoor)
def portfolio() -> None:
    """The city portfolio (the same as `bems-city`): every centre's BEMS reports to the city
    energy office; the city runs the broker, the ingest, its screens and reports.

    A centre reports when its site file has a [portfolio] table (`bems run` publishes).
    Needs the city extra: pip install -e '.[city]'.

    Example:

    \b
        bems portfolio broker-config --out /etc/mosquitto/bems --port 8883 \\
            --ca ca.pem --cert server.pem --key server.key
        bems portfolio add-site hp-phuong-1 --broker-dir /etc/mosquitto/bems --password-stdin
    """


from bems.cli import data, field, modbus, site, users  # noqa: E402,F401 (they add commands)
