"""The site program: check the site file, run BEMS, the demo, the web UI, the
strategies, overrides, reports and faults."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from bems.cli import main
from bems.cli.common import (LocalTime, Number, _cli_user, _client_port, _date, _interface,
                             _parse_start, db_option, site_option)
from bems.config import load_site
from bems.storage import Store


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
@db_option(default="bems-demo.sqlite", help="SQLite file to use.")
@click.option("--history-days", type=Number(0, 400, integer=True), default=35, show_default=True,
              help="Days of simulated past data to put in the store first.")
@click.option("--speed", type=Number(1, 3600), default=1.0, show_default=True,
              help="Simulated seconds per wall second (BEMS polls and decides once a "
                   "simulated minute, at most once a wall second).")
@click.option("--port", type=Number(1, 65535, integer=True), default=8080, show_default=True,
              help="Web UI port.")
@click.option("--start", "start", default=None, type=LocalTime(),
              help="Simulated start, local time YYYY-MM-DD[THH:MM] (default: now).")
def demo(db_path: Path, history_days: int, speed: float, port: int, start: dt.datetime | None) -> None:
    """Run BEMS on the embedded demo site (an administrative centre in Hai Phong).

    Fills the store with weeks of history from the simulated centre, serves the centre's devices
    (BACnet/IP controllers, a Modbus TCP meter) on loopback, runs BEMS on them (polling,
    strategies, forecasts, reports) and the web UI on 127.0.0.1, until Ctrl-C; prints the URL
    and the admin's one-time password.

    Example:

    \b
        bems demo
        bems demo --db /tmp/demo.sqlite --speed 60 --start 2026-07-06T08:00
    """
    from bems.demo import run_demo

    site = load_site(None)
    run_demo(db_path, history_days, speed, port,
             start=_parse_start(start, site.tz) if start else None)


@main.command()
@site_option
@db_option()
@_client_port
@click.option("--poll-interval", type=Number(1, 86400), default=60.0,
              show_default=True, help="Seconds between poll cycles.")
@click.option("--strategy-interval", type=Number(1, 86400), default=60.0,
              show_default=True, help="Seconds between strategy runs.")
@click.option("--dry-run", is_flag=True, help="Decide but write nothing (see the log).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True, help="What the log (stderr) shows.")
def run(site_file: Path | None, db_path: Path, bacnet_port: int | None, poll_interval: float,
        strategy_interval: float, dry_run: bool, log_level: str) -> None:
    """Run BEMS for a site: poll, store, heartbeat, and release every write at shutdown.

    At start, writes a previous run left held (a crash) are released.

    Example:

    \b
        bems run --site site.toml --db site.sqlite
    """
    import signal
    import threading

    import logging

    from bems.runtime import Runtime

    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    site = load_site(site_file)
    rt = Runtime(site, db_path, bacnet_port=bacnet_port, poll_interval_s=poll_interval,
                 strategy_interval_s=strategy_interval, dry_run=dry_run,
                 interface=_interface())
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    rt.start()
    poll = rt.last_poll
    ok = sum(1 for h in poll.devices.values() if h.state == "ok") if poll else 0
    click.echo(f"running {site.name}: {ok}/{len(site.devices)} devices answer, polling every "
               f"{poll_interval:g} s into {db_path}", err=False)
    try:
        # wake every second: a signal delivered to another thread (the BACnet loop, a job)
        # only runs its Python handler when the main thread next runs, and a bare wait()
        # would sleep through SIGTERM forever
        while not done.wait(1.0):
            pass
    finally:
        rt.stop()
        click.echo("stopped; every write released")


@main.command()
@site_option
@db_option()
@click.option("--host", default=None,
              help="Address to listen on (default: the site file's [web] host, 127.0.0.1).")
@click.option("--port", type=Number(1, 65535, integer=True), default=None,
              help="Port (default: the site file's [web] port, 8080).")
def web(site_file: Path | None, db_path: Path, host: str | None, port: int | None) -> None:
    """Serve the web UI alone, over a store another process fills (`bems run`).

    With [notify] in the site file, it also watches the runtime: when `bems run` has not
    polled for 15 minutes (three poll cycles if longer), people are told at once.

    Example:

    \b
        bems web --db bems.sqlite --port 8080
    """
    from webui import create_app
    from webui.server import WebServer

    site = load_site(site_file)
    app = create_app(site, db_path)
    w = site.web
    server = WebServer(app, host or w.host, port or w.port, w.certificate, w.private_key)
    watch = None
    if site.notify is not None:  # tells people when `bems run` stops polling
        from bems.notify import Watch

        watch = Watch(site, db_path).start()
    click.echo(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if watch is not None:
            watch.stop()


@main.group()
def strategies() -> None:
    """What the strategies would write now, without writing (dry run).

    Example:

    \b
        bems strategies dry-run --db bems.sqlite
    """


@strategies.command("dry-run")
@site_option
@db_option()
@click.option("--at", "at", default=None, type=LocalTime(), help="Local time YYYY-MM-DDTHH:MM (default: now).")
def strategies_dry_run(site_file: Path | None, db_path: Path, at: dt.datetime | None) -> None:
    """Show every write the strategies would make, with its reason, from the latest readings.

    Example:

    \b
        bems strategies dry-run --db bems-demo.sqlite --at 2026-11-26T06:45
    """
    from bems.decision import decide

    site = load_site(site_file)
    if at is None:
        now = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
    else:
        now = _parse_start(at, site.tz).replace(tzinfo=site.tz)
    with Store(db_path, site.timezone) as store:
        decision = decide(site, store, now)
    click.echo(f"at {now.astimezone(site.tz):%Y-%m-%d %H:%M} (demand level {decision.level})")
    for d in decision.zones:
        for it in d.intents:
            click.echo(f"{d.zone:<10} {d.mode:<12} {it.point:<16} {it.value!s:>6}  {it.reason}")


@main.group()
def commissioning() -> None:
    """Commissioning: 7 to 28 days in which each working day has one occupied setpoint of
    25.0-26.5 °C for the whole building and each floor its own cool-down start, so the
    nightly fit learns what a colder room and an earlier start cost. It decides whatever the
    strategy mode; the rule set (or the predictive strategy) decides again after it.

    Example:

    \b
        bems commissioning start --from 2026-12-14 --days 14
        bems commissioning status
        bems commissioning stop
    """


@commissioning.command("start")
@click.option("--from", "first", default=None, help="Its first local day, YYYY-MM-DD "
              "(default: tomorrow).")
@click.option("--days", type=Number(7, 28, integer=True), default=14, show_default=True,
              help="How many days (7-28).")
@site_option
@db_option()
def commissioning_start(first: str | None, days: int, site_file: Path | None,
                        db_path: Path) -> None:
    """Start commissioning (audited); `status` shows each floor's tests.

    Example:

    \b
        bems commissioning start --from 2026-12-14 --days 14 --db bems.sqlite
    """
    from bems.strategies import commissioning as trial

    site = load_site(site_file)
    now = dt.datetime.now(dt.timezone.utc)
    day = _date(first, "--from") if first is not None else \
        now.astimezone(site.tz).date() + dt.timedelta(days=1)
    with Store(db_path, site.timezone) as store:
        c = trial.start(store, site, day, days, _cli_user(), now)
    click.echo(f"commissioning from {c.start} to {c.end - dt.timedelta(days=1)} ({c.days} days)")


@commissioning.command("stop")
@site_option
@db_option()
def commissioning_stop(site_file: Path | None, db_path: Path) -> None:
    """End commissioning now (audited).

    Example:

    \b
        bems commissioning stop --db bems.sqlite
    """
    from bems.strategies import commissioning as trial

    site = load_site(site_file)
    with Store(db_path, site.timezone) as store:
        c = trial.stop(store, _cli_user(), dt.datetime.now(dt.timezone.utc))
    click.echo("commissioning stopped" if c is not None else "no commissioning was set")


@commissioning.command("status")
@site_option
@db_option()
def commissioning_status(site_file: Path | None, db_path: Path) -> None:
    """The commissioning set, and each floor's setpoint and cool-down start per day.

    Example:

    \b
        bems commissioning status --db bems.sqlite
    """
    from bems.calendar import SiteCalendar
    from bems.strategies import commissioning as trial

    site = load_site(site_file)
    with Store(db_path, site.timezone) as store:
        c = trial.current(store)
    if c is None:
        click.echo("no commissioning")
        return
    click.echo(f"commissioning from {c.start} to {c.end - dt.timedelta(days=1)} "
               f"({c.days} days), started by {c.by}")
    for row in trial.table(site, SiteCalendar(site), c):
        click.echo(f"{row['day']}  " + "  ".join(
            f"floor {f}: {t.setpoint:.1f} °C, {t.lead_h:g} h" for f, t in row["floors"]))


@main.group()
def override() -> None:
    """Operator overrides: a value for a point until it expires; strategies yield to it.

    Example:

    \b
        bems override set f1.p1.sp 25.5 --minutes 120 --reason "meeting"
        bems override list
    """


@override.command("set")
@click.argument("point")
@click.argument("value", type=Number())
@click.option("--minutes", type=Number(1, 7 * 24 * 60), required=True,
              help="How long it holds (1 minute to 7 days).")
@click.option("--reason", default="", help="Why, for the ledger.")
@site_option
@db_option()
def override_set(point: str, value: float, minutes: float, reason: str,
                 site_file: Path | None, db_path: Path) -> None:
    """Set an override; it is applied at the next strategy run and released when it expires.

    Example:

    \b
        bems override set f2.core.ac 0 --minutes 60 --reason "maintenance"
    """
    from bems.overrides import add_override

    site = load_site(site_file)
    now = dt.datetime.now(dt.timezone.utc)
    until = now + dt.timedelta(minutes=minutes)
    with Store(db_path, site.timezone) as store:
        oid = add_override(site, store, point, value, until, _cli_user(), reason, now)
    click.echo(f"override {oid}: {point} = {value:g} until "
               f"{until.astimezone(site.tz):%Y-%m-%d %H:%M} ({site.timezone})")


@override.command("list")
@site_option
@db_option()
def override_list(site_file: Path | None, db_path: Path) -> None:
    """List the overrides in force.

    Example:

    \b
        bems override list --db bems.sqlite
    """
    site = load_site(site_file)
    with Store(db_path) as store:
        rows = store.overrides(active_at=dt.datetime.now(dt.timezone.utc))
    for o in rows:
        click.echo(f"{o['id']:>4} {o['point']:<16} {o['value']:>6g} until "
                   f"{o['expires_at'].astimezone(site.tz):%Y-%m-%d %H:%M} ({site.timezone}) "
                   f"by {o['created_by']}: {o['reason']}")
    if not rows:
        click.echo("no override in force")


@override.command("release")
@click.argument("override_id", type=Number(1, 2**62, integer=True))
@db_option()
def override_release(override_id: int, db_path: Path) -> None:
    """End an override before it expires.

    Example:

    \b
        bems override release 3
    """
    from bems.overrides import release_override

    with Store(db_path) as store:
        n = release_override(store, override_id, _cli_user(), dt.datetime.now(dt.timezone.utc))
    if not n:
        raise click.ClickException(f"no override {override_id} in force")
    click.echo(f"override {override_id} released")


@main.command()
@click.option("--month", default=None, help="YYYY-MM: the monthly report.")
@click.option("--year", type=Number(2000, 2100, integer=True), default=None, help="YYYY: the yearly report (Circular 25).")
@click.option("--format", "fmt_name", type=click.Choice(["pdf", "xlsx", "csv"]), default="pdf",
              show_default=True)
@click.option("--lang", type=click.Choice(["vi", "en"]), default="vi", show_default=True)
@click.option("--out", "out_dir", default="reports", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@db_option(exists=True)
@site_option
def report(month: str | None, year: int | None, fmt_name: str, lang: str, out_dir: Path,
           db_path: Path, site_file: Path | None) -> None:
    """The monthly energy report, or the yearly report to the Ministry.

    Example:

    \b
        bems report --month 2026-10 --format pdf --lang vi --out reports --db bems.sqlite
        bems report --year 2026 --format xlsx --db bems.sqlite
    """
    from bems.reports import monthly, render, yearly
    from models.savings import option_c

    if (month is None) == (year is None):
        raise click.UsageError("give --month YYYY-MM or --year YYYY")
    site = load_site(site_file)
    with Store(db_path, site.timezone) as store:
        if month:
            path = render.render(monthly.build_monthly(site, store, month, option_c), fmt_name,
                                 out_dir, lang)
        else:
            if fmt_name == "csv":
                raise click.UsageError("the yearly report is made as pdf or xlsx")
            path = yearly.render(yearly.build_yearly(site, store, year), fmt_name, out_dir)
        store.audit("cli", "report.make", {"month": month, "year": year, "file": path.name})
    click.echo(str(path))


@main.command()
@db_option(exists=True)
@site_option
@click.option("--days", type=Number(1, 400, integer=True), default=7, show_default=True,
              help="Faults seen in the last DAYS days.")
@click.option("--detect", is_flag=True,
              help="Run the rules over the last DAYS days first and record what they find.")
@click.option("--all", "show_all", is_flag=True, help="Closed faults too.")
@click.option("--lang", type=click.Choice(["vi", "en"]), default="en", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def faults(db_path: Path, site_file: Path | None, days: int, detect: bool, show_all: bool,
           lang: str, as_json: bool) -> None:
    """Faults found by the rules, most costly first: what, where, since when, what it costs
    a day, the likely cause and what to check.

    Example:

    \b
        bems faults --db bems.sqlite --lang vi
        bems faults --detect --days 28 --db bems.sqlite --json
    """
    import json as _json

    from bems.faults import target_name
    from bems.faults.engine import run as detect_faults
    from bems.faults.texts import fault_text

    site = load_site(site_file)
    with Store(db_path, site.timezone) as store:
        now = store.time_span()[1] or dt.datetime.now(dt.timezone.utc)
        if detect:
            detect_faults(site, store, now, hours=24 * days)
        rows = store.faults(since=now - dt.timedelta(days=days),
                            status=None if show_all else "active")
    out = []
    for f in rows:
        name = target_name(site, f["target_kind"], f["target"])
        text = fault_text(f["rule"], f["evidence"], name, lang)
        out.append({"id": f["id"], "rule": f["rule"], "target": f["target"], "name": name,
                    "first": f["first"].isoformat(), "last": f["last"].isoformat(),
                    "status": f["status"], "kwh_per_day": f["kwh_per_day"],
                    "vnd_per_day": f["vnd_per_day"], "discomfort_kh": f["discomfort_kh"], **text})
    if as_json:
        click.echo(_json.dumps(out, ensure_ascii=False, indent=1))
        return
    if not out:
        click.echo("no faults" if lang == "en" else "không có lỗi")
        return
    tz = site.tz
    for f in out:
        first = dt.datetime.fromisoformat(f["first"]).astimezone(tz).strftime("%Y-%m-%d %H:%M")
        click.echo(f"#{f['id']} {f['title']} — {f['name']} ({f['status']})")
        click.echo(f"    {first}; {f['kwh_per_day']:.1f} kWh/day, {f['vnd_per_day']:,.0f} VND/day"
                   + (f", {f['discomfort_kh']:.1f} K·h" if f["discomfort_kh"] else ""))
        click.echo(f"    {f['cause']}")
        click.echo(f"    → {f['check']}")


@main.group()
def notify() -> None:
    """Alarms sent to people ([notify] in the site file).

    Example:

    \b
        bems notify test --site site.toml
    """


@notify.command("test")
@site_option
def notify_test(site_file: Path | None) -> None:
    """Send a test message to every recipient, now, by every channel they have; say which
    failed and why. Exits 1 if any failed.

    Example:

    \b
        bems notify test --site site.toml
    """
    from bems.notify import test_all

    site = load_site(site_file)
    if site.notify is None:
        raise click.UsageError("the site file has no [notify] table")
    failed = 0
    for name, channel, error in test_all(site, dt.datetime.now(dt.timezone.utc)):
        if error is None:
            click.echo(f"{name} ({channel}): sent")
        else:
            failed += 1
            click.echo(f"{name} ({channel}): FAILED - {error}")
    if failed:
        sys.exit(1)
