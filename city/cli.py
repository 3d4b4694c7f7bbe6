"""`bems-city` (also `bems portfolio`): the city energy office's program. The broker's
configuration and its credentials, registering centres, the ingest into PostgreSQL, the city's
screens, the consolidated yearly report and the fleet's forecasts. Needs the `city` extra
(PostgreSQL's driver, Dask): a centre's install has none of it.

    bems-city broker-config --out /etc/mosquitto/bems --port 8883 --ca ca.pem \\
        --cert server.pem --key server.key
    bems-city add-site hp-phuong-1 --broker-dir /etc/mosquitto/bems --password-stdin
    bems-city ingest --dsn "host=127.0.0.1 dbname=city" --broker mqtts://127.0.0.1:8883 \\
        --ca-file ca.pem --username ingest --password-file ingest.pw
    bems-city web --dsn "host=127.0.0.1 dbname=city" --db city-users.sqlite
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from bems import __version__
from bems.cli.common import ErrorGroup, Number, _date, _secret, db_option
from bems.config import load_site
from bems.errors import BemsError
from bems.storage import Store


def entry() -> None:
    """The `bems-city` program (what it writes is its user's alone)."""
    os.umask(0o077)
    main()


@click.group(cls=ErrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bems-city")
def main() -> None:
    """The city portfolio: every centre's BEMS reports to the city energy office.

    A centre reports when its site file has a [portfolio] table (`bems run` then publishes).
    The city runs the broker (Mosquitto), `bems-city ingest` (into PostgreSQL) and
    `bems-city web`.

    Example:

    \b
        bems-city broker-config --out /etc/mosquitto/bems --port 8883 \\
            --ca ca.pem --cert server.pem --key server.key
        bems-city add-site hp-phuong-1 --broker-dir /etc/mosquitto/bems --password-stdin
        bems-city ingest --dsn "host=127.0.0.1 dbname=city" --broker mqtts://127.0.0.1:8883 \\
            --ca-file ca.pem --username ingest --password-file ingest.pw
        bems-city web --dsn "host=127.0.0.1 dbname=city" --db city-users.sqlite
    """


def _dsn_option(f):
    return click.option("--dsn", required=True, envvar="BEMS_CITY_DSN",
                        help="PostgreSQL connection string (or BEMS_CITY_DSN).")(f)


@main.command("broker-config")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for mosquitto.conf, the ACL, the password file and persistence.")
@click.option("--port", type=Number(1, 65535, integer=True), default=8883, show_default=True)
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--ca", "ca", required=True, type=click.Path(dir_okay=False, exists=True,
                                                            path_type=Path))
@click.option("--cert", required=True, type=click.Path(dir_okay=False, exists=True,
                                                        path_type=Path))
@click.option("--key", required=True, type=click.Path(dir_okay=False, exists=True,
                                                       path_type=Path))
@click.option("--ingest-user", "ingest_users", multiple=True, default=("ingest",),
              show_default=True, help="Users that read every centre (the ingest).")
def portfolio_broker_config(out_dir: Path, port: int, host: str, ca: Path, cert: Path,
                            key: Path, ingest_users: tuple[str, ...]) -> None:
    """Write Mosquitto's configuration: TLS only, a credential per centre, and the ACL under
    which a centre publishes only below bems/v1/<its id>/ and reads nothing.

    Example:

    \b
        bems portfolio broker-config --out /etc/mosquitto/bems --ca ca.pem \\
            --cert server.pem --key server.key
    """
    from city.broker import write_config

    conf = write_config(out_dir, port=port, cafile=ca.resolve(), certfile=cert.resolve(),
                        keyfile=key.resolve(), ingest_users=list(ingest_users), host=host)
    click.echo(f"wrote {conf}; run: mosquitto -c {conf}")


@main.command("add-site")
@click.argument("site_id")
@click.option("--broker-dir", required=True, type=click.Path(file_okay=False, exists=True,
                                                              path_type=Path))
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@click.option("--ingest", "for_ingest", is_flag=True,
              help="The credential of one of the city's ingests (ingest, ingest-2, ...), not a "
                   "centre's.")
