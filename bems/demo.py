"""`bems demo`: the embedded demo site end to end, on a local SQLite file."""

from __future__ import annotations

from pathlib import Path

import click

from bems.config import demo_site_path, load_site
from bems.storage import Store


def run_demo(db_path: Path) -> None:
    site = load_site()
    click.echo(f"site: {site.name} ({demo_site_path()})")
    click.echo(", ".join(f"{v} {k}" for k, v in site.summary().items()))
    with Store(db_path, site.timezone) as store:
        click.echo(f"store: {db_path} ({store.integrity_check()})")
