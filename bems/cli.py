"""The `bems` command: a thin skin over the library; errors become one clear line, exit 1."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from bems import __version__
from bems.config import ConfigError, load_site
from bems.errors import BemsError
from bems.storage import Store

DEFAULT_DB = "bems.sqlite"


class _Group(click.Group):
    """Turns our errors into a message and exit status instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ConfigError as err:
            for issue in err.issues:
                click.echo(f"error: {issue}", err=True)
            click.echo(f"{len(err.issues)} error(s) in the site file", err=True)
            sys.exit(1)
        except BemsError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("stopped", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bems")
def main() -> None:
    """BEMS: building energy management for government administrative centres.

    Example:

    \b
        bems demo
        bems check-config my-site.toml
    """


@main.command("check-config")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def check_config(file: Path) -> None:
    """Check a site file; report every error with file, line and field.

    Exits 1 when the file has errors, after listing all of them.

    Example:

    \b
        bems check-config site.toml
    """
    site = load_site(file)
    counts = site.summary()
    click.echo(f"{file}: OK - {site.name}")
    click.echo(", ".join(f"{v} {k}" for k, v in counts.items()))
    click.echo(f"floor area {site.floor_area_m2:,.0f} m2, time zone {site.timezone}, "
               f"write priority {site.control.write_priority}")


@main.command()
@click.option("--db", "db_path", default="bems-demo.sqlite", show_default=True,
              type=click.Path(dir_okay=False, path_type=Path), help="SQLite file to use.")
@click.option("--history-days", type=int, default=28, show_default=True,
              help="Days of simulated past data to put in the store first.")
@click.option("--speed", type=float, default=1.0, show_default=True,
              help="Simulated seconds per wall second.")
def demo(db_path: Path, history_days: int, speed: float) -> None:
    """Run BEMS on the embedded demo site (an administrative centre in Hai Phong).

    Fills the store with weeks of history from the simulated centre, then serves the centre's
    BACnet devices on loopback, paced to the wall clock, until Ctrl-C.

    Example:

    \b
        bems demo
        bems demo --db /tmp/demo.sqlite --speed 60
    """
    from bems.demo import run_demo

    run_demo(db_path, history_days, speed)


def _parse_start(value: str | None, tz) -> dt.datetime:
    if value is None:
        return dt.datetime.now(tz).replace(tzinfo=None, second=0, microsecond=0)
    try:
        start = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    return start.replace(tzinfo=None)


@main.command()
@click.option("--site", "site_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Site file (default: the embedded demo centre).")
@click.option("--speed", type=float, default=1.0, show_default=True,
              help="Simulated seconds per wall second (60: a minute per second; 0: unpaced).")
@click.option("--start", "start", default=None,
              help="Simulated start, local time YYYY-MM-DD[THH:MM] (default: now).")
@click.option("--history-days", type=int, default=0, show_default=True,
              help="First simulate this many days before the start into --db, unpaced.")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
              help="SQLite file for --history-days.")
@click.option("--fault", "faults", multiple=True,
              help="Inject a fault: DEVICE:offline, DEVICE:slow=S, POINT:stuck=V, METER:reset.")
def simulator(site_file: Path | None, speed: float, start: str | None, history_days: int,
              db_path: Path | None, faults: tuple[str, ...]) -> None:
    """Serve the virtual administrative centre: EnergyPlus physics as BACnet/IP devices.

    Each device listens on its own UDP port on loopback (see the site file). While it runs,
    type a fault on standard input (e.g. fc2:offline, fc2:online) or `stop`.

    Example:

    \b
        bems simulator --speed 60
        bems simulator --start 2026-07-06T07:00 --history-days 14 --db sim.sqlite
    """
    from connectors.simulator.run import serve

    site = load_site(site_file)
    start_local = _parse_start(start, site.tz)
    serve(site, start_local, speed, list(faults), lambda m: click.echo(m),
          history_days=history_days, db=db_path, read_stdin=not sys.stdin.isatty())


@main.group()
def db() -> None:
    """Manage the SQLite store.

    Example:

    \b
        bems db upgrade --db bems.sqlite
        bems db stats --db bems.sqlite
    """


@db.command("upgrade")
@click.option("--db", "db_path", default=DEFAULT_DB, show_default=True,
              type=click.Path(dir_okay=False, path_type=Path), help="SQLite file.")
def db_upgrade(db_path: Path) -> None:
    """Create the database or bring its schema up to date.

    Example:

    \b
        bems db upgrade --db bems.sqlite
    """
    with Store(db_path) as store:
        click.echo(f"{db_path}: schema up to date ({store.integrity_check()})")


@db.command("stats")
@click.option("--db", "db_path", default=DEFAULT_DB, show_default=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path), help="SQLite file.")
def db_stats(db_path: Path) -> None:
    """Show what the store holds: readings, points, time span, ledger entries.

    Example:

    \b
        bems db stats --db bems.sqlite
    """
    with Store(db_path) as store:
        for key, value in store.stats().items():
            click.echo(f"{key:>16}: {value}")


@db.command("purge")
@click.option("--db", "db_path", default=DEFAULT_DB, show_default=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path), help="SQLite file.")
@click.option("--site", "site_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Site file whose retention setting applies (default: the demo site).")
def db_purge(db_path: Path, site_file: Path | None) -> None:
    """Delete raw readings older than the site's retention; rollups are kept.

    Example:

    \b
        bems db purge --db bems.sqlite --site site.toml
    """
    site = load_site(site_file)
    cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=site.storage.retention_days)
    with Store(db_path, site.timezone) as store:
        store.refresh_rollups()
        n = store.purge_readings(cutoff)
    click.echo(f"deleted {n} readings older than {cutoff:%Y-%m-%d} "
               f"({site.storage.retention_days} days)")