@click.option("--replace", is_flag=True, help="Change a credential that exists already.")
def portfolio_add_site(site_id: str, broker_dir: Path, password_stdin: bool, for_ingest: bool,
                       replace: bool) -> None:
    """Make a centre's credential on the city's broker (the user name is its site id); a
    new password is printed once, or read from stdin. An existing credential is changed only
    with --replace; the ingest's only with --ingest.

    Example:

    \b
        bems portfolio add-site hp-le-chan --broker-dir /etc/mosquitto/bems
        bems portfolio add-site ingest --ingest --broker-dir /etc/mosquitto/bems
    """
    import re
    import secrets

    from bems.portfolio.schema import site_ok
    from city.broker import set_password, users

    if for_ingest and not re.fullmatch(r"ingest(-[a-z0-9]{1,20})?", site_id):
        raise click.BadParameter("an ingest is ingest or ingest-NAME (a-z, 0-9)",
                                 param_hint="SITE_ID")
    if not for_ingest and not site_ok(site_id):
        raise click.BadParameter("a centre's id: 1..40 lower-case letters, digits or '-', not "
                                 "starting 'ingest' (the city's own clients: --ingest)",
                                 param_hint="SITE_ID")
    if site_id in users(broker_dir) and not replace:
        raise BemsError(f"{site_id} has a credential already: --replace to change it")
    password = _secret(None, True) if password_stdin else secrets.token_urlsafe(18)
    if not password or len(password) > 200 or any(c in password for c in "\r\n\x00"):
        raise click.BadParameter("empty, longer than 200 characters, or with a line break",
                                 param_hint="password")
    try:
        set_password(broker_dir, site_id, password)
    except (OSError, RuntimeError, ValueError) as err:  # never the password in the message
        raise BemsError(f"{site_id}: credential not set: {err}") from None
    click.echo(f"{site_id}: credential set" + ("" if password_stdin else
                                                f"; password: {password}"))


@main.command("register")
@_dsn_option
@click.argument("site_files", nargs=-1, required=True,
                type=click.Path(dir_okay=False, exists=True, path_type=Path))
def portfolio_register(dsn: str, site_files: tuple[Path, ...]) -> None:
    """Register centres from their site files (each needs [portfolio] site_id): name, floor
    area, staff and meter tree. A centre also registers itself when it first reports.

    Example:

    \b
        bems portfolio register --dsn "dbname=city" le-chan.toml hong-bang.toml
    """
    from bems.portfolio.registry import registry
    from city.store import CityStore

    with CityStore(dsn) as cs:
        cs.migrate()
        for f in site_files:
            site = load_site(f)
            if site.portfolio is None:
                raise BemsError(f"{f}: no [portfolio] table (its site_id names the centre)")
            with cs.conn.transaction():
                cs.upsert_site(site.portfolio.site_id, registry(site))
            click.echo(f"{site.portfolio.site_id}: {site.name}")


@main.command("ingest")
@_dsn_option
@click.option("--broker", required=True, help="mqtts://HOST:PORT")
@click.option("--username", default="ingest", show_default=True,
              help="The ingest's own credential on the broker (ingest, ingest-2, ...): the "
                   "broker takes it as the client id.")
@click.option("--password-file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--ca-file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--partition", default="1/1", show_default=True, metavar="K/N",
              help="Run N ingests (each its own --username): this one takes the centres "
                   "whose id hashes to K of N.")
def portfolio_ingest(dsn: str, broker: str, username: str, password_file: Path | None,
                     ca_file: Path | None, partition: str) -> None:
    """Take every centre's messages from the broker into PostgreSQL until Ctrl-C. Several
    processes split the centres (--partition 1/2 and 2/2, each its own --username).

    Example:

    \b
        bems portfolio ingest --dsn "dbname=city" --broker mqtts://127.0.0.1:8883 \\
            --ca-file ca.pem --password-file ingest.pw
    """
    import logging
    import re
    import time

    from city.broker import user_ok
    from city.ingest import Ingest

    if not (user_ok(username) and username.startswith("ingest")):
        raise click.BadParameter("ingest, or ingest-NAME", param_hint="--username")
    m = re.fullmatch(r"(\d{1,2})/(\d{1,2})", partition)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)) <= 64:
        raise click.BadParameter("K/N with 1 <= K <= N <= 64", param_hint="--partition")
    client_id = username
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    ing = Ingest(dsn, broker, username=username, password=_secret(password_file, False),
                 ca_file=ca_file, partition=(int(m.group(1)) - 1, int(m.group(2))))
    ing.start()
    click.echo(f"ingest {client_id}: {broker} → PostgreSQL")
    try:
        while True:
            time.sleep(60)
            click.echo(f"ingest: {ing.stats()}")
    except KeyboardInterrupt:
        pass
    finally:
        ing.stop()


