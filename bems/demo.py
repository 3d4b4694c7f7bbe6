"""`bems demo`: the embedded demo site end to end, on a local SQLite file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from bems.config import demo_site_path, load_site


def run_demo(db_path: Path, history_days: int = 28, speed: float = 1.0) -> None:
    """History of the virtual centre into the store, then the centre served over BACnet."""
    from connectors.simulator.run import serve

    site = load_site()
    click.echo(f"site: {site.name} ({demo_site_path()})")
    click.echo(", ".join(f"{v} {k}" for k, v in site.summary().items()))
    now = dt.datetime.now(site.tz).replace(tzinfo=None, second=0, microsecond=0)
    serve(site, now, speed, [], lambda m: click.echo(m), history_days=history_days, db=db_path,
          read_stdin=False)
