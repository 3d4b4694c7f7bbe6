"""`bems demo`: the virtual centre, BEMS running on it, and the web UI, in one command."""

from __future__ import annotations

import datetime as dt
import secrets
import signal
import threading
from pathlib import Path

import click

from bems.config import demo_site_path, load_site
from bems.storage import Store
from bems.users import hash_password


def demo_admin(store: Store) -> str | None:
    """The first start makes the admin with a fresh password, returned to be printed once;
    later starts leave the account alone (None): `bems user passwd admin` changes it."""
    password = secrets.token_urlsafe(12)
    if store.add_user("admin", "admin", hash_password(password), "vi"):
        store.audit("demo", "user.add", {"name": "admin", "role": "admin"})
        return password
    return None


def _history_as_baseline(site, store: Store, now: dt.datetime):
    """The demo's history ran the building's own time clock, before BEMS: when the site file
    names no savings baseline, those weeks are it, so the report's IPMVP section is filled."""
    import dataclasses

    if site.reports.baseline_from:
        return site
    first, _last, n = store.time_span()
    if first is None or n == 0:
        return site
    start = first.astimezone(site.tz).date() + dt.timedelta(days=1)
    end = now.date() - dt.timedelta(days=1)
    if (end - start).days < 14:  # too short to train a model on
        return site
    return dataclasses.replace(site, reports=dataclasses.replace(
        site.reports, baseline_from=start, baseline_to=end))


def _site_copy(db_path: Path) -> Path:
    """The demo's site file copied beside its store (`bems-demo.site.toml`), made anew with a
    new store and kept with it, so what an admin changes in Settings stays with that demo."""
    copy = db_path.with_name(db_path.stem + ".site.toml")
    with Store(db_path) as store:
        fresh = store.count_readings() == 0
    if fresh or not copy.exists():
        tmp = copy.with_name(f".{copy.name}.tmp")
        tmp.write_text(demo_site_path().read_text(encoding="utf-8"), encoding="utf-8")
        tmp.replace(copy)
    return copy


def _find_faults(site, store: Store, now: dt.datetime, days: int) -> int:
    """The fault rules over the history (at most two weeks), as the runtime runs them every
    15 minutes over the last 30 hours: the faults screen lists them at once. Returns how many
    faults (lines of the faults screen) they make."""
    from bems.faults.engine import detect

    since = now - dt.timedelta(days=min(days, 14))
    # what the faults screen lists: the findings of one fault over days are one line
    return len({store.record_fault(f.as_dict(), now) for f in detect(site, store, since, now)})


def run_demo(db_path: Path, history_days: int = 35, speed: float = 1.0, port: int = 8080,
             bacnet_port: int = 47808, ready: threading.Event | None = None,
             stop: threading.Event | None = None, interval_s: float = 60.0,
             handle: dict | None = None, site_file: Path | None = None,
             start: dt.datetime | None = None) -> None:
    """History into the store, then the centre paced at `speed`, the runtime on it through
    BACnet, and the UI on 127.0.0.1:port, until Ctrl-C (or `stop`).

    The simulated clock starts at `start` (local time; default: now on the wall clock) and
    runs at `speed`. One simulation carries the building from the first history day into
    the live period, so the first live readings continue from the stored ones; a new store's
    history carries a few injected faults, found before the UI opens."""
    from bems.runtime import Runtime
    from connectors.simulator.centre import VirtualCentre
    from connectors.simulator.faults import Injector, demo_faults
    from connectors.simulator.run import HistorySink
    from webui import create_app

    if site_file is None:  # a copy of the demo's site file beside its store: Settings edit it
        site_file = _site_copy(Path(db_path))
    site = load_site(site_file)
    click.echo(f"site: {site.name} ({site_file})")
    now = start.replace(tzinfo=None) if start is not None else dt.datetime.now(site.tz)
    now = now.replace(tzinfo=None, second=0, microsecond=0)
    centre = VirtualCentre(site)
    with Store(db_path, site.timezone) as store:
        fresh = store.count_readings() == 0 and history_days > 0
        password = demo_admin(store)
    sink = HistorySink(db_path, site.timezone) if fresh else None
    injections = demo_faults(site, now, history_days) if fresh else []
    if fresh:
        click.echo(f"history: simulating {history_days} days before {now:%Y-%m-%d %H:%M} "
                   f"with {len(injections)} injected faults into {db_path} ...")

    import asyncio

    live = threading.Event()
    errors: list[BaseException] = []

    def serve_centre() -> None:
        try:
            asyncio.run(centre.serve(
                now, speed=speed, live=live.set, sink=sink,
                history_from=now - dt.timedelta(days=history_days) if fresh else None,
                injector=Injector(site, injections) if injections else None))
        except BaseException as err:  # shown below, then the demo stops
            errors.append(err)
            live.set()

    threading.Thread(target=serve_centre, name="virtual-centre", daemon=True).start()
    while not live.wait(1.0):  # the history takes a while; Ctrl-C or `stop` ends the wait
        if stop is not None and stop.is_set():
            centre.stop()
            return
    if errors:
        raise errors[0]
    if sink is not None:
        n = sink.finish()
        click.echo(f"history: {history_days} days of the simulated centre, {n} readings")
        with Store(db_path, site.timezone) as store:
            found = _find_faults(site, store, now.replace(tzinfo=site.tz), history_days)
        click.echo(f"faults: {found} found in the history (see the faults screen)")
    with Store(db_path, site.timezone) as store:
        site = _history_as_baseline(site, store, now)

    clock = (lambda: centre.sim_now.replace(tzinfo=site.tz)) if centre.sim_now else None
    # the runtime's cadence follows the simulation: every simulated minute at 60× (a wall
    # second), never faster than once a wall second
    every = max(1.0, interval_s / max(speed, 1.0))
    runtime = Runtime(site, db_path, bacnet_port=bacnet_port, clock=clock,
                      poll_interval_s=every, strategy_interval_s=every, heartbeat_s=every)
    runtime.start()
    app = create_app(site, db_path, runtime=runtime, clock=runtime.clock)
    from webui.server import WebServer

    server = WebServer(app, "127.0.0.1", port).start()
    click.echo(f"BEMS is running: {server.url}")
    click.echo("user: admin")
    click.echo(f"password: {password}" if password else
               f"password: unchanged (bems user passwd admin --db {db_path} sets a new one)")
    stop = stop or threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, lambda *_: stop.set())
        except ValueError:  # not the main thread (tests): `stop` is the way out
            break
    if handle is not None:  # tests look inside
        handle.update(centre=centre, runtime=runtime, password=password)
    if ready is not None:
        ready.set()
    try:
        while not stop.wait(1.0):  # wake to run a signal handler another thread received
            pass
    finally:
        # each part stopped whatever the one before raised: a centre left running keeps its
        # devices' ports (a test suite's later centre then found them taken)
        try:
            server.stop()
        finally:
            try:
                runtime.stop()
            finally:
                centre.stop()
        click.echo("stopped; every write released")