@main.command("web")
@_dsn_option
@db_option(default="city-users.sqlite", help="SQLite file of the portfolio UI's users, sessions and audit.")
@click.option("--name", default="Sở Xây dựng Hải Phòng", show_default=True,
              help="The city office's name, shown in the UI and reports.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=Number(1, 65535, integer=True), default=8090, show_default=True)
def portfolio_web(dsn: str, db_path: Path, name: str, host: str, port: int) -> None:
    """Serve the city's UI: centres ranked, a centre's load and forecast, the city's month,
    the consolidated yearly report. The first start makes user admin and prints its password.

    Example:

    \b
        bems portfolio web --dsn "dbname=city" --db city-users.sqlite --port 8090
    """
    from bems.demo import demo_admin
    from city.queries import CityQueries
    from city.store import CityStore
    from city.web import create_city_app
    from webui.server import WebServer

    name = name.strip()
    if not name or len(name) > 200 or not name.isprintable():
        raise click.BadParameter("1..200 printable characters", param_hint="--name")
    with CityStore(dsn) as cs:
        cs.migrate()
    with Store(db_path) as store:
        password = demo_admin(store)
    queries = CityQueries(dsn)
    app = create_city_app(name, db_path, queries)
    server = WebServer(app, host, port)
    click.echo(server.url)
    if password:
        click.echo(f"user: admin\npassword: {password}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        queries.close()


@main.command("report")
@_dsn_option
@click.option("--year", type=Number(2000, 2100, integer=True), required=True)
@click.option("--name", default="Sở Xây dựng Hải Phòng", show_default=True)
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Default: tt25-YEAR.xlsx")
def portfolio_report(dsn: str, year: int, name: str, out_file: Path | None) -> None:
    """The consolidated yearly report (Circular 25 figures per centre, XLSX).

    Example:

    \b
        bems portfolio report --dsn "dbname=city" --year 2026
    """
    from city.queries import CityQueries
    from city.report import consolidated_xlsx

    queries = CityQueries(dsn)
    try:
        out = consolidated_xlsx(queries.year(year), year, name,
                                out_file or Path(f"tt25-{year}.xlsx"))
    finally:
        queries.close()
    click.echo(str(out))


@main.command("forecast")
@_dsn_option
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="A Dask scheduler (tcp://HOST:8786); default: a local cluster.")
@click.option("--workers", type=Number(1, 256, integer=True), default=2, show_default=True,
              help="Workers of the local cluster.")
@click.option("--model", type=click.Choice(["stack", "global", "per_meter"]), default="stack",
              show_default=True,
              help="stack: the global model averaged with each meter's own two (the best on "
                   "held-out meters, bench/fleet.py); global: one model across meters (the "
                   "fastest); per_meter: each meter's day-type model.")
@click.option("--day", default=None, help="The day to forecast, YYYY-MM-DD (default: tomorrow).")
def portfolio_forecast(dsn: str, scheduler: str | None, workers: int, model: str,
                       day: str | None) -> None:
    """Refit the day-ahead model of every meter in the portfolio on Dask and store tomorrow's
    forecasts (the centre pages show them).

    Example:

    \b
        bems portfolio forecast --dsn "dbname=city" --scheduler tcp://10.0.0.5:8786
    """
    from dask.distributed import Client, LocalCluster

    from city.fleet import refit_city

    when = _date(day, "--day") if day else None
    if scheduler:
        with Client(scheduler) as client:
            info = refit_city(dsn, client, when, model)
    else:
        with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as lc, \
                Client(lc) as client:
            info = refit_city(dsn, client, when, model)
    click.echo(f"{info['meters']} meters forecast ({info['model']}) in {info['seconds']:.1f} s")
