"""The data: forecasts (refit, backtest, show) and the store (upgrade, stats, purge, backup,
restore)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from bems.cli import main
from bems.cli.common import Number, _date, db_option, site_option
from bems.config import load_site
from bems.storage import Store


@main.group(invoke_without_command=True)
@click.option("--meter", default=None, help="Meter id (default: every meter with forecasts).")
@db_option()
@click.pass_context
def forecast(ctx: click.Context, meter: str | None, db_path: Path) -> None:
    """Load forecasts: show the latest stored ones, or backtest models on a CSV.

    Example:

    \b
        bems forecast --meter main --db bems.sqlite
        bems forecast backtest --csv loads.csv --country VN --days 42
    """
    if ctx.invoked_subcommand is not None:
        return
    with Store(db_path) as store:
        rows = store.latest_forecasts(meter)
    if not rows:
        raise click.ClickException("no forecasts stored yet (the runtime writes them nightly)")
    for m, items in rows.items():
        click.echo(f"{m}: model {items[0]['model']}, issued {items[0]['issued_at']:%Y-%m-%d %H:%M} UTC")
        for it in items:
            click.echo(f"  {it['ts']:%Y-%m-%d %H:%M} UTC  {it['yhat']:10.1f} kWh")


@forecast.command("refit")
@site_option
@db_option(exists=True, help="SQLite file.")
@click.option("--no-prophet", is_flag=True, help="Leave Prophet out (faster).")
def forecast_refit(site_file: Path | None, db_path: Path, no_prophet: bool) -> None:
    """Choose each meter's model by backtest, refit it and store 48 h of forecasts.

    The runtime does this every night; meters run in parallel, one process per core.

    Example:

    \b
        bems forecast refit --db bems-demo.sqlite
    """
    from models.service import CANDIDATES, describe, refit_all

    site = load_site(site_file)
    cands = tuple(c for c in CANDIDATES if not (no_prophet and c == "prophet"))
    for r in refit_all(site, db_path, dt.datetime.now(dt.timezone.utc), candidates=cands):
        click.echo(describe(r))


@forecast.command("backtest")
@click.option("--csv", "csv_file", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Hourly (or finer) meter data: ds,y,temp_c with ds in local time.")
@click.option("--country", default="VN", show_default=True, help="Public holidays of.")
@click.option("--days", type=Number(1, 3660, integer=True), default=42, show_default=True, help="Test days.")
@click.option("--end", default=None, help="YYYY-MM-DD: test days end the day before "
              "(default: the end of the data).")
@click.option("--refit", type=Number(1, 366, integer=True), default=7, show_default=True, help="Refit every N days.")
@click.option("--no-prophet", is_flag=True, help="Leave Prophet out (faster).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def forecast_backtest(csv_file: Path, country: str, days: int, end: str | None, refit: int,
                      no_prophet: bool, as_json: bool) -> None:
    """Rolling-origin day-ahead backtest of every model, with ASHRAE G14 metrics.

    Each test day is forecast as at 00:00 local (24 hourly values) from models fitted on
    the days before it; the model with the lowest hourly CV(RMSE) is selected.

    Example:

    \b
        bems forecast backtest --csv ../shared/data/loads/cambridge-b0.csv --country GB
        bems forecast backtest --csv meter.csv --days 14 --end 2026-11-01 --json
    """
    import json as _json

    from models.backtest import run_backtest
    from models.data import DayTypes, load_csv
    from models.forecasters import catalogue

    df, rep = load_csv(csv_file)
    end_day = _date(end, "--end") if end else None
    result = run_backtest(df, DayTypes(country), days, end_day, refit_every=refit,
                          models=catalogue(prophet=not no_prophet), meter=csv_file.stem)
    if as_json:
        click.echo(_json.dumps(result.as_dict()))
        return
    click.echo(f"{result.meter}: {days} days {result.first_day} .. {result.last_day}, "
               f"refit every {refit} days; repairs: {rep.summary()}")
    click.echo(f"{'model':<14}{'CV(RMSE) %':>12}{'NMBE %':>10}{'daily CV %':>12}{'fit s':>8}")
    for name, sc in result.scores.items():
        mark = "  <- selected" if name == result.selected else ""
        g14 = "" if sc.meets_g14_hourly else "  (misses G14 hourly)"
        click.echo(f"{name:<14}{sc.cv_rmse:>12.1f}{sc.nmbe:>10.1f}{sc.daily_cv_rmse:>12.1f}"
                   f"{sc.fit_seconds:>8.2f}{mark}{g14}")


@main.group()
def db() -> None:
    """Manage the SQLite store.

    Example:

    \b
        bems db upgrade --db bems.sqlite
        bems db stats --db bems.sqlite
        bems db backup --db bems.sqlite --out backups --keep 14
    """


@db.command("upgrade")
@db_option()
def db_upgrade(db_path: Path) -> None:
    """Create the database or bring its schema up to date.

    Example:

    \b
        bems db upgrade --db bems.sqlite
    """
    with Store(db_path) as store:
        click.echo(f"{db_path}: schema up to date ({store.integrity_check()})")
        if store.upgrade_backup is not None:
            click.echo(f"the store as it was before the upgrade: {store.upgrade_backup}")


@db.command("backup")
@db_option(exists=True, help="SQLite file (it may be in use by bems run).")
@click.option("--out", "out_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path), help="Folder of the backups.")
@click.option("--keep", type=Number(1, 10_000, integer=True), default=None,
              help="Keep only the newest N backups of this store in the folder.")
def db_backup(db_path: Path, out_dir: Path, keep: int | None) -> None:
    """Copy the store while BEMS runs (SQLite's online backup), check the copy's integrity and
    keep the newest N.

    Example:

    \b
        bems db backup --db bems.sqlite --out /var/backups/bems --keep 14
    """
    from bems.storage.backup import backup

    path = backup(db_path, out_dir, int(keep) if keep else None)
    click.echo(f"{path} ({path.stat().st_size / 1e6:.1f} MB, integrity ok)")


@db.command("restore")
@click.argument("backup_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@db_option(help="The store to replace (it is kept aside, not deleted).")
def db_restore(backup_file: Path, db_path: Path) -> None:
    """Put a backup in the store's place. Refused while `bems run` uses the store; the store it
    replaces is kept as DB.before-restore-TIME. Restart `bems web` afterwards.

    Example:

    \b
        bems db restore backups/bems-20261206T014500Z.sqlite --db bems.sqlite
    """
    from bems.storage.backup import check_store, restore

    what = check_store(backup_file)
    aside = restore(backup_file, db_path)
    click.echo(f"{db_path}: restored from {backup_file} ({what})")
    if aside is not None:
        click.echo(f"the store it replaced: {aside}")


@db.command("stats")
@db_option(exists=True, help="SQLite file.")
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
@db_option(exists=True, help="SQLite file.")
@site_option(help="Site file whose retention setting applies (default: the demo site).")
def db_purge(db_path: Path, site_file: Path | None) -> None:
    """Delete raw readings older than the site's retention; rollups are kept.

    Example:

    \b
        bems db purge --db bems.sqlite --site site.toml
    """
    site = load_site(site_file)
    cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=site.storage.retention_days)
    with Store(db_path, site.timezone) as store:
        n = store.purge_readings(cutoff)
        store.audit("cli", "db.purge", {"before": cutoff.isoformat(), "deleted": n})
    click.echo(f"deleted {n} readings older than {cutoff:%Y-%m-%d} "
               f"({site.storage.retention_days} days)")
